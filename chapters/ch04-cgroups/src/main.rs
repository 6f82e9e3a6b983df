//! `ch04-cgroups`: chapter 3's runtime plus a cgroup that limits the container.
//!
//! ```text
//! sudo ch04-cgroups -v --rootfs $ROOTFS --cpus 0.2 -- sh -c 'while :; do :; done'
//! sudo ch04-cgroups --rootfs $ROOTFS --memory 32M -- dd if=/dev/zero of=/dev/null bs=64M count=1
//! sudo ch04-cgroups --rootfs $ROOTFS --pids 16 -- sh
//! ```
//!
//! Before the command runs, the runtime creates a cgroup `cfs-<its pid>`
//! beneath its own, writes the limits, and moves the child into it while the
//! child still waits on the sync pipe. When the container ends, it says if the
//! OOM killer struck and removes the cgroup (`--keep-cgroup` keeps it).

use std::process::ExitCode;

use anyhow::Result;
use ch01_uts::{cli, process, uts};
use ch02_pid::cli::Init;
use ch02_pid::init::{self, Reap};
use ch03_mount_chroot::{cli::Rootfs, rootfs};
use ch04_cgroups::cgroups::Cgroup;
use ch04_cgroups::cli::Resources;
use clap::Parser;
use nix::sched::CloneFlags;

/// Run a command in its own rootfs, with limits on CPU, memory and processes (chapter 4)
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
    resources: Resources,
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
    // Removed again when dropped, so every error below leaves no cgroup.
    let name = format!("cfs-{}", std::process::id());
    let cgroup = Cgroup::create(&name, &args.resources.limits())?;
    init::block_signals()?;
    let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
    let child = process::spawn(flags, || {
        uts::set_hostname(&args.uts.hostname)?;
        rootfs::setup(&args.rootfs.rootfs, args.rootfs.root())?;
        args.init.exec(&args.command.argv)
    })?;
    // The child is still blocked on the sync pipe: it runs nothing unlimited.
    cgroup.add(child.pid())?;
    let pid = child.release()?;
    let code = init::supervise(pid, Reap::MainOnly)?;
    args.resources.finish(cgroup)?;
    Ok(code)
}
