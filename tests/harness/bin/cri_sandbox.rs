//! `cfs-cri-sandbox TAG`: the private containerd of chapter 7's tests, for a
//! book session (`ch07-pod.setup`) rather than a test.
//!
//! It makes the same [`Sandbox`] as `tests/ch07.rs` (its own network, mount,
//! PID and cgroup namespaces, its cgroups beneath the caller's) and starts
//! containerd in it with its CRI plugin ([`cri_containerd`]): the handler
//! `cfs` runs chapter 6's runtime (the `ch06-full-runtime` beside this
//! binary), a CNI bridge gives pods addresses in the sandbox's network only,
//! and the busybox and pause images are imported. It prints the CRI socket's
//! path on stdout once containerd answers, then waits for SIGTERM (or SIGINT,
//! SIGHUP) and tears everything down: containerd, then the sandbox, whose PID
//! namespace takes every shim and container with it, and whose cgroups and
//! temp dir it removes. What it leaves out: everything a test checks; it
//! only serves.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use cfs_tests::engines::cri_containerd;
use cfs_tests::sandbox::Sandbox;
use nix::sys::signal::{SigSet, Signal};

fn serve(tag: &str) -> Result<()> {
    let runtime = std::env::current_exe()?
        .parent()
        .context("no directory of this binary")?
        .join("ch06-full-runtime");
    anyhow::ensure!(
        runtime.exists(),
        "no {}: build the workspace first (cargo build --workspace)",
        runtime.display()
    );
    let sandbox = Sandbox::start(tag)?;
    let containerd = match cri_containerd(&sandbox, tag, &runtime) {
        Ok(c) => c,
        Err(e) => {
            sandbox.stop()?;
            return Err(e);
        }
    };
    // Blocked only now: containerd and the sandbox's processes would
    // inherit the mask, and a containerd that blocks TERM never stops. A
    // TERM before this point kills this process, and the sandbox's PID 1
    // with it (PR_SET_PDEATHSIG); its cgroups would stay.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().context("failed to block SIGTERM")?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", containerd.socket.display())?;
    out.flush()?;
    let signal = signals.wait().context("sigwait failed")?;
    eprintln!("cfs-cri-sandbox: {signal}: stopping containerd and the sandbox");
    let log = containerd.stop()?;
    eprint!("{log}");
    sandbox.stop()
}

fn main() -> ExitCode {
    let tag = std::env::args().nth(1).unwrap_or_else(|| "book".into());
    match serve(&tag) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cfs-cri-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
