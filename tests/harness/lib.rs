//! The test harness shared by every integration test.
//!
//! The tests start the chapter binaries as root and then read the kernel's own
//! account of what happened (`/proc/<pid>/ns/*`, `/proc/<pid>/stat`,
//! `/proc/self/mountinfo`, cgroup files), not only what the binaries print.
//!
//! Tests that need root are declared with [`root`]. Run as a normal user they
//! are reported as *ignored* with the reason, and a banner says how many were
//! skipped; with `CI=true` a test that would be skipped fails instead, so CI can
//! never pass with tests that did not run. Root tests run one at a time, so a
//! test that compares mount tables or measures CPU time is not disturbed by
//! another.
//!
//! A root test can also be a lab *check*, declared with [`check`]: it says what
//! it verifies in kernel terms and gives a hint for when it fails, so that
//! `scripts/lab check` can show a chapter's checks as a scoreboard (see [`lab`]).

use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

pub mod bundle;
/// The CRI client is chapter 7's (`ch07_node::cri`): the product's code, one home.
pub use ch07_node::cri;
pub mod engines;
pub mod kernel;
pub mod lab;
pub mod mutants;
pub mod overlay;
pub mod paths;
pub mod registry;
pub mod run;
pub mod sandbox;
pub mod scripts;
pub mod session;
pub mod shared_host;

pub use anyhow::{anyhow, bail, ensure, Context, Result};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether we run under CI (`CI=true`), where skipping a test is a failure.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

const SKIP_REASON: &str = "needs root: run `sudo scripts/test`";

fn to_failed(err: anyhow::Error) -> Failed {
    Failed::from(format!("{err:#}"))
}

/// A test that needs root (it creates namespaces, mounts or cgroups).
pub fn root<F>(name: &str, test: F) -> Trial
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    Trial::ignorable_test(name, move || {
        if !is_root() {
            if in_ci() {
                return Err(Failed::from(format!(
                    "this test {SKIP_REASON}, and CI must not skip tests"
                )));
            }
            return Ok(Completion::ignored_with(SKIP_REASON));
        }
        test().map(|()| Completion::Completed).map_err(to_failed)
    })
}

/// A root test that is also one of the chapter's lab checks (see [`lab`]).
///
/// `checked` says what the test verifies, in kernel terms ("/proc/<pid>/ns/uts
/// of the child differs from the runtime's"); `hint` says what to look at when
/// it fails, without giving the solution away. Under `cargo test` it behaves
/// as [`root`], except that processes the test leaves behind are killed.
pub fn check<F>(name: &str, checked: &str, hint: &str, test: F) -> Trial
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    lab::register(name, checked, hint);
    let check = name.to_string();
    Trial::ignorable_test(name, move || {
        if !is_root() {
            lab::record_skipped(&check, SKIP_REASON);
            if in_ci() {
                return Err(Failed::from(format!(
                    "this test {SKIP_REASON}, and CI must not skip tests"
                )));
            }
            return Ok(Completion::ignored_with(SKIP_REASON));
        }
        let sweep = lab::Sweep::start();
        lab::catch_panic_locations();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
        drop(sweep);
        match result {
            Ok(Ok(())) => {
                lab::record_passed(&check);
                Ok(Completion::Completed)
            }
            Ok(Err(err)) => {
                let message = format!("{err:#}");
                lab::record_failed(&check, &message);
                Err(Failed::from(message))
            }
            Err(panic) => {
                let payload = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "the test panicked".to_string());
                let message = lab::describe_panic(&payload);
                lab::record_failed(&check, &message);
                Err(Failed::from(format!("test panicked: {message}")))
            }
        }
    })
}

/// With `CFS_BUILD_BINS=1`, builds the workspace's binaries first (`cargo
/// build --workspace --bins`); with `CFS_BUILD_BINS=ch01-uts,ch02-pid`, those
/// packages' binaries only. The tests run the chapter binaries, which `cargo
/// test -p cfs-tests` does not build: a tool that changes a chapter's code and
/// runs only the tests, such as cargo-mutants (`scripts/mutants`), needs them
/// rebuilt, and naming the packages spares it the later chapters' binaries.
fn build_bins() -> Result<()> {
    let Ok(which) = std::env::var("CFS_BUILD_BINS") else {
        return Ok(());
    };
    let mut args = vec!["build".to_string(), "--bins".to_string()];
    match which.as_str() {
        "" | "0" => return Ok(()),
        "1" => args.push("--workspace".to_string()),
        packages => {
            for package in packages.split(',') {
                args.extend(["-p".to_string(), package.to_string()]);
            }
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = std::process::Command::new(cargo)
        .args(&args)
        .current_dir(paths::workspace())
        .status()
        .with_context(|| format!("failed to run cargo {}", args.join(" ")))?;
    anyhow::ensure!(status.success(), "cargo {} failed", args.join(" "));
    Ok(())
}

/// A test that runs as any user.
pub fn plain<F>(name: &str, test: F) -> Trial
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    Trial::test(name, move || test().map_err(to_failed))
}

/// The `main` of every integration-test binary: runs the trials one at a time
/// and says loudly how many were skipped for want of root.
///
/// With `CFS_LAB=1` it runs only the checks and prints a scoreboard instead
/// (see [`lab`]).
pub fn main(trials: Vec<Trial>) -> ExitCode {
    let mut args = Arguments::from_args();
    if let Err(err) = build_bins() {
        eprintln!("{err:#}");
        return ExitCode::FAILURE;
    }
    if lab::enabled() {
        return lab::run(args, trials);
    }
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    lab::set_sequential(args.test_threads == Some(1));
    let conclusion = libtest_mimic::run(&args, trials);
    if conclusion.num_ignored > 0 {
        eprintln!(
            "\nSKIPPED: {} test(s) need root and were not run: run `sudo scripts/test`\n",
            conclusion.num_ignored
        );
        if in_ci() {
            return ExitCode::FAILURE;
        }
    }
    conclusion.exit_code()
}
