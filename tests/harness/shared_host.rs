//! A stand-in host for mount checks: a mount namespace whose mounts are all
//! *shared*, as on a systemd host, private to the test.
//!
//! Whether a runtime's mounts leak depends on the host's propagation: on a
//! systemd host `/` and the mounts beneath it are shared (see
//! `mount_namespaces(7)`), so a container that forgets `MS_PRIVATE`, or
//! `MS_REC`, mounts onto the host or tears its mounts out; on a host whose `/`
//! is private (this project's development machine, many containers) the same
//! mistake goes unseen, and `pivot_root(2)` does not fail with `EINVAL`
//! either. So a check that judges propagation runs the runtime inside a
//! [`SharedHost`]: a process (`sleep`) in a new mount namespace made private
//! first (so that nothing reaches the real host's peers) and then shared
//! recursively (`mount --make-rshared /`), like `unshare --propagation shared`
//! on a host that is not shared. The runtime joins it with `nsenter --mount`,
//! its container's namespace is a copy whose mounts are peers of the stand-in
//! host's, and the test reads the stand-in's mount table from
//! `/proc/<pid>/mountinfo` before, while and after the container runs. Other
//! work on the machine (another test's mounts) does not show in it. The
//! namespace goes when its process is killed, on drop.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::run::{wait_for, Background};

/// The stand-in host: a sleeping process in a mount namespace whose mounts
/// are shared; killed on drop (it is a [`Background`]), which ends the namespace.
pub struct SharedHost {
    _holder: Background,
    pid: String,
}

impl SharedHost {
    /// Makes the namespace and waits until `/` in it is shared.
    pub fn new() -> Result<SharedHost> {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount --make-rshared / && echo ready >&2 && exec sleep 600",
        ]);
        let holder = Background::start(cmd).context("failed to run unshare(1)")?;
        let pid = holder.pid().to_string();
        let host = SharedHost {
            _holder: holder,
            pid,
        };
        wait_for(Duration::from_secs(5), || {
            let table = fs::read_to_string(format!("/proc/{}/mountinfo", host.pid)).ok()?;
            let root = table.lines().find(|l| l.split(' ').nth(4) == Some("/"))?;
            let exe = fs::read_link(format!("/proc/{}/exe", host.pid)).ok()?;
            (exe.ends_with("sleep") && root.contains(" shared:")).then_some(())
        })
        .context("the stand-in host's namespace never became shared (unshare --mount, mount --make-rshared /)")?;
        Ok(host)
    }

    /// The PID of the process that holds the namespace.
    pub fn pid(&self) -> &str {
        &self.pid
    }

    /// `cmd`, to run inside the stand-in host: `nsenter --mount` before it,
    /// with its arguments, environment and working directory kept.
    pub fn command(&self, cmd: Command) -> Command {
        let mut inside = Command::new("nsenter");
        inside
            .arg(format!("--mount=/proc/{}/ns/mnt", self.pid))
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => inside.env(key, value),
                None => inside.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            inside.current_dir(dir);
        }
        inside
    }

    /// The stand-in host's mounts, as [`crate::kernel::mounts`] lists the
    /// real host's: point, type and source of each.
    pub fn mounts(&self) -> Result<BTreeSet<String>> {
        let path = format!("/proc/{}/mountinfo", self.pid);
        let text = fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
        Ok(crate::kernel::parse_mounts(&text))
    }

    /// Fails if the stand-in host's mounts differ from `before`, naming the
    /// differences.
    pub fn assert_mounts_unchanged(&self, before: &BTreeSet<String>) -> Result<()> {
        let after = self.mounts()?;
        let added: Vec<_> = after.difference(before).collect();
        let removed: Vec<_> = before.difference(&after).collect();
        if !added.is_empty() || !removed.is_empty() {
            bail!(
                "the host's mount table changed (a host whose mounts are shared, as systemd's \
                 are): added {added:?}, removed {removed:?}"
            );
        }
        Ok(())
    }
}
