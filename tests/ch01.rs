//! Chapter 1: a child in a new UTS namespace, with its own hostname.
//!
//! The tests declared with `check` are also lab ch01's checks (`scripts/lab
//! check ch01`): each says what it verifies and gives a hint for when it fails.

use std::process::{Command, ExitCode};
use std::time::Duration;

use cfs_tests::kernel::ns_inode;
use cfs_tests::run::{as_nobody, chapter, output, Background};
use cfs_tests::{bail, check, ensure, plain, root, Context};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitPidFlag};

const BIN: &str = "ch01-uts";

/// The runtime with `args`, started in a UTS namespace of its own (`unshare
/// --uts`): a runtime that forgets CLONE_NEWUTS renames that namespace, not
/// the machine, which others may be using (a class shares machines; tests run
/// beside other work).
fn in_own_uts(args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--uts", "--"])
        .arg(cfs_tests::paths::bin(BIN))
        .args(args);
    cmd
}

/// [`in_own_uts`], run to the end.
fn run_own_uts(args: &[&str]) -> cfs_tests::Result<cfs_tests::run::Output> {
    output(in_own_uts(args))
}

/// Hints that follow the failure (see `cfs_tests::lab::hints`).
const HINTS: &[(&str, &str)] = &[
    (
        r"ECHILD|No child process",
        "waitpid(2) said ECHILD: the child is not one it waits for: clone(2) must be given \
         SIGCHLD, the signal a child sends its parent when it ends (see clone(2), \"The child \
         termination signal\")",
    ),
    (
        r"expected exit code 137, got 9\b",
        "a death by SIGKILL must give 128 + 9 = 137, as shells do: exit_code(status) does the \
         conversion",
    ),
    (
        r"expected exit code [1-9][0-9]*, got 0\b",
        "the runtime says 0 whatever the command did: wait must return exit_code(status) of \
         the status waitpid(2) gave",
    ),
    (
        r"should not create a \w+ namespace",
        "clone(2) gets a namespace the chapter does not ask for: pass spawn's `flags`, no more",
    ),
];

