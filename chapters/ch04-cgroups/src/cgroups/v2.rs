//! The cgroup v2 backend: one directory in the single tree.
//!
//! In v2 all controllers share one tree, and a cgroup's controllers are not
//! there by default: a parent lists in `cgroup.subtree_control` which of the
//! controllers it has (its `cgroup.controllers`) its children get. So before
//! the container's cgroup can have a `cpu.max`, `+cpu` must be written to
//! its parent's `cgroup.subtree_control`, and the parent must have `cpu`
//! itself, from its own parent, up to the root.
//!
//! One rule shapes where the cgroup can go: **no internal processes**. A
//! cgroup other than the root may not both hold processes and hand controllers
//! to its children; enabling a controller in `cgroup.subtree_control` of a
//! cgroup that has processes fails with `EBUSY`. The runtime itself runs in a
//! cgroup with processes (itself, at least; a login shell's session scope
//! holds the shell too). So when enabling fails there with `EBUSY`, the
//! container's cgroup goes *beside* the runtime's, beneath its parent (a
//! systemd slice, which holds no processes): runc's cgroupfs driver does the
//! same, and systemd's own layout (slices hold scopes and services, which
//! hold processes) exists because of this rule.
//!
//! Freezing needs no controller in v2: every group but the root has
//! `cgroup.freeze`, and `cgroup.events` says when the group is `frozen`.
//! Device access has no files at all: an eBPF program ([`super::devices`]).
//!
//! What it leaves out: threaded cgroups, `io`, `cpuset`, and the pressure
//! (PSI) files such as `memory.pressure`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use nix::unistd::Pid;

use super::{
    field, kill_each, mkdir, procs, read, remove_dir, wait_until, write, CpuStat, Files,
    FreezerState, Limits, MemoryEvents, V2Hierarchy,
};

/// A v2 cgroup: one directory.
pub struct Cgroup {
    files: &'static dyn Files,
    /// The directory, until it is removed.
    dir: Option<PathBuf>,
}

/// What became of a request to enable controllers for a cgroup's children.
pub(crate) enum Enable {
    Done,
    /// `EBUSY`: the cgroup has processes of its own.
    Busy,
}

impl Cgroup {
    /// Creates `name` with `limits`: beneath our own cgroup if the controllers
    /// can be enabled there, else beside it (see the module's comment).
    pub fn create(
        files: &'static dyn Files,
        tree: &V2Hierarchy,
        name: &str,
        limits: &Limits,
    ) -> Result<Cgroup> {
        let parent = place(files, tree, &needed(limits))?;
        let dir = parent.join(name);
        mkdir(files, &dir)?;
        let mut cgroup = Cgroup {
            files,
            dir: Some(dir),
        };
        let limited = cgroup.limit(limits).and_then(|()| {
            super::runtime::resources::apply_v2(files, cgroup.dir()?, &limits.resources)
        });
        if let Err(err) = limited {
            if let Err(cleanup) = cgroup.remove() {
                return Err(err.context(format!("and cleaning up failed: {cleanup:#}")));
            }
            return Err(err);
        }
        Ok(cgroup)
    }

    /// The cgroup an earlier process created (`None`: removed already).
    pub fn open(files: &'static dyn Files, dir: Option<PathBuf>) -> Cgroup {
        Cgroup { files, dir }
    }

