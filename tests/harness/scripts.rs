//! The project's shell scripts in tests (`scripts/doctor`, `scripts/reset`;
//! tests/doctor.rs and tests/reset.rs), and the small helpers those tests
//! share: a script's command, a shell snippet that must succeed, a file
//! written with its directories, words a line must hold.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::paths::workspace;
use crate::run::output;

/// A `Command` for `scripts/<name>` of this checkout.
pub fn script(name: &str) -> Command {
    Command::new(workspace().join("scripts").join(name))
}

/// Fails unless `line` holds each of `words`, showing the line.
pub fn contains(line: &str, words: &[&str]) -> Result<()> {
    for word in words {
        ensure!(line.contains(word), "{word:?} missing from\n{line}");
    }
    Ok(())
}

/// Writes `text` to `path`, creating its directories first.
pub fn write(path: impl AsRef<Path>, text: &str) -> Result<()> {
    let path = path.as_ref();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))
}

/// `path` as a `&str`, for a script's arguments.
pub fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("path is not UTF-8")
}

/// Runs `sh -c script` to the end; fails with its output unless it exits 0.
pub fn sh(script: &str) -> Result<()> {
    let out = output({
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    })?;
    ensure!(
        out.code == 0,
        "`{script}` failed ({}): {}{}",
        out.code,
        out.stdout,
        out.stderr
    );
    Ok(())
}
