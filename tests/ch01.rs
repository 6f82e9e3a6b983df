//! Chapter 1: a child in a new UTS namespace, with its own hostname.

use std::process::ExitCode;
use std::time::Duration;

use cfs_tests::kernel::{children, hostname, ns_inode};
use cfs_tests::run::{as_nobody, chapter, run, wait_for, Background};
use cfs_tests::{ensure, root};

const BIN: &str = "ch01-uts";

fn main() -> ExitCode {
    cfs_tests::main(vec![
        root("hostname_inside_is_the_one_asked_for", || {
            let out = run(BIN, &["--hostname", "box", "--", "hostname"])?;
            out.expect_code(0)?;
            ensure!(
                out.stdout.trim() == "box",
                "hostname inside: {:?}",
                out.stdout
            );
            Ok(())
        }),
        root("host_hostname_is_unchanged", || {
            let before = hostname()?;
            run(BIN, &["--hostname", "elsewhere", "--", "true"])?.expect_code(0)?;
            ensure!(hostname()? == before, "the host's hostname changed");
            Ok(())
        }),
        root(
            "child_has_its_own_uts_namespace_but_shares_the_rest",
            || {
                let bg =
                    Background::start(chapter(BIN, &["--hostname", "box", "--", "sleep", "5"]))?;
                let child = wait_for(Duration::from_secs(5), || {
                    children(bg.pid()).first().copied()
                })?;
                let child = child.to_string();
                ensure!(
                    ns_inode(&child, "uts")? != ns_inode("self", "uts")?,
                    "the child is in the host's UTS namespace"
                );
                for kind in ["pid", "mnt", "net", "ipc"] {
                    ensure!(
                        ns_inode(&child, kind)? == ns_inode("self", kind)?,
                        "chapter 1 should not create a {kind} namespace"
                    );
                }
                Ok(())
            },
        ),
        root("exit_status_is_propagated", || {
            run(BIN, &["--", "true"])?.expect_code(0)?;
            run(BIN, &["--", "sh", "-c", "exit 3"])?.expect_code(3)?;
            run(BIN, &["--", "sh", "-c", "kill -9 $$"])?.expect_code(128 + 9)?;
            Ok(())
        }),
        root("command_not_found_exits_127", || {
            let out = run(BIN, &["--", "no-such-command-here"])?;
            out.expect_code(127)?;
            ensure!(
                out.stderr.trim() == "ch01-uts: command not found: no-such-command-here",
                "stderr: {:?}",
                out.stderr
            );
            Ok(())
        }),
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
        root("verbose_narrates_the_kernel_calls_in_order", || {
            let out = run(BIN, &["-v", "--hostname", "box", "--", "true"])?;
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
        }),
    ])
}
