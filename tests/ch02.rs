//! Chapter 2: a PID namespace, the command as PID 1, and a tiny init.
//!
//! The tests declared with `check` are also lab ch02's checks (`scripts/lab
//! check ch02`): each says what it verifies and gives a hint for when it fails.

use std::process::ExitCode;
use std::time::Duration;

use cfs_tests::kernel::{children, ns_inode, processes_in_ns, state};
use cfs_tests::run::{chapter, run, wait_for, Background};
use cfs_tests::{check, ensure, root, Context, Result};
use nix::sys::signal::Signal;

const BIN: &str = "ch02-pid";

/// A command whose child leaves an orphan behind: the inner shell starts
/// `sleep 0.2` in the background and exits at once, so the sleep is
/// re-parented to PID 1. The outer shell then becomes `sleep 3`, which never
/// calls wait(2).
const ORPHAN_MAKER: &str = "sh -c 'sleep 0.2 &'; exec sleep 3";

/// Starts `args`, waits until the container's PID 1 exists, lets the orphan
/// die, and counts the processes in the container's PID namespace: the
/// zombies, and those still running (the command, `sleep 3`, and an init).
fn zombies_after_orphan(args: &[&str]) -> Result<(usize, usize)> {
    let bg = Background::start(chapter(BIN, args))?;
    let pid1 = wait_for(Duration::from_secs(5), || {
        children(bg.pid()).first().copied()
    })
    .context("the runtime has no child: no PID 1 was started")?;
    let pid_ns = ns_inode(&pid1.to_string(), "pid")?;
    std::thread::sleep(Duration::from_millis(1200));
    let (zombies, running): (Vec<_>, Vec<_>) = processes_in_ns("pid", pid_ns)
        .into_iter()
        .map(|pid| state(&pid))
        .partition(|state| *state == Some('Z'));
    bg.finish(Duration::from_secs(10))?.expect_code(0)?;
    Ok((zombies.len(), running.len()))
}

/// Hints that follow the failure (see `cfs_tests::lab::hints`).
const HINTS: &[(&str, &str)] = &[
    (
        r"expected exit code 137, got 0\b",
        "a death by SIGKILL came back as 0: a command killed by a signal gives 128 + the \
         signal's number, which exit_code(status) computes",
    ),
    (
        r"expected exit code [1-9][0-9]*, got 0\b",
        "the init ends with 0 whatever the command did: it must exit(2) with the code \
         supervise returned",
    ),
    (
        r"zombie\(s\) under --init",
        "under --init PID 1 must reap every child that ends, not only the command: supervise \
         with Reap::Orphans waits on pid -1",
    ),
    (
        r"expected exit 42|timed out after",
        "the command never got the SIGTERM: supervise must not sleep in waitpid(2) (WNOHANG \
         only reaps what has ended) but in sigwait(3), and forward what it returns with kill(2)",
    ),
    (
        r"\$\$ inside: \\?\x22?1",
        "under --init the command runs as PID 1: init::run must fork(2) it and stay PID 1 \
         itself",
    ),
];

