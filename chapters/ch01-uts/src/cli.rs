//! The command line that every chapter binary shares.
//!
//! Each chapter's `main.rs` declares its own flags with clap and flattens these
//! common groups into them, so `-v`, `--hostname` and `-- CMD...` mean the same
//! thing in every chapter. [`main`] turns the result of a run into the process
//! exit code and prints errors as one line: `ch01-uts: what went wrong`.

use std::process::ExitCode;

use anyhow::Result;

use crate::{narrate, process, uts};

/// Flags every chapter binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Narrate on stderr each request the runtime makes of the kernel
    #[arg(short, long)]
    pub verbose: bool,
}

/// The container's hostname (chapter 1's UTS namespace).
#[derive(Debug, Clone, clap::Args)]
pub struct Hostname {
    /// Hostname inside the container's UTS namespace
    #[arg(long, default_value = "container", value_parser = parse_hostname)]
    pub hostname: String,
}

/// The command to run inside, written after `--`.
#[derive(Debug, Clone, clap::Args)]
pub struct Command {
    /// The command to run in the container, and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub argv: Vec<String>,
}

fn parse_hostname(name: &str) -> Result<String, String> {
    uts::validate_hostname(name)
        .map(|()| name.to_string())
        .map_err(|err| err.to_string())
}

/// The name this binary was started as, for error messages.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "runtime".to_string())
}

/// Runs a chapter: sets up narration, calls `run`, and turns its result into
/// the exit code (the command's own code on success; see
/// [`process::exit_code_for`] on error).
pub fn main(common: &Common, run: impl FnOnce() -> Result<i32>) -> ExitCode {
    narrate::set_verbose(common.verbose);
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("{}: {err:#}", program_name());
            ExitCode::from(process::exit_code_for(&err).clamp(0, 255) as u8)
        }
    }
}
