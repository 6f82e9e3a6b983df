//! `ch01-uts`: run a command in a new UTS namespace with its own hostname.
//!
//! ```text
//! sudo ch01-uts -v --hostname box -- hostname
//! ```
//!
//! The whole runtime so far: clone a child with `CLONE_NEWUTS`, let it set its
//! hostname and exec the command, wait for it, exit with its status. Nothing
//! else is isolated yet: the child sees the host's processes, files and network.

use std::process::ExitCode;

use anyhow::Result;
use ch01_uts::{cli, process, uts};
use clap::Parser;
use nix::sched::CloneFlags;

/// Run a command in its own UTS namespace (chapter 1)
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    #[command(flatten)]
    uts: cli::Hostname,
    #[command(flatten)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::main(&args.common, || run(&args))
}

// ANCHOR: run
fn run(args: &Args) -> Result<i32> {
    process::require_root()?;
    let child = process::spawn(CloneFlags::CLONE_NEWUTS, || {
        uts::set_hostname(&args.uts.hostname)?;
        process::exec(&args.command.argv)
    })?;
    let pid = child.release()?;
    process::wait(pid)
}
// ANCHOR_END: run
