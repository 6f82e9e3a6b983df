//! What a container changed: its upper layer, read against the layers below.
//!
//! Every change a container makes lands in its upper directory, so listing
//! that directory is almost `docker diff`. Almost: a file there may be new
//! (*A*dded) or a copied-up version of a file below (*C*hanged), and a
//! whiteout means *D*eleted. An opaque directory hides the whole lower
//! directory of the same name, so each name only the lower one had is deleted
//! too. Telling A from C means looking the path up in the layers below, with
//! [`overlay::exists_in`].
//!
//! What it leaves out: a copied-up file whose contents did not change (after
//! `chmod` or `touch`) is reported as changed, as Docker does; comparing
//! contents would need reading every such file in two layers.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::overlay;

/// The kind of a change, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Added,
    Changed,
    Deleted,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Added => "A",
            Kind::Changed => "C",
            Kind::Deleted => "D",
        })
    }
}

/// One changed path, absolute as the container sees it (`/etc/motd`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub path: PathBuf,
    pub kind: Kind,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.path.display())
    }
}

// ANCHOR: changes
/// The changes recorded in `upper`, judged against `lower` (top first), in
/// path order.
pub fn changes(upper: &Path, lower: &[PathBuf]) -> Result<Vec<Change>> {
    let mut found = Vec::new();
    walk(upper, Path::new(""), lower, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(upper: &Path, rel: &Path, lower: &[PathBuf], found: &mut Vec<Change>) -> Result<()> {
    let dir = upper.join(rel);
    let entries =
        fs::read_dir(&dir).with_context(|| format!("failed to read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to read {}", dir.display()))?;
        let rel = rel.join(entry.file_name());
        let path = upper.join(&rel);
        let meta = path
            .symlink_metadata()
            .with_context(|| format!("failed to stat {}", path.display()))?;
        let below = overlay::exists_in(lower, &rel);
        let kind = if overlay::is_whiteout(&meta) {
            Kind::Deleted
        } else if below {
            Kind::Changed
        } else {
            Kind::Added
        };
        // A whiteout of a name no lower layer has deletes nothing visible.
        if kind != Kind::Deleted || below {
            found.push(Change {
                path: Path::new("/").join(&rel),
                kind,
            });
        }
        if meta.is_dir() {
            if below && overlay::is_opaque(&path)? {
                hidden_by_opaque(upper, &rel, lower, found)?;
            }
            walk(upper, &rel, lower, found)?;
        }
    }
    Ok(())
}

/// The names an opaque directory `rel` hides: those of the lower directory
/// that the upper one does not have again.
fn hidden_by_opaque(
    upper: &Path,
    rel: &Path,
    lower: &[PathBuf],
    found: &mut Vec<Change>,
) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for layer in lower {
        if let Ok(entries) = fs::read_dir(layer.join(rel)) {
            for entry in entries.flatten() {
                names.insert(entry.file_name());
            }
        }
    }
    for name in names {
        let child = rel.join(&name);
        if overlay::exists_in(lower, &child) && upper.join(&child).symlink_metadata().is_err() {
            found.push(Change {
                path: Path::new("/").join(&child),
                kind: Kind::Deleted,
            });
        }
    }
    Ok(())
}
// ANCHOR_END: changes

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_and_changed_follow_the_lower_layers() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let lower = tmp.path().join("lower");
        let upper = tmp.path().join("upper");
        fs::create_dir_all(lower.join("etc"))?;
        fs::write(lower.join("etc/motd"), "old")?;
        fs::create_dir_all(upper.join("etc"))?;
        fs::write(upper.join("etc/motd"), "new")?;
        fs::write(upper.join("etc/new"), "x")?;
        let found: Vec<String> = changes(&upper, &[lower])?
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, vec!["C /etc", "C /etc/motd", "A /etc/new"]);
        Ok(())
    }
}
