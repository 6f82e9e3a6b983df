//! Processes: clone a child into new namespaces, exec the command, wait for it.
//!
//! `clone(2)` is `fork(2)` with options: its flags say which namespaces the child
//! gets new copies of. The child does not run on its own right away: it blocks
//! on a pipe until the parent says "go". In chapter 1 the parent says it at once;
//! later chapters do work in between (chapter 4 puts the child into a cgroup,
//! chapter 6 writes its user-ID maps) so that the command never runs unconfined.
//! runc does the same with its `exec.fifo` and init pipe.
//!
//! The child also asks to be killed when the runtime dies
//! (`PR_SET_PDEATHSIG`, see `prctl(2)`), so no container outlives the process
//! that manages it. Chapter 6 lifts this: there the container must outlive the
//! runtime, as it does under containerd.
//!
//! What it leaves out: `clone3(2)` and `CLONE_INTO_CGROUP`, which newer runtimes
//! use to start a child directly inside a cgroup.

use std::convert::Infallible;
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{execvp, geteuid, pipe2, Pid};

use crate::namespaces::describe;
use crate::{narrate, say};

/// Stack for the cloned child. `clone(2)` without `CLONE_VM` gives the child a
/// copy of our memory, so this buffer is only the place where the child's first
/// frame lives; pages it never touches are never allocated.
const STACK_SIZE: usize = 8 * 1024 * 1024;

/// A cloned child that is waiting for the parent's "go" (see [`Child::release`]).
///
/// Dropping a `Child` that was never released closes the pipe: the child reads
/// end-of-file, exits at once, and is reaped here, so an error in the parent's
/// set-up leaves no process behind.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    go: Option<OwnedFd>,
}

impl Child {
    /// The child's PID as the parent sees it (in the parent's PID namespace).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Lets the child go on to run its part. Returns its PID, for [`wait`].
    pub fn release(mut self) -> Result<Pid> {
        let go = self.go.take().context("child was already released")?;
        say!("write(sync pipe) -> child {} may go on", self.pid);
        nix::unistd::write(&go, b"1").with_context(|| {
            format!("failed to release child {} through the sync pipe", self.pid)
        })?;
        Ok(self.pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(go) = self.go.take() {
            drop(go);
            let _ = waitpid(self.pid, None);
        }
    }
}

// ANCHOR: spawn
/// Clones a child into the namespaces named by `flags`.
///
/// The child first waits for [`Child::release`], then runs `child_main`, which
/// normally ends by [`exec`]ing the command. If `child_main` fails, the child
/// prints the error and exits with [`exit_code_for`] it.
pub fn spawn<F>(flags: CloneFlags, child_main: F) -> Result<Child>
where
    F: FnOnce() -> Result<Infallible>,
{
    // LAB:BEGIN spawn: start a child in the namespaces of `flags` that runs child_main once released; see clone(2), pipe(2)
    // Close-on-exec: the command must not inherit the pipe.
    let (go_read, go_write) = pipe2(OFlag::O_CLOEXEC).context("failed to create the sync pipe")?;
    let (read_fd, write_fd) = (go_read.as_raw_fd(), go_write.as_raw_fd());

    let mut child_main = Some(child_main);
    let callback = Box::new(move || {
        narrate::set_role("child");
        child_entry(read_fd, write_fd, child_main.take())
    });
    let mut stack = vec![0u8; STACK_SIZE];
    // SAFETY: we are single-threaded, and without CLONE_VM the child runs on a
    // copy of our memory, so it cannot disturb the parent's data.
    let pid = unsafe { nix::sched::clone(callback, &mut stack, flags, Some(libc::SIGCHLD)) }
        .with_context(|| format!("failed to clone(2) a child with {}", describe(flags)))?;
    say!("clone({}) -> child pid {pid}", describe(flags));
    drop(go_read);
    Ok(Child {
        pid,
        go: Some(go_write),
    })
    // LAB:END
}
// ANCHOR_END: spawn

// ANCHOR: child_entry
/// The child's side of [`spawn`]: wait for "go", then run its part.
fn child_entry<F>(read_fd: RawFd, write_fd: RawFd, child_main: Option<F>) -> isize
where
    F: FnOnce() -> Result<Infallible>,
{
    // Our copy of the write end must go, or we would never see end-of-file.
    let _ = nix::unistd::close(write_fd);
    // If the runtime dies (even by SIGKILL), the kernel kills us too, so no
    // container outlives the runtime that manages it. Set before reading the
    // pipe: a parent that died earlier shows up as end-of-file below.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        return 1;
    }
    let mut byte = [0u8; 1];
    // SAFETY: read_fd is our copy of the pipe's read end, open until exec.
    let got = nix::unistd::read(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(read_fd) },
        &mut byte,
    );
    if got != Ok(1) {
        // The parent failed or died before releasing us: do nothing at all.
        return 1;
    }
    let Some(child_main) = child_main else {
        return 1;
    };
    // A panic must not unwind out of here: clone(2) calls us through an
    // `extern "C"` function, where unwinding aborts the process (SIGABRT, a
    // core dump). Caught, it ends the child as a panic ends `main`: the panic
    // hook has printed the message (a lab's `todo!()` says what is missing),
    // and the exit code is 101.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(child_main)) {
        Ok(Ok(never)) => match never {},
        Ok(Err(err)) => {
            eprintln!("{}: {err:#}", crate::cli::program_name());
            exit_code_for(&err) as isize
        }
        Err(_panic) => 101,
    }
}
// ANCHOR_END: child_entry

/// Why `execve(2)` failed, kept apart so the exit code can follow the shell's
/// convention: 127 when the command was not found, 126 when it was found but
/// could not be run.
#[derive(Debug)]
pub struct ExecFailed {
    pub program: String,
    pub errno: Errno,
}

