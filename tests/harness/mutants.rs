//! Mutants: realistic wrong versions of the bodies a lab's student writes,
//! kept in `labs/mutants/chNN.txt` (format in `labs/mutants/README.md`).
//! `tests/lab.rs` applies each to a copy of the reference and requires the
//! lab's checks to catch it with a hint that names the mistake; `tests/book.rs`
//! requires the instructors' page to list them as [`table`] renders them.

use std::fs;

use anyhow::{bail, ensure, Context, Result};

use crate::paths::workspace;

/// A wrong version of a marked body (see `labs/mutants/README.md`).
#[derive(Debug, Clone)]
pub struct Mutant {
    pub name: String,
    pub function: String,
    /// The file holding the body, relative to the workspace, when two
    /// files mark a body of that name (empty: the only one).
    pub file: String,
    pub mistake: String,
    pub fails: String,
    pub hint: String,
    /// (replace, with) pairs.
    pub edits: Vec<(String, String)>,
}

/// The labs that have mutants (`labs/mutants/chNN.txt`), sorted; at least one.
pub fn labs() -> Result<Vec<String>> {
    let mut labs: Vec<String> = fs::read_dir(workspace().join("labs/mutants"))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".txt").map(str::to_string)
        })
        .collect();
    labs.sort();
    ensure!(!labs.is_empty(), "no labs/mutants/chNN.txt");
    Ok(labs)
}

/// The mutants of lab `ch` and what each needs rebuilt (`bin`, `test`).
pub fn mutants(ch: &str) -> Result<(Vec<String>, Vec<Mutant>)> {
    let path = workspace().join(format!("labs/mutants/{ch}.txt"));
    let text =
        fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    parse_mutants(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_mutants(text: &str) -> Result<(Vec<String>, Vec<Mutant>)> {
    let mut rebuild = Vec::new();
    let mut all: Vec<Mutant> = Vec::new();
    // Inside a replace: or with: block, which ends at the next keyword line.
    let mut block: Option<bool> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let keyword = |k: &str| line.strip_prefix(k).map(str::trim);
        if let Some(name) = line.strip_prefix("## ") {
            all.push(Mutant {
                name: name.trim().to_string(),
                function: String::new(),
                file: String::new(),
                mistake: String::new(),
                fails: String::new(),
                hint: String::new(),
                edits: Vec::new(),
            });
            block = None;
            continue;
        }
        if line == "replace:" || line == "with:" {
            let m = all
                .last_mut()
                .with_context(|| format!("line {n}: no ## name above"))?;
            if line == "replace:" {
                m.edits.push((String::new(), String::new()));
                block = Some(false);
            } else {
                ensure!(block == Some(false), "line {n}: with: without replace:");
                block = Some(true);
            }
            continue;
        }
        if let Some(with) = block {
            let m = all.last_mut().context("no mutant")?;
            let edit = m.edits.last_mut().context("no edit")?;
            let part = if with { &mut edit.1 } else { &mut edit.0 };
            part.push_str(line);
            part.push('\n');
            continue;
        }
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(what) = keyword("rebuild:") {
            rebuild = what.split_whitespace().map(str::to_string).collect();
            continue;
        }
        let m = all
            .last_mut()
            .with_context(|| format!("line {n}: no ## name above"))?;
        if let Some(v) = keyword("function:") {
            m.function = v.to_string();
        } else if let Some(v) = keyword("file:") {
            m.file = v.to_string();
        } else if let Some(v) = keyword("mistake:") {
            m.mistake = v.to_string();
        } else if let Some(v) = keyword("fails:") {
            m.fails = v.to_string();
        } else if let Some(v) = keyword("hint:") {
            m.hint = v.to_string();
        } else {
            bail!("line {n}: unknown line {line:?}");
        }
    }
    for m in &mut all {
        for (from, to) in &mut m.edits {
            // Blank lines before the next keyword belong to no block.
            while from.ends_with("\n\n") {
                from.pop();
            }
            while to.ends_with("\n\n") || to == "\n" {
                to.pop();
            }
        }
        ensure!(
            !m.function.is_empty()
                && !m.mistake.is_empty()
                && !m.fails.is_empty()
                && !m.hint.is_empty()
                && !m.edits.is_empty()
                && m.edits.iter().all(|(from, _)| !from.trim().is_empty()),
            "mutant {} needs function:, mistake:, fails:, hint: and a replace: block",
            m.name
        );
    }
    ensure!(
        !rebuild.is_empty() && rebuild.iter().all(|r| r == "bin" || r == "test"),
        "say what a mutant needs rebuilt: rebuild: bin, or rebuild: bin test"
    );
    Ok((rebuild, all))
}

/// The rows of the instructors' page for lab `ch`'s mutants: the mutant, the
/// mistake, the check that must fail on it, what its scoreboard must show.
pub fn table(ch: &str) -> Result<String> {
    let (_, all) = mutants(ch)?;
    let mut rows = String::from(
        "| mutant | the mistake | fails | the scoreboard shows |\n|---|---|---|---|\n",
    );
    for m in all {
        rows.push_str(&format!(
            "| `{}` ({}{}) | {} | `{}` | `{}` |\n",
            m.name,
            m.file
                .rsplit('/')
                .next()
                .filter(|f| !f.is_empty())
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            m.function,
            m.mistake.replace('|', "\\|"),
            m.fails,
            m.hint.replace('|', "\\|")
        ));
    }
    Ok(rows)
}
