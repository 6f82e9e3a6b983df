//! Console sessions: the terminal transcripts shown in the book, run and checked.
//!
//! Each session is a `.console` file under `book/src/sessions/`, included in a
//! page with `{{#include}}`. A line starting with `# ` is a command typed at a
//! root prompt; the lines after it, up to the next command, are what it prints
//! (stdout and stderr together, as a terminal shows them). Expected lines may
//! hold placeholders for what differs between runs:
//!
//! | placeholder | matches |
//! |---|---|
//! | `<pid>`, `<n>`, `<inode>` | a number |
//! | `<any>` | any text on that line |
//! | a line `...` | any number of lines |
//!
//! The commands run one after another in one `bash`, as root, in an empty
//! temporary directory, with the chapter binaries (and the static helpers of
//! `target/static`) first on `PATH`, `$ROOTFS` set to the default rootfs and
//! `$CFS` to the repository, which is how the book tells learners to set up
//! their shell (`source scripts/env`).
//!
//! A session that needs a service the book cannot start in its own lines
//! (a registry, say) has a *setup*: `NAME.setup` beside `NAME.console`, a
//! bash fragment run in the same shell before the first command, with its
//! output hidden. It may export variables the commands use (`$REGISTRY`) and
//! must stop what it starts with a `trap ... EXIT`, which bash runs when the
//! session ends, passed or failed. The page says in prose what it does.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use regex::Regex;

use crate::{paths, run};

/// One command of a session and the lines it should print.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub command: String,
    pub expected: Vec<String>,
}

/// Parses a `.console` file into its steps.
pub fn parse(text: &str) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("# ") {
            steps.push(Step {
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.trim_end().to_string());
        } else if !line.trim().is_empty() {
            bail!("output before the first command: {line:?}");
        }
    }
    if steps.is_empty() {
        bail!("no command in session");
    }
    Ok(steps)
}

const MARK: &str = "\u{1e}\n";

/// Runs the steps in one shell and returns each step's output lines.
pub fn execute(steps: &[Step], timeout: Duration) -> Result<Vec<Vec<String>>> {
    execute_with(None, steps, timeout)
}

/// Runs `setup` (its output dropped; it fails the session if it fails), then the steps.
pub fn execute_with(
    setup: Option<&str>,
    steps: &[Step],
    timeout: Duration,
) -> Result<Vec<Vec<String>>> {
    let mut script = String::from("exec 2>&1\n");
    if let Some(setup) = setup {
        script.push_str(&format!(
            "{{\n{setup}\n}} >/dev/null 2>&1 || {{ echo 'the session setup failed'; exit 1; }}\n"
        ));
    }
    for step in steps {
        script.push_str(&step.command);
        script.push_str("\n__rc=$?; printf '\\036\\n'; (exit $__rc)\n");
    }
    let dir = tempfile::tempdir().context("failed to create a directory for the session")?;
    let path = format!(
        "{}:{}:{}",
        paths::bin_dir().display(),
        paths::static_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("ROOTFS", paths::rootfs()?)
        .env("CFS", paths::workspace());
    let output = run::output_within(cmd, timeout)?;
    let mut chunks: Vec<Vec<String>> = output
        .stdout
        .split(MARK)
        .map(|chunk| chunk.lines().map(|l| l.trim_end().to_string()).collect())
        .collect();
    // The text after the last mark is empty.
    chunks.truncate(steps.len());
    Ok(chunks)
}

fn pattern(line: &str) -> Result<Regex> {
    let escaped = regex::escape(line)
        .replace("<pid>", r"\d+")
        .replace("<n>", r"\d+")
        .replace("<inode>", r"\d+")
        .replace("<any>", ".*");
    Regex::new(&format!("^{escaped}$")).with_context(|| format!("bad expected line {line:?}"))
}

/// Whether `actual` matches `expected`, placeholders included.
pub fn matches(expected: &[String], actual: &[String]) -> Result<bool> {
    match expected.split_first() {
        None => Ok(actual.is_empty()),
        Some((first, rest)) if first == "..." => {
            for skip in 0..=actual.len() {
                if matches(rest, &actual[skip..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Some((first, rest)) => match actual.split_first() {
            Some((line, more)) => Ok(pattern(first)?.is_match(line) && matches(rest, more)?),
            None => Ok(false),
        },
    }
}

/// Runs the session in `file` and fails on the first step whose output differs.
pub fn check(file: &Path) -> Result<()> {
    let text =
        fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
    let steps = parse(&text).with_context(|| format!("in {}", file.display()))?;
    let setup_file = file.with_extension("setup");
    let setup = match setup_file.exists() {
        true => Some(
            fs::read_to_string(&setup_file)
                .with_context(|| format!("failed to read {}", setup_file.display()))?,
        ),
        false => None,
    };
    let outputs = execute_with(setup.as_deref(), &steps, Duration::from_secs(180))?;
    for (i, step) in steps.iter().enumerate() {
        let actual = outputs.get(i).cloned().unwrap_or_default();
        if !matches(&step.expected, &actual)? {
            bail!(
                "{}: `{}` printed\n{}\n--- but the book shows ---\n{}",
                file.display(),
                step.command,
                actual.join("\n"),
                step.expected.join("\n")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn parses_commands_and_output() -> Result<()> {
        let steps = parse("# hostname\nbox\n# echo $?\n0\n")?;
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].command, "hostname");
        assert_eq!(steps[0].expected, vec!["box"]);
        assert!(parse("orphan output\n").is_err());
        Ok(())
    }

    #[test]
    fn placeholders_match_what_varies() -> Result<()> {
        assert!(matches(&lines("pid <pid> ok"), &lines("pid 4242 ok"))?);
        assert!(!matches(&lines("pid <pid> ok"), &lines("pid x ok"))?);
        assert!(matches(&lines("a\n...\nz"), &lines("a\nb\nc\nz"))?);
        assert!(matches(&lines("a\n...\nz"), &lines("a\nz"))?);
        assert!(!matches(&lines("a\nz"), &lines("a\nb\nz"))?);
        assert!(matches(&lines("host <any>"), &lines("host vm.example"))?);
        assert!(!matches(&lines("1.5 (x)"), &lines("1x5 (x)"))?);
        Ok(())
    }
}