    // ANCHOR: limit
    fn limit(&self, limits: &Limits) -> Result<()> {
        // LAB:BEGIN limit: write each limit to the group's cgroup v2 files, in v2's units; see cgroups(7)
        let dir = self.dir()?;
        let files = self.files;
        if let Some(cpus) = limits.cpus {
            // One file, both numbers: "$QUOTA $PERIOD".
            let value = format!("{} {}", cpus.quota_us, cpus.period_us);
            write(files, &dir.join("cpu.max"), &value)?;
        }
        if let Some(shares) = limits.cpu_shares {
            write(files, &dir.join("cpu.weight"), &weight(shares).to_string())?;
        }
        if let Some(bytes) = limits.memory {
            write(files, &dir.join("memory.max"), &bytes.to_string())?;
            // Swap is limited on its own in v2, not together with memory;
            // 0 means none. The file exists only when the kernel accounts swap.
            let swap = dir.join("memory.swap.max");
            if files.exists(&swap) {
                let extra = limits.memory_swap.map_or(0, |total| total - bytes);
                write(files, &swap, &extra.to_string())?;
            }
        }
        if let Some(pids) = limits.pids {
            write(files, &dir.join("pids.max"), &pids.to_string())?;
        }
        if let Some(rules) = &limits.devices {
            files.limit_devices(dir, rules)?;
        }
        Ok(())
        // LAB:END
    }
    // ANCHOR_END: limit

    fn dir(&self) -> Result<&Path> {
        self.dir.as_deref().context("the cgroup was removed")
    }

    /// Writes `pid` to `cgroup.procs`.
    pub fn add(&self, pid: Pid) -> Result<()> {
        // LAB:BEGIN add: move the process into the group; see cgroups(7)
        write(
            self.files,
            &self.dir()?.join("cgroup.procs"),
            &pid.to_string(),
        )
        // LAB:END
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dir.iter().cloned().collect()
    }

    pub fn procs(&self) -> Result<Vec<Pid>> {
        procs(self.files, self.dir()?)
    }

    // ANCHOR: freeze
    /// Writes 1 or 0 to `cgroup.freeze`, then waits until `cgroup.events`
    /// says `frozen 1` (or `frozen 0`): only then has every process stopped.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let dir = self.dir()?;
        let value = if frozen { "1" } else { "0" };
        write(self.files, &dir.join("cgroup.freeze"), value)?;
        let events = dir.join("cgroup.events");
        let done = wait_until(&format!("frozen {value} in {}", events.display()), &|| {
            Ok(field(&read(self.files, &events)?, "frozen") == Some(u64::from(frozen)))
        });
        if frozen && done.is_err() {
            // Not half frozen: let the group run again, and report.
            let _ = write(self.files, &dir.join("cgroup.freeze"), "0");
        }
        done
    }
    // ANCHOR_END: freeze

    pub fn freezer_state(&self) -> Result<FreezerState> {
        let dir = self.dir()?;
        if read(self.files, &dir.join("cgroup.freeze"))?.trim() != "1" {
            return Ok(FreezerState::Thawed);
        }
        let events = read(self.files, &dir.join("cgroup.events"))?;
        Ok(if field(&events, "frozen") == Some(1) {
            FreezerState::Frozen
        } else {
            FreezerState::Freezing
        })
    }

    /// `cpu.stat`: `usage_usec` is always there; the throttling figures
    /// only when the `cpu` controller is enabled for the group.
    pub fn cpu_stat(&self) -> Result<CpuStat> {
        let stat = read(self.files, &self.dir()?.join("cpu.stat"))?;
        Ok(CpuStat {
            usage: Duration::from_micros(field(&stat, "usage_usec").unwrap_or(0)),
            nr_periods: field(&stat, "nr_periods").unwrap_or(0),
            nr_throttled: field(&stat, "nr_throttled").unwrap_or(0),
            throttled: Duration::from_micros(field(&stat, "throttled_usec").unwrap_or(0)),
        })
    }

    // ANCHOR: memory_events
    /// `memory.events`: `max` counts how often usage hit `memory.max`,
    /// `oom_kill` how many processes the OOM killer killed. Without the memory
    /// controller the file does not exist, and nothing was counted.
    pub fn memory_events(&self) -> Result<MemoryEvents> {
        let path = self.dir()?.join("memory.events");
        if !self.files.exists(&path) {
            return Ok(MemoryEvents::default());
        }
        let text = read(self.files, &path)?;
        let events = MemoryEvents {
            limit_hit: field(&text, "max").unwrap_or(0),
            oom_kill: field(&text, "oom_kill").unwrap_or(0),
        };
        say!("read {}: oom_kill {}", path.display(), events.oom_kill);
        Ok(events)
    }
    // ANCHOR_END: memory_events

    // ANCHOR: kill
    /// Kills every process in the group: one write to `cgroup.kill` (Linux
    /// 5.14 and later) kills them all, including any forked meanwhile;
    /// before that, `SIGKILL` to each PID in `cgroup.procs`.
    pub fn kill(&self) -> Result<()> {
        let dir = self.dir()?;
        let kill_file = dir.join("cgroup.kill");
        if self.files.exists(&kill_file) {
            write(self.files, &kill_file, "1")
        } else {
            kill_each(dir, &procs(self.files, dir)?)
        }
    }
    // ANCHOR_END: kill

    /// Empties and removes the directory.
    pub fn remove(&mut self) -> Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        remove_dir(self.files, &dir, &|_| self.kill())?;
        self.dir = None;
        Ok(())
    }
}

