//! What a runtime saves between two of its runs, done once for chapters 5 and 6.
//!
//! A runtime that is not a daemon (chapter 5's `run`/`ps`/`rm`, chapter 6's
//! `create`/`start`/`delete`) remembers its containers in files. Two rules
//! keep those files safe, and both chapters need them; chapter 6 does not
//! depend on chapter 5 (an OCI runtime takes an unpacked bundle, not an image
//! store), so they live here, in the crate every chapter depends on:
//!
//! - [`validate_name`]: a container ID or image name becomes a file or
//!   directory name (and part of a cgroup's name): refuse, up front, every
//!   name that could escape the directory or fail later at `mkdir(2)`.
//! - [`write_atomically`]: a reader (another run of the runtime, `ps`,
//!   `state`) never sees half a file: write a temporary file beside it, then
//!   `rename(2)` it over the old one, which replaces it in one step.
//!
//! The third, "is the process I saved still running" (PID and start time),
//! is in [`crate::process`], with the processes.
//!
//! What it leaves out: `fsync(2)` (the state must never be half-written, not
//! survive a power cut: chapter 6's lives on a tmpfs anyway), and locking,
//! which each chapter does its own way (chapter 5 `flock(2)`s its store;
//! chapter 6 relies on `mkdir(2)` failing for a taken ID).

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The longest name [`validate_name`] accepts. Well below `NAME_MAX` (255
/// bytes): a name also goes into longer file names (`<name>.json`) and
/// cgroup names (`cfs-<name>-<pid>`), and those must not fail later.
/// containerd's own IDs are at most 76 characters.
pub const NAME_MAX_LEN: usize = 128;

/// Checks a container ID or an image name (`what` says which, for the
/// message): 1 to [`NAME_MAX_LEN`] ASCII letters, digits, `_`, `+`, `-` or
/// `.` (runc's alphabet), starting with a letter or digit, so that it is one
/// plain file name: not `.` or `..`, not hidden, not taken for an option.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok_first || !ok_rest || name.len() > NAME_MAX_LEN {
        bail!(
            "{what} {name:?} is not valid: use 1 to {NAME_MAX_LEN} letters, digits, '_', '+', \
             '-' or '.', starting with a letter or digit"
        );
    }
    Ok(())
}

/// Writes `contents` to `path` atomically: to a temporary file in the same
/// directory (`rename(2)` does not cross file systems), then renamed over
/// `path`. The temporary name holds our PID, so two runs writing at once do
/// not write into one temporary file; it is removed if the rename fails.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("failed to write {}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    fs::write(&tmp, contents).with_context(|| format!("failed to write {}", tmp.display()))?;
    if let Err(err) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(err)
            .with_context(|| format!("failed to rename {} to {}", tmp.display(), path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_file_names_safely() {
        let longest = "a".repeat(NAME_MAX_LEN);
        for good in ["a", "busybox", "web-1.2_x+y", "0abc", longest.as_str()] {
            assert!(validate_name("container id", good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(NAME_MAX_LEN + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-rf",
            "_x",
            "a/b",
            "../x",
            "a b",
            "a\n",
            "é",
            too_long.as_str(),
        ] {
            assert!(validate_name("container id", bad).is_err(), "{bad:?}");
        }
        // The longest name still fits in every name made of it.
        assert!(format!("cfs-{longest}-{}.json", u32::MAX).len() <= 255);
    }

    #[test]
    fn a_file_is_replaced_in_one_step() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("cfs-state-test-{}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let path = dir.join("state.json");
        write_atomically(&path, b"{\"old\": 1}\n")?;
        write_atomically(&path, b"{\"new\": 2}\n")?;
        assert_eq!(fs::read_to_string(&path)?, "{\"new\": 2}\n");
        // Only the file itself is left: no temporary file.
        let names: Vec<_> = fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        // A rename that fails (onto a directory) leaves no temporary file either.
        let sub = dir.join("sub");
        fs::create_dir(&sub)?;
        fs::write(sub.join("x"), "")?;
        assert!(write_atomically(&sub, b"x").is_err());
        assert_eq!(fs::read_dir(&dir)?.count(), 2);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
