//! Hooks: programs the runtime runs at fixed points of the lifecycle.
//!
//! Engines use them to do what the runtime does not know about: a network
//! plugin that wires up the container's network namespace once it exists, a
//! GPU toolkit that adds device nodes. Each hook gets the container's state
//! JSON on stdin (id, pid, bundle, status), so it can find the namespaces
//! under `/proc/<pid>/ns/`. The points, in order:
//!
//! | hook | when | where it runs |
//! |---|---|---|
//! | `prestart` (deprecated), `createRuntime` | during `create`, namespaces exist | runtime's namespaces |
//! | `createContainer` | during `create`, before `pivot_root` | container's namespaces |
//! | `startContainer` | during `start`, before the command is executed | container |
//! | `poststart` | after `start` | runtime |
//! | `poststop` | during `delete` | runtime |
//!
//! A failing hook before the command runs is an error that undoes the create;
//! `poststart` and `poststop` failures are only logged, because the container
//! already ran.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use oci_spec::runtime::{Hook, Hooks};

/// The lifecycle points, named as in config.json.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }

    fn hooks(self, hooks: &Hooks) -> Option<&Vec<Hook>> {
        #[allow(deprecated)]
        match self {
            Point::Prestart => hooks.prestart().as_ref(),
            Point::CreateRuntime => hooks.create_runtime().as_ref(),
            Point::CreateContainer => hooks.create_container().as_ref(),
            Point::StartContainer => hooks.start_container().as_ref(),
            Point::Poststart => hooks.poststart().as_ref(),
            Point::Poststop => hooks.poststop().as_ref(),
        }
    }
}

// ANCHOR: run
/// Runs the hooks of `point`, each with `state` (the OCI state JSON) on stdin.
pub fn run(hooks: Option<&Hooks>, point: Point, state: &str) -> Result<()> {
    let Some(list) = hooks.and_then(|h| point.hooks(h)) else {
        return Ok(());
    };
    for (i, hook) in list.iter().enumerate() {
        run_one(hook, state).with_context(|| {
            format!(
                "{} hook {i} ({}) failed",
                point.name(),
                hook.path().display()
            )
        })?;
    }
    Ok(())
}

/// Runs the hooks of a point after the command ran (`poststart`,
/// `poststop`): a failure is logged, not an error, since the container exists.
pub fn run_logged(hooks: Option<&Hooks>, point: Point, state: &str) {
    if let Err(err) = run(hooks, point, state) {
        crate::logging::warn(&format!("{err:#}"));
    }
}

fn run_one(hook: &Hook, state: &str) -> Result<()> {
    let args = hook.args().clone().unwrap_or_default();
    say!(
        "run hook {} {:?} with the state on stdin",
        hook.path().display(),
        args
    );
    let mut cmd = Command::new(hook.path());
    if let Some((argv0, rest)) = args.split_first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
        cmd.args(rest);
    }
    cmd.env_clear();
    for pair in hook.env().as_deref().unwrap_or_default() {
        if let Some((key, value)) = pair.split_once('=') {
            cmd.env(key, value);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to execute {}", hook.path().display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .map(|secs| Instant::now() + Duration::from_secs(secs.max(1) as u64));
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("exited with {status}");
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {} s", hook.timeout().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
// ANCHOR_END: run
