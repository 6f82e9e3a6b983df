//! The cgroup v1 backend: one directory in each controller's hierarchy.
//!
//! In v1 every controller (or a few mounted together, such as `cpu,cpuacct`)
//! has a tree of its own, so "the container's cgroup" is really one directory
//! per hierarchy, created beneath the cgroup the runtime is in *in that
//! hierarchy* (they may differ: on this book's development machine memory's is
//! `/process_api/<id>` while the others' is `/`). The limits go into files
//! named after the controller (`cpu.cfs_quota_us`, `memory.limit_in_bytes`,
//! `pids.max`), and the container's first process is written to each
//! directory's `cgroup.procs`. Asked for, the group also joins the `freezer`
//! hierarchy (`freezer.state`: `FROZEN`, `THAWED`) and the `devices` one
//! (`devices.allow`, `devices.deny`).
//!
//! What it leaves out: the other v1 controllers (`blkio`, `cpuset`,
//! `net_cls`, ...); runc joins them all, and freezes a group before it
//! signals every process in it, so that none can fork meanwhile.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use nix::unistd::Pid;

use super::{
    field, kill_each, mkdir, procs, read, remove_dir, wait_until, write, CpuStat, Files,
    FreezerState, Limits, MemoryEvents, V1Hierarchy,
};

/// The controllers the container joins, limited or not: `cpuacct` counts its
/// CPU time and `memory` its OOM kills even without a limit.
pub const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

/// [`CONTROLLERS`], and `freezer` and `devices` when the limits ask for them.
pub(crate) fn joined(limits: &Limits) -> Vec<&'static str> {
    let mut joined = CONTROLLERS.to_vec();
    if limits.freezer {
        joined.push("freezer");
    }
    if limits.devices.is_some() {
        joined.push("devices");
    }
    for (_, controller) in limits.resources.needs(super::Version::V1) {
        if !joined.contains(&controller) {
            joined.push(controller);
        }
    }
    joined
}

/// A v1 cgroup: its directory in each hierarchy.
pub struct Cgroup {
    files: &'static dyn Files,
    /// The directories created so far, with their hierarchy's controllers.
    dirs: Vec<(PathBuf, Vec<String>)>,
}

impl Cgroup {
    /// Creates `name` beneath our own cgroup in each hierarchy that carries
    /// one of [`CONTROLLERS`], and writes the limits. On error, removes what
    /// it created.
    pub fn create(
        files: &'static dyn Files,
        hierarchies: &[V1Hierarchy],
        name: &str,
        limits: &Limits,
    ) -> Result<Cgroup> {
        for (field, controller) in limits.resources.needs(super::Version::V1) {
            if !hierarchies
                .iter()
                .any(|h| h.controllers.iter().any(|c| c == controller))
            {
                bail!(
                    "linux.resources.{field} needs the {controller} controller, and no cgroup v1 \
                     hierarchy here has it (see /proc/self/cgroup): remove the field, or mount it \
                     with `mount -t cgroup -o {controller} none /sys/fs/cgroup/{controller}`"
                );
            }
        }
        let mut needed = limits.controllers();
        needed.extend(joined(limits).into_iter().skip(CONTROLLERS.len()));
        for controller in needed {
            if !hierarchies
                .iter()
                .any(|h| h.controllers.iter().any(|c| c == controller))
            {
                bail!(
                    "no cgroup v1 hierarchy has the {controller} controller (see /proc/self/cgroup): \
                     mount it with `mount -t cgroup -o {controller} none /sys/fs/cgroup/{controller}`"
                );
            }
        }
        let mut cgroup = Cgroup {
            files,
            dirs: Vec::new(),
        };
        let built = cgroup.build(hierarchies, name, limits).and_then(|()| {
            super::runtime::resources::apply_v1(files, &cgroup.dirs, &limits.resources)
        });
        if let Err(err) = built {
            if let Err(cleanup) = cgroup.remove() {
                return Err(err.context(format!("and cleaning up failed: {cleanup:#}")));
            }
            return Err(err);
        }
        Ok(cgroup)
    }

    /// The cgroup an earlier process created: its directory in each
    /// hierarchy, with that hierarchy's controllers.
    pub fn open(files: &'static dyn Files, dirs: Vec<(PathBuf, Vec<String>)>) -> Cgroup {
        Cgroup { files, dirs }
    }

