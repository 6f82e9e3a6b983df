//! Chapter 2: a PID namespace, the command as PID 1, and a tiny init.

use std::process::ExitCode;
use std::time::Duration;

use cfs_tests::kernel::{children, ns_inode, processes_in_ns, state};
use cfs_tests::run::{chapter, run, wait_for, Background};
use cfs_tests::{ensure, root, Result};
use nix::sys::signal::Signal;

const BIN: &str = "ch02-pid";

/// A command whose child leaves an orphan behind: the inner shell starts
/// `sleep 0.2` in the background and exits at once, so the sleep is
/// re-parented to PID 1. The outer shell then becomes `sleep 3`, which never
/// calls wait(2).
const ORPHAN_MAKER: &str = "sh -c 'sleep 0.2 &'; exec sleep 3";

/// Starts `args`, waits until the container's PID 1 exists, lets the orphan
/// die, and counts the zombies in the container's PID namespace.
fn zombies_after_orphan(args: &[&str]) -> Result<usize> {
    let bg = Background::start(chapter(BIN, args))?;
    let pid1 = wait_for(Duration::from_secs(5), || {
        children(bg.pid()).first().copied()
    })?;
    let pid_ns = ns_inode(&pid1.to_string(), "pid")?;
    std::thread::sleep(Duration::from_millis(1200));
    let zombies = processes_in_ns("pid", pid_ns)
        .iter()
        .filter(|pid| state(pid) == Some('Z'))
        .count();
    bg.finish(Duration::from_secs(10))?.expect_code(0)?;
    Ok(zombies)
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        root("command_is_pid_1", || {
            let out = run(BIN, &["--", "sh", "-c", "echo $$"])?;
            out.expect_code(0)?;
            ensure!(out.stdout.trim() == "1", "$$ inside: {:?}", out.stdout);
            Ok(())
        }),
        root("child_has_its_own_pid_and_uts_namespaces", || {
            let bg = Background::start(chapter(BIN, &["--", "sleep", "5"]))?;
            let child = wait_for(Duration::from_secs(5), || {
                children(bg.pid()).first().copied()
            })?;
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
            Ok(())
        }),
        root("with_init_the_command_is_pid_2", || {
            let out = run(BIN, &["--init", "--", "sh", "-c", "echo $$"])?;
            out.expect_code(0)?;
            ensure!(out.stdout.trim() == "2", "$$ inside: {:?}", out.stdout);
            Ok(())
        }),
        root("a_pid_1_that_does_not_reap_leaves_a_zombie", || {
            let zombies = zombies_after_orphan(&["--", "sh", "-c", ORPHAN_MAKER])?;
            ensure!(
                zombies == 1,
                "expected the orphan as a zombie, found {zombies}"
            );
            Ok(())
        }),
        root("the_init_reaps_orphans", || {
            let zombies = zombies_after_orphan(&["--init", "--", "sh", "-c", ORPHAN_MAKER])?;
            ensure!(zombies == 0, "found {zombies} zombie(s) under --init");
            Ok(())
        }),
        root("sigterm_to_the_runtime_reaches_the_command", || {
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
                ensure!(
                    out.code == 42,
                    "{extra:?}: exit {} ({})",
                    out.code,
                    out.stderr
                );
            }
            Ok(())
        }),
        root("sigkill_from_inside_does_not_kill_pid_1", || {
            // The kernel ignores signals PID 1 has no handler for, when they come
            // from inside its own namespace: even SIGKILL.
            let out = run(BIN, &["--", "sh", "-c", "kill -9 $$; echo survived"])?;
            out.expect_code(0)?;
            ensure!(out.stdout.trim() == "survived", "stdout: {:?}", out.stdout);
            Ok(())
        }),
        root("exit_status_is_propagated_through_the_init", || {
            run(BIN, &["--init", "--", "sh", "-c", "exit 3"])?.expect_code(3)?;
            run(BIN, &["--init", "--", "sh", "-c", "kill -9 $$"])?.expect_code(137)?;
            run(BIN, &["--init", "--", "no-such-command-here"])?.expect_code(127)?;
            Ok(())
        }),
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
