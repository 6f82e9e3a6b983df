//! A tiny init: reap zombies, forward signals, exit with the command's status.
//!
//! When a process dies, it stays a *zombie* until its parent collects its exit
//! status with `wait(2)`. When a parent dies first, its children are re-parented
//! to PID 1 of their PID namespace, so PID 1 must reap them or they pile up.
//! A shell or a server started as PID 1 rarely does: it was not written to be
//! an init. Signals are the other duty: the kernel does not apply the default
//! action (such as "terminate") to PID 1 of a namespace, so a `SIGTERM` that
//! would stop a process elsewhere does nothing to a PID 1 without a handler.
//!
//! [`supervise`] is the loop both sides of this chapter use: the runtime on the
//! host forwards signals to the container's PID 1 and waits for it; the init
//! inside forwards them to the command and also reaps every orphan. It waits
//! with `sigwait(3)` on a blocked signal set rather than with signal handlers,
//! as tini and catatonit do, so no signal can arrive between two checks and be
//! lost. See `pid_namespaces(7)`, `wait(2)`, `sigprocmask(2)`.
//!
//! What it leaves out: process groups and terminal job control (tini's `-g`),
//! and a grace period that kills the remaining processes before PID 1 exits
//! (the kernel does that for us: when PID 1 of a namespace exits, every other
//! process in it gets `SIGKILL`).

use std::convert::Infallible;

use anyhow::{Context, Result};
use ch01_uts::process::{self, describe_status, exit_code};
use ch01_uts::{narrate, say};
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// The signals an init passes on to the command. The rest keep their default
/// meaning (`SIGKILL` and `SIGSTOP` cannot be caught at all).
pub const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for signal in FORWARDED {
        set.add(*signal);
    }
    set.add(Signal::SIGCHLD);
    set
}

// ANCHOR: block
/// Blocks the signals [`supervise`] waits for.
///
/// Called before `clone(2)`: a child inherits the mask, so a signal sent
/// between the clone and the wait loop stays pending instead of being lost.
/// [`process::exec`] clears the mask again for the command.
pub fn block_signals() -> Result<()> {
    say!("sigprocmask(SIG_BLOCK, SIGCHLD and the forwarded signals)");
    handled()
        .thread_block()
        .context("failed to block signals with sigprocmask")?;
    Ok(())
}
// ANCHOR_END: block

// ANCHOR: supervise
/// Which children [`supervise`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reap {
    /// Only the main process: the runtime on the host, whose other children
    /// (if any) are none of the container's business.
    MainOnly,
    /// Every child that ends, orphans included: the init's job as PID 1.
    Orphans,
}

/// Waits for `main` to end, forwarding signals to it; returns its exit code.
///
/// With [`Reap::Orphans`] every other child that ends is reaped too; with
/// [`Reap::MainOnly`] only `main` is waited for.
/// Expects the signals to be blocked already (see [`block_signals`]).
pub fn supervise(main: Pid, reap: Reap) -> Result<i32> {
    // LAB:BEGIN supervise: wait for main to end while forwarding the signals it is sent, and as init reap orphans; see waitpid(2), sigwait(3), kill(2)
    let signals = handled();
    let target = match reap {
        Reap::Orphans => Pid::from_raw(-1),
        Reap::MainOnly => main,
    };
    loop {
        // Reap everything that has ended, before sleeping again.
        loop {
            match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) if status.pid() == Some(main) => {
                    if let Some(code) = exit_code(status) {
                        say!("waitpid(pid {main}) -> {}", describe_status(status));
                        return Ok(code);
                    }
                }
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        say!("reaped orphan pid {pid} ({})", describe_status(status));
                    }
                }
                Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(errno).with_context(|| format!("failed to wait for pid {main}"))
                }
            }
        }
        let signal = signals.wait().context("failed to wait for a signal")?;
        if signal != Signal::SIGCHLD {
            say!("kill({main}, {}) (forwarding)", signal.as_str());
            match kill(main, signal) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => {
                    return Err(errno)
                        .with_context(|| format!("failed to forward {signal} to pid {main}"))
                }
            }
        }
    }
    // LAB:END
}
// ANCHOR_END: supervise

// ANCHOR: run
/// Becomes the namespace's init: forks the command as PID 2, supervises it as
/// PID 1, and exits with its exit code. Never returns on success.
pub fn run(argv: &[String]) -> Result<Infallible> {
    // LAB:BEGIN run: run argv as a child of the init, supervise it, end with its exit code; see fork(2)
    narrate::set_role("init");
    // Said before forking, so this line always comes before the command's own.
    say!("fork() a child for the command");
    // SAFETY: the process is single-threaded, so the child may run any code.
    let command = match unsafe { fork() }.context("failed to fork the command")? {
        ForkResult::Child => {
            narrate::set_role("child");
            return process::exec(argv);
        }
        ForkResult::Parent { child } => child,
    };
    let code = supervise(command, Reap::Orphans)?;
    say!("exit({code})");
    std::process::exit(code)
    // LAB:END
}
// ANCHOR_END: run