fn main() -> ExitCode {
    cfs_tests::lab::hints(HINTS);
    cfs_tests::main(vec![
        check(
            "command_is_pid_1",
            "getpid(2) in the command returns 1 (`echo $$` prints 1): the first process of a \
             new PID namespace is its PID 1",
            "the runtime must wait for the child with supervise(pid, Reap::MainOnly) and return its \
             exit code",
            || {
                let out = run(BIN, &["--", "sh", "-c", "echo $$"])?;
                out.expect_code(0)?;
                ensure!(out.stdout.trim() == "1", "$$ inside: {:?}", out.stdout);
                Ok(())
            },
        ),
        check(
            "child_has_its_own_pid_and_uts_namespaces",
            "/proc/<child>/ns/pid and ns/uts have other inodes than the runtime's, ns/mnt is \
             the runtime's, and the runtime exits 0 once PID 1 has ended",
            "supervise must keep the runtime waiting while PID 1 runs: sigwait(3) for \
             signals, waitpid(2) with WNOHANG only to reap",
            || {
                let bg = Background::start(chapter(BIN, &["--", "sleep", "2"]))?;
                let child = wait_for(Duration::from_secs(5), || {
                    children(bg.pid()).first().copied()
                })
                .context("the runtime has no child: no PID 1 was started")?;
                let child = child.to_string();
                for kind in ["pid", "uts"] {
                    ensure!(
                        ns_inode(&child, kind)? != ns_inode("self", kind)?,
                        "the child shares the host's {kind} namespace"
                    );
                }
                ensure!(
                    ns_inode(&child, "mnt")? == ns_inode("self", "mnt")?,
                    "chapter 2 should not create a mount namespace"
                );
                // The runtime must still be there, waiting for PID 1 to end.
                bg.finish(Duration::from_secs(10))?.expect_code(0)?;
                Ok(())
            },
        ),
        check(
            "with_init_the_command_is_pid_2",
            "under --init the init is PID 1 and fork(2)s the command, which is PID 2 (`echo \
             $$` prints 2)",
            "init::run must fork(2); the child execs the command with process::exec, the \
             parent supervises it",
            || {
                let out = run(BIN, &["--init", "--", "sh", "-c", "echo $$"])?;
                out.expect_code(0)?;
                ensure!(out.stdout.trim() == "2", "$$ inside: {:?}", out.stdout);
                Ok(())
            },
        ),
        check(
            "a_pid_1_that_does_not_reap_leaves_a_zombie",
            "without --init, an orphan re-parented to a PID 1 that never calls wait(2) is \
             left in state Z in /proc/<pid>/stat, in the container's PID namespace",
            "the runtime on the host must wait for its own child only (supervise(pid, Reap::MainOnly) \
             waits on that pid, not on -1) and exit with its code",
            || {
                let (zombies, _) = zombies_after_orphan(&["--", "sh", "-c", ORPHAN_MAKER])?;
                ensure!(
                    zombies == 1,
                    "expected the orphan as a zombie, found {zombies}"
                );
                Ok(())
            },
        ),
        check(
            "the_init_reaps_orphans",
            "under --init no process of the container's PID namespace is left in state Z: PID \
             1 reaped the orphan with waitpid(2)",
            "with Reap::Orphans, supervise waits on pid -1 with WNOHANG until StillAlive, \
             reaping every child, not only main",
            || {
                let (zombies, running) =
                    zombies_after_orphan(&["--init", "--", "sh", "-c", ORPHAN_MAKER])?;
                ensure!(zombies == 0, "found {zombies} zombie(s) under --init");
                // An init that takes the orphan for the command ends the
                // container with it, the command still sleeping (and exits
                // with the orphan's code, 0, as the command would).
                ensure!(
                    running > 0,
                    "the container was gone once its orphan ended, its command still to run: \
                     the init took the orphan for the command"
                );
                Ok(())
            },
        ),
        check(
            "sigterm_to_the_runtime_reaches_the_command",
            "SIGTERM sent to the runtime reaches the command's trap, which exits 42, with and \
             without --init",
            "supervise takes signals with sigwait(3) on the blocked set and forwards every \
             one but SIGCHLD to main with kill(2); it reaps with waitpid(2) and WNOHANG only, \
             never sleeping in it",
            || {
                for extra in [&[][..], &["--init"][..]] {
                    let mut args = extra.to_vec();
                    args.extend([
                        "--",
                        "sh",
                        "-c",
                        "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done",
                    ]);
                    let bg = Background::start(chapter(BIN, &args))?;
                    // Wait until the trap is set: the shell has printed "ready" and runs sleep.
                    wait_for(Duration::from_secs(5), || {
                        let pid1 = *children(bg.pid()).first()?;
                        (!children(pid1).is_empty()).then_some(())
                    })?;
                    std::thread::sleep(Duration::from_millis(200));
                    bg.signal(Signal::SIGTERM)?;
                    let out = bg.finish(Duration::from_secs(10))?;
                    let mode = if extra.is_empty() {
                        "without --init"
                    } else {
                        "with --init"
                    };
                    ensure!(
                        out.code == 42,
                        "{mode}: expected exit 42 from the command's trap, got {}\nstderr: {}",
                        out.code,
                        out.stderr
                    );
                }
                Ok(())
            },
        ),
        check(
            "sigkill_from_inside_does_not_kill_pid_1",
            "kill -9 $$ from inside the namespace leaves PID 1 running: the kernel drops \
             signals that PID 1 has no handler for, when they come from inside",
            "the kernel does this part; the check fails when the runtime does not wait for \
             PID 1 and exit with its code",
            || {
                // The kernel ignores signals PID 1 has no handler for, when they come
                // from inside its own namespace: even SIGKILL.
                let out = run(BIN, &["--", "sh", "-c", "kill -9 $$; echo survived"])?;
                out.expect_code(0)?;
                ensure!(out.stdout.trim() == "survived", "stdout: {:?}", out.stdout);
                Ok(())
            },
        ),
        check(
            "exit_status_is_propagated_through_the_init",
            "under --init the command's exit 3, death by SIGKILL (137) and missing command \
             (127) come back through the init's exit(2) and the runtime's waitpid(2)",
            "init::run must exit with the code supervise returns; supervise returns \
             exit_code(status) once main has ended",
            || {
                run(BIN, &["--init", "--", "sh", "-c", "exit 3"])?.expect_code(3)?;
                run(BIN, &["--init", "--", "sh", "-c", "kill -9 $$"])?.expect_code(137)?;
                run(BIN, &["--init", "--", "no-such-command-here"])?.expect_code(127)?;
                Ok(())
            },
        ),
        root("proc_still_shows_host_processes", || {
            // Without a mount namespace and a fresh /proc, the container's ps reads
            // the host's /proc: our own test process is visible from inside.
            let me = std::process::id().to_string();
            let out = run(
                BIN,
                &[
                    "--",
                    "sh",
                    "-c",
                    &format!("test -d /proc/{me} && echo visible"),
                ],
            )?;
            ensure!(out.stdout.trim() == "visible", "stdout: {:?}", out.stdout);
            Ok(())
        }),
    ])
}
