//! `cfs-pause`: what Kubernetes calls the pause container, the process that
//! holds a pod sandbox's namespaces while the pod's containers come and go.
//!
//! It does three things: sleeps, reaps every child that ends (as PID 1 it
//! adopts the orphans of its PID namespace), and exits 0 on `SIGTERM` or
//! `SIGINT`. The engine tests use it twice: as the pause image of
//! containerd's CRI plugin (`sandbox_image`), and as PID 1 of the sandbox the
//! tests run the engines in (tests/harness/sandbox.rs).
//!
//! PID 1 of a PID namespace gets only the signals it has asked for: a signal
//! it leaves at its default action is dropped. Blocked signals are never
//! dropped, so blocking them and taking them with `sigwaitinfo(2)` works.
//! Kubernetes' own pause (C, `pause.c`) installs handlers instead; it also
//! leaves out what this one leaves out: no logging, no `-v`.
//!
//! Built statically (`scripts/build`) so that it runs inside a busybox
//! rootfs or an image with nothing else in it.

use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

fn main() -> ExitCode {
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        signals.add(signal);
    }
    if let Err(err) = signals.thread_block() {
        eprintln!("cfs-pause: failed to block signals: {err}");
        return ExitCode::FAILURE;
    }
    loop {
        match signals.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(_) => return ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("cfs-pause: sigwait failed: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Reaps every child that has ended: several may end for one `SIGCHLD`.
fn reap() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