fn main() -> ExitCode {
    cfs_tests::lab::hints(HINTS);
    cfs_tests::main(vec![
        check(
            "hostname_inside_is_the_one_asked_for",
            "gethostname(2) run inside the child's new UTS namespace returns the name given \
             with --hostname (`hostname` prints box)",
            "the child must call set_hostname, which calls sethostname(2), after clone(2) and \
             before exec; spawn must run child_main in the child once it is released",
            || {
                let out = run_own_uts(&["--hostname", "box", "--", "hostname"])?;
                out.expect_code(0)?;
                ensure!(
                    out.stdout.trim() == "box",
                    "hostname inside: {:?}",
                    out.stdout
                );
                Ok(())
            },
        ),
        check(
            "host_hostname_is_unchanged",
            "after a run with --hostname elsewhere, gethostname(2) on the host (a UTS namespace \
             the test made, named cfs-ch01-host) still returns the host's name: sethostname(2) \
             changed only the new UTS namespace",
            "clone(2) must get the flags spawn was given (CLONE_NEWUTS): without a new UTS \
             namespace, sethostname(2) renames the host",
            || {
                // The "host" is a UTS namespace of the test's own (unshare --uts),
                // named cfs-ch01-host: a runtime that renames its host renames
                // that one, never the machine, which others may be using.
                let mut cmd = Command::new("unshare");
                cmd.args(["--uts", "--", "sh", "-c"])
                    .arg(
                        "hostname cfs-ch01-host && \"$0\" --hostname elsewhere -- true; \
                         code=$?; echo \"host: $(hostname)\"; exit $code",
                    )
                    .arg(cfs_tests::paths::bin(BIN));
                let out = output(cmd)?;
                out.expect_code(0)?;
                let after = out.stdout.trim().trim_start_matches("host: ");
                ensure!(
                    after == "cfs-ch01-host",
                    "the host's hostname changed to {after:?}"
                );
                Ok(())
            },
        ),
        check(
            "child_has_its_own_uts_namespace_but_shares_the_rest",
            "/proc/<child>/ns/uts has another inode than the runtime's, while its pid, mnt, \
             net and ipc inodes are the runtime's",
            "clone(2) creates exactly the namespaces whose CLONE_NEW* flags it is given: pass \
             spawn's `flags`, no more, and keep the child alive until it execs the command",
            || {
                let mut bg =
                    Background::start(in_own_uts(&["--hostname", "box", "--", "sleep", "5"]))?;
                let child = bg
                    .first_child(Duration::from_secs(5))
                    .context("the runtime has no child: clone(2) was not called")?;
                let (child, runtime) = (child.to_string(), bg.pid().to_string());
                ensure!(
                    ns_inode(&child, "uts")? != ns_inode(&runtime, "uts")?,
                    "the child is in the host's UTS namespace"
                );
                for kind in ["pid", "mnt", "net", "ipc"] {
                    ensure!(
                        ns_inode(&child, kind)? == ns_inode(&runtime, kind)?,
                        "chapter 1 should not create a {kind} namespace"
                    );
                }
                Ok(())
            },
        ),
        check(
            "exit_status_is_propagated",
            "the wait status from waitpid(2) becomes the runtime's exit code: exit 0 gives 0, \
             exit 3 gives 3, death by SIGKILL gives 128 + 9 = 137",
            "wait must call waitpid(2) again until the status says the child exited or was \
             killed (retry on EINTR) and return exit_code(status)",
            || {
                run_own_uts(&["--", "true"])?.expect_code(0)?;
                run_own_uts(&["--", "sh", "-c", "exit 3"])?.expect_code(3)?;
                run_own_uts(&["--", "sh", "-c", "kill -9 $$"])?.expect_code(128 + 9)?;
                Ok(())
            },
        ),
        check(
            "command_not_found_exits_127",
            "execvp(2) fails with ENOENT in the child, which prints one error line and exits \
             127; the runtime exits 127 too",
            "the cloned child must run child_entry, which turns the error of child_main into an \
             exit code, and wait must pass that code on",
            || {
                let out = run_own_uts(&["--", "no-such-command-here"])?;
                out.expect_code(127)?;
                ensure!(
                    out.stderr.trim() == "ch01-uts: command not found: no-such-command-here",
                    "stderr: {:?}",
                    out.stderr
                );
                Ok(())
            },
        ),
        root("not_root_is_a_one_line_error", || {
            let out = as_nobody(chapter(BIN, &["--", "true"]))?;
            out.expect_code(1)?;
            ensure!(
                out.stderr.trim()
                    == "ch01-uts: must run as root to create namespaces: run it with sudo",
                "stderr: {:?}",
                out.stderr
            );
            Ok(())
        }),
        check(
            "verbose_narrates_the_kernel_calls_in_order",
            "with -v, stderr names clone(CLONE_NEWUTS), sethostname(\"box\"), execvp(\"true\" \
             and waitpid(, in the order the calls are made",
            "announce each call with say! just before or after making it, worded like the \
             call, as `-v` does in the book's ch01-verbose session",
            || {
                let out = run_own_uts(&["-v", "--hostname", "box", "--", "true"])?;
                out.expect_code(0)?;
                let wanted = [
                    "clone(CLONE_NEWUTS)",
                    "sethostname(\"box\")",
                    "execvp(\"true\"",
                    "waitpid(",
                ];
                let mut at = 0;
                for needle in wanted {
                    let found = out.stderr[at..].find(needle);
                    ensure!(
                        found.is_some(),
                        "{needle} missing or out of order in\n{}",
                        out.stderr
                    );
                    at += found.unwrap_or(0);
                }
                Ok(())
            },
        ),
        plain("a_panic_in_the_child_ends_it_with_101", || {
            // A lab's todo!() in code the child runs (set_hostname) panics in
            // the cloned child; it must end that child as a panic ends main,
            // not abort it through clone(2)'s extern "C" callback (SIGABRT).
            // No CLONE_NEW* flag: clone(2) without namespaces needs no root.
            let child = ch01_uts::process::spawn(CloneFlags::empty(), || {
                panic!("a panic on purpose, in the child of a_panic_in_the_child_ends_it_with_101")
            })?;
            let pid = child.release()?;
            let code = ch01_uts::process::wait(pid)?;
            ensure!(
                code == 101,
                "the child ended with {code}, not 101 (a caught panic)"
            );
            Ok(())
        }),
        plain("an_unreleased_child_is_reaped_when_dropped", || {
            // The runtime drops a child it never released when its set-up
            // fails: the child must end and be reaped there, not be left a
            // zombie of the process that goes on (a test, a daemon).
            let child = ch01_uts::process::spawn(CloneFlags::empty(), || {
                bail!("released, though the parent dropped it")
            })?;
            let pid = child.pid();
            drop(child);
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Err(Errno::ECHILD) => Ok(()),
                other => bail!(
                    "child {pid} was not reaped when its Child was dropped: waitpid said {other:?}"
                ),
            }
        }),
    ])
}