    // ANCHOR: build
    fn build(&mut self, hierarchies: &[V1Hierarchy], name: &str, limits: &Limits) -> Result<()> {
        // LAB:BEGIN build: make the group in each v1 hierarchy the limits need and write each limit to its files; see cgroups(7)
        let joined = joined(limits);
        for hierarchy in hierarchies {
            if !hierarchy
                .controllers
                .iter()
                .any(|c| joined.contains(&c.as_str()))
            {
                continue;
            }
            let dir = hierarchy.own.join(name);
            mkdir(self.files, &dir)?;
            self.dirs.push((dir, hierarchy.controllers.clone()));
        }
        let files = self.files;
        if let Some(cpus) = limits.cpus {
            // Period first: the kernel checks the quota against it.
            let dir = self.dir("cpu")?;
            write(
                files,
                &dir.join("cpu.cfs_period_us"),
                &cpus.period_us.to_string(),
            )?;
            write(
                files,
                &dir.join("cpu.cfs_quota_us"),
                &cpus.quota_us.to_string(),
            )?;
        }
        if let Some(shares) = limits.cpu_shares {
            write(
                files,
                &self.dir("cpu")?.join("cpu.shares"),
                &shares.to_string(),
            )?;
        }
        if let Some(bytes) = limits.memory {
            let dir = self.dir("memory")?;
            write(
                files,
                &dir.join("memory.limit_in_bytes"),
                &bytes.to_string(),
            )?;
            // memory + swap: by default the same figure, so no swap on top.
            // The file exists only when the kernel accounts swap (swapaccount=1).
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if files.exists(&memsw) {
                let total = limits.memory_swap.unwrap_or(bytes);
                write(files, &memsw, &total.to_string())?;
            }
        }
        if let Some(pids) = limits.pids {
            write(
                files,
                &self.dir("pids")?.join("pids.max"),
                &pids.to_string(),
            )?;
        }
        if let Some(rules) = &limits.devices {
            // In order: "a" in devices.deny resets the list to "deny all".
            let dir = self.dir("devices")?;
            for rule in rules {
                write(files, &dir.join(rule.v1_file()), &rule.to_string())?;
            }
        }
        Ok(())
        // LAB:END
    }
    // ANCHOR_END: build

    /// The directory in the hierarchy that carries `controller`.
    fn dir(&self, controller: &str) -> Result<&Path> {
        self.dirs
            .iter()
            .find(|(_, controllers)| controllers.iter().any(|c| c == controller))
            .map(|(dir, _)| dir.as_path())
            .with_context(|| format!("the cgroup has no directory for the {controller} controller"))
    }

    /// Writes `pid` to `cgroup.procs` in every hierarchy.
    pub fn add(&self, pid: Pid) -> Result<()> {
        // LAB:BEGIN add: move the process into the group, in every hierarchy it has; see cgroups(7)
        for (dir, _) in &self.dirs {
            write(self.files, &dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
        // LAB:END
    }

    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(dir, _)| dir.clone()).collect()
    }

    pub fn dirs_with_controllers(&self) -> Vec<(PathBuf, Vec<String>)> {
        self.dirs.clone()
    }