/// The controllers `limits` need enabled: chapter 4's, and those of the
/// runtime's other resources.
pub(crate) fn needed(limits: &Limits) -> Vec<&'static str> {
    let mut needed = limits.controllers();
    for (_, controller) in limits.resources.needs(super::Version::V2) {
        if !needed.contains(&controller) {
            needed.push(controller);
        }
    }
    needed
}

/// v1's `cpu.shares` (2 to 262144, default 1024) as v2's `cpu.weight` (1 to
/// 10000, default 100): the same linear map runc and the kernel's docs use,
/// so 2 becomes 1 and 262144 becomes 10000 (and 1024 becomes 39, not 100).
pub fn weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

// ANCHOR: place
/// Where the new cgroup goes: beneath our own cgroup when the `needed`
/// controllers can be enabled there; when that fails with `EBUSY` (our cgroup
/// has processes, the runtime among them), beneath its parent, beside it.
pub(crate) fn place(files: &dyn Files, tree: &V2Hierarchy, needed: &[&str]) -> Result<PathBuf> {
    let own = tree.own.as_path();
    if needed.is_empty() {
        return Ok(own.to_path_buf());
    }
    match enable(files, tree, own, needed)? {
        Enable::Done => Ok(own.to_path_buf()),
        Enable::Busy => {
            // The root cgroup is exempt from the rule, so `own` is not the root.
            let parent = own
                .parent()
                .filter(|p| p.starts_with(&tree.mount))
                .with_context(|| format!("{} has no parent cgroup", own.display()))?;
            say!(
                "EBUSY: {} has processes, so it may not enable controllers for a child \
                 (no internal processes); the cgroup goes beside it, beneath {}, as runc does",
                own.display(),
                parent.display()
            );
            match enable(files, tree, parent, needed)? {
                Enable::Done => Ok(parent.to_path_buf()),
                Enable::Busy => bail!(
                    "cannot enable {} for a new cgroup: both {} and its parent {} hold \
                     processes (EBUSY, the no-internal-process rule); run the runtime from a \
                     cgroup whose parent holds none, e.g. with `systemd-run --scope`",
                    needed.join(", "),
                    own.display(),
                    parent.display()
                ),
            }
        }
    }
}
// ANCHOR_END: place

