//! `ch02-pid`: chapter 1's runtime plus a PID namespace.
//!
//! ```text
//! sudo ch02-pid -v --hostname box -- sh -c 'echo $$'
//! sudo ch02-pid --init -- sh -c 'sleep 1 & exec sleep 2'
//! ```
//!
//! The command runs as PID 1 of a new PID namespace. With `--init`, a tiny init
//! is PID 1 instead and the command is PID 2, as with `docker run --init`.
//! The runtime forwards SIGINT, SIGTERM, SIGHUP (and a few more) to the
//! container and exits with the command's status.

use std::process::ExitCode;

use anyhow::Result;
use ch01_uts::{cli, process, uts};
use ch02_pid::cli::Init;
use ch02_pid::init::{self, Reap};
use clap::Parser;
use nix::sched::CloneFlags;

/// Run a command as PID 1 of its own PID namespace (chapter 2)
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    #[command(flatten)]
    uts: cli::Hostname,
    #[command(flatten)]
    init: Init,
    #[command(flatten)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::main(&args.common, || run(&args))
}

fn run(args: &Args) -> Result<i32> {
    process::require_root()?;
    init::block_signals()?;
    let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID;
    let child = process::spawn(flags, || {
        uts::set_hostname(&args.uts.hostname)?;
        args.init.exec(&args.command.argv)
    })?;
    let pid = child.release()?;
    init::supervise(pid, Reap::MainOnly)
}
