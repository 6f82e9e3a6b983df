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
//! SIGHUP; or its parent's death) and tears everything down: containerd, then the sandbox, whose PID
//! namespace takes every shim and container with it, and whose cgroups and
//! temp dir it removes. What it leaves out: everything a test checks; it
//! only serves.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

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
    // signal during the set-up was caught by `note_stop` (whose handler
    // exec resets in the children): then there is nothing to wait for.
    let mut signals = SigSet::empty();
    for s in STOP_SIGNALS {
        signals.add(s);
    }
    signals.thread_block().context("failed to block SIGTERM")?;
    if STOP.load(Ordering::SeqCst) {
        eprintln!(
            "cfs-cri-sandbox: stopped during the set-up: stopping containerd and the sandbox"
        );
    } else {
        let mut out = std::io::stdout();
        writeln!(out, "{}", containerd.socket.display())?;
        out.flush()?;
        let signal = signals.wait().context("sigwait failed")?;
        eprintln!("cfs-cri-sandbox: {signal}: stopping containerd and the sandbox");
    }
    let log = containerd.stop()?;
    eprint!("{log}");
    sandbox.stop()
}

/// The signals that end the service.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Set by a stop signal that came during the set-up.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn note_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// A stop signal during the set-up must not kill this process half-way (the
/// sandbox's cgroups would stay): it is noted, and the set-up is undone once
/// it is done. And if whoever started this process dies without stopping it
/// (a session's shell killed at its time limit), the kernel sends SIGTERM.
fn catch_stop_signals() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
    let action = SigAction::new(
        SigHandler::Handler(note_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in STOP_SIGNALS {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &action) }.context("failed to catch a stop signal")?;
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("failed to set PR_SET_PDEATHSIG")
}

fn main() -> ExitCode {
    if let Err(e) = catch_stop_signals() {
        eprintln!("cfs-cri-sandbox: {e:#}");
        return ExitCode::FAILURE;
    }
    let tag = std::env::args().nth(1).unwrap_or_else(|| "book".into());
    match serve(&tag) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cfs-cri-sandbox: {e:#}");
            ExitCode::FAILURE
        }
    }
}
