//! `ch03-mount-chroot`: chapter 2's runtime plus a mount namespace and a rootfs.
//!
//! ```text
//! sudo ch03-mount-chroot -v --rootfs $ROOTFS -- ps
//! sudo ch03-mount-chroot --chroot --rootfs $ROOTFS -- sh
//! ```
//!
//! The command now runs with the rootfs as `/`, a fresh `/proc` (so `ps` shows
//! only the container's processes), its own `/dev` and a read-only `/sys`.
//! `--chroot` uses `chroot(2)` instead of `pivot_root(2)`, to compare the two.

use std::process::ExitCode;

use anyhow::Result;
use ch01_uts::{cli, process, uts};
use ch02_pid::cli::Init;
use ch02_pid::init::{self, Reap};
use ch03_mount_chroot::{cli::Rootfs, rootfs};
use clap::Parser;
use nix::sched::CloneFlags;

/// Run a command in its own rootfs, with a fresh /proc and /dev (chapter 3)
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    #[command(flatten)]
    uts: cli::Hostname,
    #[command(flatten)]
    rootfs: Rootfs,
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
    rootfs::validate(&args.rootfs.rootfs, &args.command.argv)?;
    init::block_signals()?;
    let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
    let child = process::spawn(flags, || {
        uts::set_hostname(&args.uts.hostname)?;
        rootfs::setup(&args.rootfs.rootfs, args.rootfs.root())?;
        args.init.exec(&args.command.argv)
    })?;
    let pid = child.release()?;
    init::supervise(pid, Reap::MainOnly)
}