// ANCHOR: enable
/// Enables `needed` in `dir`'s `cgroup.subtree_control`, first making them
/// available to `dir` (its `cgroup.controllers`) by enabling them in its
/// parent, and so on up the tree, as far as needed.
pub(crate) fn enable(
    files: &dyn Files,
    tree: &V2Hierarchy,
    dir: &Path,
    needed: &[&str],
) -> Result<Enable> {
    let control = dir.join("cgroup.subtree_control");
    let enabled = read(files, &control)?;
    let missing: Vec<&str> = needed
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(Enable::Done);
    }
    let available = read(files, &dir.join("cgroup.controllers"))?;
    let absent: Vec<&str> = missing
        .iter()
        .filter(|c| !available.split_whitespace().any(|a| a == **c))
        .copied()
        .collect();
    if !absent.is_empty() {
        let parent = dir.parent().filter(|_| dir != tree.mount);
        let Some(parent) = parent else {
            bail!(
                "the {} controller is not available in the cgroup2 tree at {} (its \
                 cgroup.controllers lists {:?}): a hybrid machine keeps it in a cgroup v1 \
                 hierarchy, and a container may not have been given it",
                absent.join(", "),
                tree.mount.display(),
                available.trim()
            );
        };
        if let Enable::Busy = enable(files, tree, parent, &absent)? {
            bail!(
                "cannot enable {} in {}: it holds processes of its own (EBUSY, the \
                 no-internal-process rule)",
                absent.join(", "),
                parent.display()
            );
        }
    }
    // No internal processes: a cgroup other than the root that holds processes
    // may not hand controllers to children. The kernel refuses memory with
    // EBUSY, but it accepts cpu and pids alone (they can be "threaded") and
    // then makes `dir` a threaded root, whose new children cannot take
    // processes at all (EOPNOTSUPP). So we never ask where processes live.
    if dir != tree.mount && !procs(files, dir)?.is_empty() {
        return Ok(Enable::Busy);
    }
    let value: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    match files.write(&control, &value.join(" ")) {
        Ok(()) => Ok(Enable::Done),
        Err(err) if err.raw_os_error() == Some(libc::EBUSY) => Ok(Enable::Busy),
        Err(err) => Err(err).with_context(|| {
            format!(
                "failed to write {:?} to {}",
                value.join(" "),
                control.display()
            )
        }),
    }
}
// ANCHOR_END: enable

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cgroups::files::fake::Fake;
    use crate::cgroups::Cpus;

    pub(crate) const SCOPE: &str = "/cg/user.slice/user-1000.slice/session-1.scope";

    pub(crate) fn tree(own: &str) -> V2Hierarchy {
        V2Hierarchy {
            mount: PathBuf::from("/cg"),
            root: PathBuf::from("/"),
            own: PathBuf::from(own),
        }
    }

    /// The limits of chapter 4's file plan: a CPU quota, memory and pids.
    pub(crate) fn all_limits() -> Result<Limits> {
        Ok(Limits {
            cpus: Some(Cpus::from_cpus(0.2)?),
            memory: Some(64 << 20),
            pids: Some(32),
            ..Limits::default()
        })
    }

    /// A systemd machine where `sudo` runs in a session scope: the root hands
    /// every controller down, the slices only memory and pids (systemd's
    /// default), and the scope holds the login shell and the runtime.
    pub(crate) fn systemd_machine() -> Fake {
        Fake {
            v2_root: Some((
                PathBuf::from("/cg"),
                ["cpu", "memory", "pids"].map(String::from).to_vec(),
            )),
            busy: [PathBuf::from(SCOPE)].into(),
            ..Fake::default()
        }
        .with_dir(SCOPE)
        .with_value("/cg/cgroup.subtree_control", "cpu memory pids")
        .with_value("/cg/user.slice/cgroup.subtree_control", "memory pids")
        .with_value(
            "/cg/user.slice/user-1000.slice/cgroup.subtree_control",
            "memory pids",
        )
    }

    // ANCHOR: plan
    #[test]
    fn file_plan_from_a_session_scope() -> Result<()> {
        let files = systemd_machine().leak();
        let mut cgroup = Cgroup::create(files, &tree(SCOPE), "cfs-1", &all_limits()?)?;
        cgroup.add(Pid::from_raw(42))?;
        cgroup.remove()?;
        let slice = "/cg/user.slice/user-1000.slice";
        assert_eq!(
            files.log(),
            [
                // cpu must come down the tree: the root has it, the slices do not.
                r#"write /cg/user.slice/cgroup.subtree_control "+cpu""#.to_string(),
                format!(r#"write {slice}/cgroup.subtree_control "+cpu""#),
                // The scope holds processes: EBUSY, so the cgroup goes beside it.
                format!(r#"write {SCOPE}/cgroup.subtree_control "+cpu +memory +pids""#),
                format!("mkdir {slice}/cfs-1"),
                format!(r#"write {slice}/cfs-1/cpu.max "20000 100000""#),
                format!(r#"write {slice}/cfs-1/memory.max "67108864""#),
                format!(r#"write {slice}/cfs-1/memory.swap.max "0""#),
                format!(r#"write {slice}/cfs-1/pids.max "32""#),
                format!(r#"write {slice}/cfs-1/cgroup.procs "42""#),
                format!("rmdir {slice}/cfs-1"),
            ]
        );
        Ok(())
    }
    // ANCHOR_END: plan

    #[test]
    fn from_the_root_cgroup_it_nests_beneath_it() -> Result<()> {
        // The root cgroup is exempt from the no-internal-process rule.
        let files = Fake {
            v2_root: Some((
                PathBuf::from("/cg"),
                ["cpu", "memory", "pids"].map(String::from).to_vec(),
            )),
            busy: [PathBuf::from("/cg")].into(),
            ..Fake::default()
        }
        .leak();
        let limits = Limits {
            pids: Some(16),
            ..Limits::default()
        };
        let mut cgroup = Cgroup::create(files, &tree("/cg"), "cfs-1", &limits)?;
        assert_eq!(cgroup.dirs(), [PathBuf::from("/cg/cfs-1")]);
        cgroup.remove()?;
        assert_eq!(
            files.log(),
            [
                r#"write /cg/cgroup.subtree_control "+pids""#,
                "mkdir /cg/cfs-1",
                r#"write /cg/cfs-1/pids.max "16""#,
                "rmdir /cg/cfs-1",
            ]
        );
        Ok(())
    }

    #[test]
    fn without_limits_no_controller_is_enabled() -> Result<()> {
        let files = systemd_machine().leak();
        let mut cgroup = Cgroup::create(files, &tree(SCOPE), "cfs-1", &Limits::default())?;
        cgroup.remove()?;
        assert_eq!(
            files.log(),
            [
                format!("mkdir {SCOPE}/cfs-1"),
                format!("rmdir {SCOPE}/cfs-1")
            ]
        );
        Ok(())
    }

    #[test]
    fn a_controller_held_by_v1_is_reported_and_nothing_is_created() {
        // A hybrid machine's cgroup2 tree: the v1 hierarchies hold cpu.
        let files = Fake {
            v2_root: Some((PathBuf::from("/cg"), vec!["hugetlb".to_string()])),
            ..Fake::default()
        }
        .leak();
        let limits = Limits {
            cpus: Some(Cpus {
                quota_us: 20_000,
                period_us: 100_000,
            }),
            ..Limits::default()
        };
        let err = Cgroup::create(files, &tree("/cg"), "cfs-1", &limits).err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("cpu controller is not available"), "{text}");
        assert!(files.log().is_empty(), "{:?}", files.log());
    }

    #[test]
    fn a_busy_parent_is_an_error_with_a_hint() {
        let mut machine = systemd_machine();
        machine
            .busy
            .insert(PathBuf::from("/cg/user.slice/user-1000.slice"));
        let files = machine
            .with_value("/cg/user.slice/user-1000.slice/cgroup.subtree_control", "")
            .leak();
        let err = Cgroup::create(
            files,
            &tree(SCOPE),
            "cfs-1",
            &all_limits().unwrap_or_default(),
        )
        .err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("EBUSY") && text.contains("no-internal-process"),
            "{text}"
        );
        assert!(
            !files.log().iter().any(|l| l.starts_with("mkdir")),
            "{:?}",
            files.log()
        );
    }

    #[test]
    fn shares_map_onto_weights() {
        assert_eq!(weight(2), 1);
        assert_eq!(weight(1024), 39);
        assert_eq!(weight(262_144), 10_000);
    }
}