    // ANCHOR: freeze
    /// Writes `FROZEN` or `THAWED` to `freezer.state`. Freezing is not
    /// instant: each process stops the next time it would return to user
    /// space, and the file reads `FREEZING` until all have.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let path = self.dir("freezer")?.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        write(self.files, &path, want)?;
        let done = wait_until(&format!("{want} in {}", path.display()), &|| {
            Ok(read(self.files, &path)?.trim() == want)
        });
        if frozen && done.is_err() {
            // Not half frozen: let the group run again, and report.
            let _ = write(self.files, &path, "THAWED");
        }
        done
    }
    // ANCHOR_END: freeze

    pub fn freezer_state(&self) -> Result<FreezerState> {
        let path = self.dir("freezer")?.join("freezer.state");
        Ok(match read(self.files, &path)?.trim() {
            "FROZEN" => FreezerState::Frozen,
            "FREEZING" => FreezerState::Freezing,
            _ => FreezerState::Thawed,
        })
    }

    /// The processes in the group (each hierarchy lists the same ones).
    pub fn procs(&self) -> Result<Vec<Pid>> {
        let mut all = Vec::new();
        for (dir, _) in &self.dirs {
            for pid in procs(self.files, dir)? {
                if !all.contains(&pid) {
                    all.push(pid);
                }
            }
        }
        Ok(all)
    }

    /// `cpuacct.usage` (nanoseconds) and `cpu.stat` (`nr_throttled`,
    /// `throttled_time` in nanoseconds).
    pub fn cpu_stat(&self) -> Result<CpuStat> {
        let usage = read(self.files, &self.dir("cpuacct")?.join("cpuacct.usage"))?;
        let stat = read(self.files, &self.dir("cpu")?.join("cpu.stat"))?;
        Ok(CpuStat {
            usage: Duration::from_nanos(usage.trim().parse().unwrap_or(0)),
            nr_periods: field(&stat, "nr_periods").unwrap_or(0),
            nr_throttled: field(&stat, "nr_throttled").unwrap_or(0),
            throttled: Duration::from_nanos(field(&stat, "throttled_time").unwrap_or(0)),
        })
    }

    // ANCHOR: memory_events
    /// `memory.failcnt` counts how often usage hit the limit (the kernel then
    /// reclaims memory, and kills only when that fails); `oom_kill` in
    /// `memory.oom_control` counts the kills (Linux 4.13 and later).
    pub fn memory_events(&self) -> Result<MemoryEvents> {
        let dir = self.dir("memory")?;
        let failcnt = read(self.files, &dir.join("memory.failcnt"))?;
        let oom_control = read(self.files, &dir.join("memory.oom_control"))?;
        let events = MemoryEvents {
            limit_hit: failcnt.trim().parse().unwrap_or(0),
            oom_kill: field(&oom_control, "oom_kill").unwrap_or(0),
        };
        say!(
            "read {}/memory.oom_control: oom_kill {}",
            dir.display(),
            events.oom_kill
        );
        Ok(events)
    }
    // ANCHOR_END: memory_events

    /// v1 has no `cgroup.kill`: send `SIGKILL` to each process listed.
    pub fn kill(&self) -> Result<()> {
        for (dir, _) in &self.dirs {
            kill_each(dir, &procs(self.files, dir)?)?;
        }
        Ok(())
    }

    /// Empties and removes each directory, last created first.
    pub fn remove(&mut self) -> Result<()> {
        // A frozen process does not die of SIGKILL until it is thawed: kill
        // what is there while it cannot fork, then thaw.
        if let Ok(freezer) = self.dir("freezer") {
            let state = freezer.join("freezer.state");
            if self.files.exists(&state) && read(self.files, &state)?.trim() != "THAWED" {
                kill_each(freezer, &procs(self.files, freezer)?)?;
                self.set_frozen(false)?;
            }
        }
        while let Some((dir, _)) = self.dirs.last() {
            let dir = dir.clone();
            remove_dir(self.files, &dir, &|pids| kill_each(&dir, pids))?;
            self.dirs.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cgroups::files::fake::Fake;
    use crate::cgroups::Cpus;

    pub(crate) fn hierarchies() -> Vec<V1Hierarchy> {
        let h = |controller: &str, own: &str| V1Hierarchy {
            controllers: vec![controller.to_string()],
            mount: PathBuf::from(format!("/cg/{controller}")),
            root: PathBuf::from("/"),
            own: PathBuf::from(own),
        };
        vec![
            h("cpu", "/cg/cpu"),
            h("cpuacct", "/cg/cpuacct"),
            h("memory", "/cg/memory/app"),
            h("pids", "/cg/pids"),
            h("devices", "/cg/devices"),
            h("freezer", "/cg/freezer"),
        ]
    }

    pub(crate) fn fake() -> &'static Fake {
        Fake {
            v1: ["cpu", "cpuacct", "memory", "pids", "devices", "freezer"]
                .iter()
                .map(|c| (PathBuf::from(format!("/cg/{c}")), vec![c.to_string()]))
                .collect(),
            ..Fake::default()
        }
        .with_dir("/cg/memory/app")
        .leak()
    }

    // ANCHOR: plan
    #[test]
    fn file_plan() -> Result<()> {
        let files = fake();
        let limits = Limits {
            cpus: Some(Cpus::from_cpus(0.2)?),
            memory: Some(64 << 20),
            pids: Some(32),
            ..Limits::default()
        };
        let mut cgroup = Cgroup::create(files, &hierarchies(), "cfs-1", &limits)?;
        cgroup.add(Pid::from_raw(42))?;
        cgroup.remove()?;
        assert_eq!(
            files.log(),
            [
                "mkdir /cg/cpu/cfs-1",
                "mkdir /cg/cpuacct/cfs-1",
                "mkdir /cg/memory/app/cfs-1",
                "mkdir /cg/pids/cfs-1",
                r#"write /cg/cpu/cfs-1/cpu.cfs_period_us "100000""#,
                r#"write /cg/cpu/cfs-1/cpu.cfs_quota_us "20000""#,
                r#"write /cg/memory/app/cfs-1/memory.limit_in_bytes "67108864""#,
                r#"write /cg/memory/app/cfs-1/memory.memsw.limit_in_bytes "67108864""#,
                r#"write /cg/pids/cfs-1/pids.max "32""#,
                r#"write /cg/cpu/cfs-1/cgroup.procs "42""#,
                r#"write /cg/cpuacct/cfs-1/cgroup.procs "42""#,
                r#"write /cg/memory/app/cfs-1/cgroup.procs "42""#,
                r#"write /cg/pids/cfs-1/cgroup.procs "42""#,
                "rmdir /cg/pids/cfs-1",
                "rmdir /cg/memory/app/cfs-1",
                "rmdir /cg/cpuacct/cfs-1",
                "rmdir /cg/cpu/cfs-1",
            ]
        );
        Ok(())
    }
    // ANCHOR_END: plan

    #[test]
    fn without_swap_accounting_memsw_is_left_alone() -> Result<()> {
        let files = Fake {
            missing: ["memory.memsw.limit_in_bytes".to_string()].into(),
            v1: vec![(PathBuf::from("/cg/memory"), vec!["memory".to_string()])],
            ..Fake::default()
        }
        .with_dir("/cg/memory/app")
        .leak();
        let limits = Limits {
            memory: Some(32 << 20),
            ..Limits::default()
        };
        let mut cgroup = Cgroup::create(files, &hierarchies()[2..3], "cfs-1", &limits)?;
        cgroup.remove()?;
        assert!(
            !files.log().iter().any(|l| l.contains("memsw")),
            "{:?}",
            files.log()
        );
        Ok(())
    }

    #[test]
    fn a_missing_controller_fails_before_any_mkdir() {
        let files = fake();
        let limits = Limits {
            pids: Some(8),
            ..Limits::default()
        };
        let err = Cgroup::create(files, &hierarchies()[..2], "cfs-1", &limits).err();
        assert!(err.is_some_and(|e| e.to_string().contains("pids controller")));
        assert!(files.log().is_empty(), "{:?}", files.log());
    }

    #[test]
    fn a_failed_limit_removes_what_was_created() {
        let files = fake();
        // The quota file cannot be written: pretend the kernel lacks it.
        let files: &'static Fake = Box::leak(Box::new(Fake {
            missing: ["cpu.cfs_quota_us".to_string()].into(),
            v1: files.v1.clone(),
            dirs: files.dirs.clone(),
            ..Fake::default()
        }));
        let limits = Limits {
            cpus: Some(Cpus {
                quota_us: 20_000,
                period_us: 100_000,
            }),
            ..Limits::default()
        };
        assert!(Cgroup::create(files, &hierarchies(), "cfs-1", &limits).is_err());
        let log = files.log();
        for dir in [
            "/cg/cpu/cfs-1",
            "/cg/cpuacct/cfs-1",
            "/cg/memory/app/cfs-1",
            "/cg/pids/cfs-1",
        ] {
            assert!(log.contains(&format!("rmdir {dir}")), "{dir} left: {log:?}");
        }
    }

    #[test]
    fn removing_twice_is_fine() -> Result<()> {
        let files = fake();
        let mut cgroup = Cgroup::create(files, &hierarchies(), "cfs-1", &Limits::default())?;
        let dirs = cgroup.dirs_with_controllers();
        cgroup.remove()?;
        Cgroup::open(files, dirs).remove()?;
        Ok(())
    }
}