impl fmt::Display for ExecFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Errno::ENOENT => write!(f, "command not found: {}", self.program),
            errno => write!(f, "failed to execute {}: {}", self.program, errno.desc()),
        }
    }
}

impl std::error::Error for ExecFailed {}

/// The exit code for an error: 127/126 for a failed exec (as a shell does), 1
/// for anything else.
pub fn exit_code_for(err: &anyhow::Error) -> i32 {
    match err.downcast_ref::<ExecFailed>() {
        Some(ExecFailed {
            errno: Errno::ENOENT,
            ..
        }) => 127,
        Some(_) => 126,
        None => 1,
    }
}

// ANCHOR: exec
/// Replaces the calling process with `argv[0]`, searched in `PATH`.
///
/// Returns only on failure. A new program starts with an empty signal mask,
/// whatever the runtime had blocked (chapter 2 blocks signals before cloning).
pub fn exec(argv: &[String]) -> Result<Infallible> {
    let Some(program) = argv.first() else {
        bail!("no command given");
    };
    let args = argv
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("an argument of {program} contains a NUL byte"))?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("failed to clear the signal mask")?;
    say!("execvp({program:?}, {argv:?})");
    let Err(errno) = execvp(&args[0], &args);
    Err(ExecFailed {
        program: program.clone(),
        errno,
    }
    .into())
}
// ANCHOR_END: exec

/// The exit code a shell would report for a wait status: the code itself, or
/// 128 + the signal number when the process was killed. `None` for statuses
/// that do not end a process (stopped, continued).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// Describes a wait status for narration: `exited 0`, `killed by SIGKILL`.
pub fn describe_status(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("killed by {}", signal_name(signal)),
        other => format!("{other:?}"),
    }
}

/// `SIGKILL` for `Signal::SIGKILL`.
pub fn signal_name(signal: Signal) -> &'static str {
    signal.as_str()
}

// ANCHOR: wait
/// Waits for `pid` to end and returns its exit code (see [`exit_code`]).
pub fn wait(pid: Pid) -> Result<i32> {
    // LAB:BEGIN wait: wait until the child has ended and return its exit code; see waitpid(2)
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    say!("waitpid({pid}) -> {}", describe_status(status));
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(errno).with_context(|| format!("failed to wait for pid {pid}"))
            }
        }
    }
    // LAB:END
}
// ANCHOR_END: wait

/// Fails unless we run as root: creating namespaces (other than a user
/// namespace) needs `CAP_SYS_ADMIN`.
pub fn require_root() -> Result<()> {
    if !geteuid().is_root() {
        bail!("must run as root to create namespaces: run it with sudo");
    }
    Ok(())
}

// ANCHOR: identity
/// The state letter (`R`, `S`, `Z`, ...) and the start time of process `pid`,
/// in clock ticks since boot, from `/proc/<pid>/stat` (fields 3 and 22, see
/// `proc(5)`); `None` when there is no such process.
pub fn stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces and
    // parentheses: count from after its last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The start time of process `pid` (see [`stat`]). A runtime saves it beside
/// the PID: PIDs are reused, so by the time a later run reads a saved PID
/// back it may name another process, which has another start time.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether the process a runtime saved as `pid` and `start_time` still runs:
/// the PID exists, with that start time (it was not reused), and is neither a
/// zombie (`Z`: it ended and waits for its parent to collect its status) nor
/// dead (`X`). Chapters 5 and 6 ask it of the containers they saved.
pub fn still_running(pid: i32, start_time: u64) -> bool {
    matches!(stat(pid), Some((state, start)) if start == start_time && state != 'Z' && state != 'X')
}
// ANCHOR_END: identity

#[cfg(test)]
mod tests {
    use super::*;

    /// No session shows a death by a signal, so this is where its narration
    /// is checked.
    #[test]
    fn a_death_by_a_signal_is_narrated_with_its_name() {
        let pid = Pid::from_raw(42);
        assert_eq!(
            describe_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            "killed by SIGKILL"
        );
        assert_eq!(describe_status(WaitStatus::Exited(pid, 3)), "exited 3");
    }

    #[test]
    fn a_saved_process_is_told_apart_from_a_reused_pid_and_a_zombie() {
        let me = std::process::id() as i32;
        let (state, start) = stat(me).expect("our own stat");
        assert!(state == 'R' || state == 'S', "{state}");
        assert_eq!(start_time(me), Some(start));
        assert!(still_running(me, start));
        // Another start time: the PID was reused by another process.
        assert!(!still_running(me, start + 1));
        assert_eq!(stat(-1), None);
        assert!(!still_running(-1, start));
        // A child that exited and was not reaped yet is a zombie: it ended.
        let child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id() as i32;
        let started = start_time(pid).expect("the child's start time");
        let zombie = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            matches!(stat(pid), Some(('Z', _)))
        });
        assert!(zombie, "the child never became a zombie");
        assert!(!still_running(pid, started));
        let mut child = child;
        child.wait().expect("reap the child");
        assert!(!still_running(pid, started));
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        let pid = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
        let not_found = anyhow::Error::new(ExecFailed {
            program: "nope".into(),
            errno: Errno::ENOENT,
        });
        assert_eq!(exit_code_for(&not_found), 127);
        assert_eq!(not_found.to_string(), "command not found: nope");
        let denied = anyhow::Error::new(ExecFailed {
            program: "/etc".into(),
            errno: Errno::EACCES,
        });
        assert_eq!(exit_code_for(&denied), 126);
        assert_eq!(exit_code_for(&anyhow::anyhow!("other")), 1);
    }
}
