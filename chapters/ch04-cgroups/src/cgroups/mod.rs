//! Control groups: put the container's processes in a group and cap what the
//! group may use.
//!
//! A namespace changes what a process *sees*; a cgroup limits what it may
//! *use*: CPU time, memory, the number of processes. Cgroups form a tree, one
//! directory per group, in a filesystem the kernel provides. Each resource has
//! a *controller* (v1 calls them subsystems) that reads its limits from files
//! in those directories and charges every process in the group. Writing a PID
//! to `cgroup.procs` moves that process into the group; its children are born
//! there. See `cgroups(7)` and the kernel's `Documentation/admin-guide/cgroup-v2.rst`.
//!
//! Two versions of the interface are in use, and a runtime must speak both:
//!
//! - **v1** has one tree (a *hierarchy*) per controller, each mounted at
//!   `/sys/fs/cgroup/<controller>`: a container is one directory in each.
//! - **v2** has a single tree, usually at `/sys/fs/cgroup`, where each cgroup
//!   enables controllers for its children in `cgroup.subtree_control`.
//!
//! A *hybrid* machine mounts both: v1 hierarchies own the controllers and the
//! cgroup2 tree at `/sys/fs/cgroup/unified` has few or none. Chapter 4 reads
//! these files, one idea each:
//!
//! - [`hierarchy`]: which layout this machine has, and where this process's
//!   own cgroup is in each tree ([`Hierarchies`]);
//! - [`limits`]: what to write ([`Limits`]);
//! - this file: [`Cgroup`], the one type the runtime uses: create, add,
//!   remove (and the file operations the backends share);
//! - [`v1`], [`v2`]: a backend per version, writing the files by hand;
//! - [`files`]: the four file operations, real or faked for the unit tests.
//!
//! [`runtime`] holds what only chapter 6's OCI runtime needs (chapter 6
//! teaches it): `cgroupsPath`, the rest of `linux.resources`, saving and
//! reopening a group across runs, freezing, device rules.
//!
//! What it leaves out: a cgroup namespace for the container
//! (`CLONE_NEWCGROUP`, chapter 6), and the systemd driver through which runc
//! asks systemd over D-Bus to create the cgroup instead of writing files.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ch01_uts::say;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub mod files;
pub mod hierarchy;
pub mod limits;
pub mod runtime;
pub mod v1;
pub mod v2;

pub use files::{Files, Kernel, KERNEL};
pub use hierarchy::{Hierarchies, Layout, V1Hierarchy, V2Hierarchy, Version};
pub use limits::{min_memory, Cpus, Limits};
pub use runtime::devices::{self, Access, DeviceKind, DeviceRule};
pub use runtime::freezer::FreezerState;
pub use runtime::placement::{Dir, Placement};
pub use runtime::{CgroupsPath, Resources};

/// CPU time a cgroup has used, and how often the quota stopped it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    /// CPU time used by every process that was ever in the group.
    pub usage: Duration,
    /// Periods in which the group ran at all, and in which it hit its quota.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Time the group spent waiting for the next period.
    pub throttled: Duration,
}

/// How often a cgroup hit its memory limit, and how many of its processes
/// the kernel's OOM killer killed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    pub limit_hit: u64,
    pub oom_kill: u64,
}

/// The number after `key` in a `key value` file such as `cpu.stat`.
pub(crate) fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Reads a cgroup file, with the path in the error.
pub(crate) fn read(files: &dyn Files, path: &Path) -> Result<String> {
    files
        .read(path)
        .with_context(|| format!("failed to read {}", path.display()))
}

/// Writes a cgroup file, with the path and value in the error.
pub(crate) fn write(files: &dyn Files, path: &Path, value: &str) -> Result<()> {
    files
        .write(path, value)
        .with_context(|| format!("failed to write {value:?} to {}", path.display()))
}

/// Creates a cgroup directory; a left-over one is reported, not reused.
pub(crate) fn mkdir(files: &dyn Files, path: &Path) -> Result<()> {
    files.mkdir(path).map_err(|err| {
        if err.raw_os_error() == Some(libc::EEXIST) {
            anyhow::anyhow!(
                "cgroup {} already exists: a runtime may have been killed before it could \
                 remove it; check its cgroup.procs is empty, then rmdir it",
                path.display()
            )
        } else {
            anyhow::Error::new(err).context(format!("failed to create cgroup {}", path.display()))
        }
    })
}

/// The processes in one cgroup directory (`cgroup.procs`).
pub(crate) fn procs(files: &dyn Files, dir: &Path) -> Result<Vec<Pid>> {
    Ok(read(files, &dir.join("cgroup.procs"))?
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .map(Pid::from_raw)
        .collect())
}

/// How long [`remove_dir`] waits for killed processes to go.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(5);

// ANCHOR: remove_dir
/// Removes one cgroup directory. `rmdir(2)` fails with `EBUSY` while any
/// process is still in the group, so first `kill` what is left, then wait
/// until `cgroup.procs` is empty. Dead processes leave the group at once;
/// only live ones (even stopped or stuck ones) keep it busy.
pub(crate) fn remove_dir(
    files: &dyn Files,
    dir: &Path,
    kill: &dyn Fn(&[Pid]) -> Result<()>,
) -> Result<()> {
    // LAB:BEGIN remove_dir: remove a cgroup, first ending and waiting out what is still in it; see cgroups(7), rmdir(2)
    if !files.exists(&dir.join("cgroup.procs")) {
        // Removed already (by an earlier, interrupted run, or by hand).
        return Ok(());
    }
    let deadline = Instant::now() + EMPTY_TIMEOUT;
    let mut killed = false;
    loop {
        let left = procs(files, dir)?;
        if left.is_empty() {
            break;
        }
        if !killed {
            kill(&left)?;
            killed = true;
        }
        if Instant::now() > deadline {
            bail!(
                "cgroup {} still has processes {left:?} {EMPTY_TIMEOUT:?} after SIGKILL",
                dir.display()
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    loop {
        match files.rmdir(dir) {
            Ok(()) => return Ok(()),
            // A process that just died may still be leaving the group.
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to remove cgroup {}", dir.display()))
            }
        }
    }
    // LAB:END
}
// ANCHOR_END: remove_dir

/// How long [`wait_until`] waits for a group to freeze or thaw.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls `done` until it says yes, for at most [`FREEZE_TIMEOUT`].
pub(crate) fn wait_until(what: &str, done: &dyn Fn() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    while !done()? {
        if Instant::now() > deadline {
            bail!("{what} did not happen within {FREEZE_TIMEOUT:?}");
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
    Ok(())
}

/// Sends `SIGKILL` to each process; one that is already gone is fine.
pub(crate) fn kill_each(dir: &Path, pids: &[Pid]) -> Result<()> {
    for pid in pids {
        say!("kill({pid}, SIGKILL) (left in {})", dir.display());
        match kill(*pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(errno) => {
                return Err(errno).with_context(|| format!("failed to kill pid {pid}"));
            }
        }
    }
    Ok(())
}

/// Checks a cgroup's name: one path component.
fn check_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty() && name != "." && name != ".." && !name.contains('/'),
        "{name:?} is not a cgroup name: use one directory name such as cfs-box"
    );
    ensure!(
        name.len() <= 255,
        "cgroup name {name:?} is longer than 255 bytes"
    );
    Ok(())
}

enum Backend {
    V1(v1::Cgroup),
    V2(v2::Cgroup),
}

// ANCHOR: cgroup
/// The container's cgroup, on either version: created with its limits,
/// joined by the container's first process, removed when done.
///
/// Dropping a `Cgroup` removes it (killing what is left inside), so an error
/// anywhere in the runtime leaves no cgroup behind; [`Cgroup::keep`] opts out.
pub struct Cgroup {
    backend: Backend,
    armed: bool,
    /// Parents made on the way (see [`Placement::created`]), outermost first.
    created: Vec<PathBuf>,
    files: &'static dyn Files,
}
// ANCHOR_END: cgroup

impl Cgroup {
    // ANCHOR: create
    /// Creates cgroup `name` with `limits`, beneath the cgroup this process
    /// runs in (on v2, beside it when the no-internal-process rule forbids
    /// that: see [`v2`]), on whichever version holds the controllers here.
    pub fn create(name: &str, limits: &Limits) -> Result<Cgroup> {
        let hierarchies = Hierarchies::detect()?;
        let layout = hierarchies.layout()?;
        let version = layout.version();
        match (&hierarchies.v2, layout) {
            (Some(v2), Layout::Hybrid) => say!(
                "cgroup layout: hybrid (v1 controllers, cgroup2 at {}): using cgroup v1",
                v2.mount.display()
            ),
            (Some(v2), _) => say!(
                "cgroup layout: v2 (cgroup2 at {}): using cgroup v2",
                v2.mount.display()
            ),
            (None, _) => say!("cgroup layout: v1: using cgroup v1"),
        }
        Cgroup::create_in(&hierarchies, version, name, limits)
    }
    // ANCHOR_END: create

    /// Like [`Cgroup::create`], on a version of one's choosing (the tests use
    /// it to exercise the v2 backend on a hybrid machine).
    pub fn create_in(
        hierarchies: &Hierarchies,
        version: Version,
        name: &str,
        limits: &Limits,
    ) -> Result<Cgroup> {
        check_name(name)?;
        limits.check()?;
        let backend = match version {
            Version::V1 => Backend::V1(v1::Cgroup::create(&KERNEL, &hierarchies.v1, name, limits)?),
            Version::V2 => {
                let tree = hierarchies
                    .v2
                    .as_ref()
                    .context("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)")?;
                Backend::V2(v2::Cgroup::create(&KERNEL, tree, name, limits)?)
            }
        };
        Ok(Cgroup {
            backend,
            armed: true,
            created: Vec::new(),
            files: &KERNEL,
        })
    }

    /// Moves process `pid` into the cgroup. The runtime calls it while the
    /// child still waits on the sync pipe, so the command's first instruction
    /// already runs under the limits, and every process it forks is born inside.
    pub fn add(&self, pid: Pid) -> Result<()> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.add(pid),
            Backend::V2(cgroup) => cgroup.add(pid),
        }
    }

    /// How many of the group's processes the OOM killer killed so far.
    pub fn oom_killed(&self) -> Result<u64> {
        Ok(self.memory_events()?.oom_kill)
    }

    /// Removes the cgroup: kills what is left inside, waits until it is
    /// empty, and removes its directories.
    pub fn remove(mut self) -> Result<()> {
        self.armed = false;
        self.remove_now()
    }

    /// Leaves the cgroup in place (`--keep-cgroup`); returns its directories.
    pub fn keep(mut self) -> Vec<PathBuf> {
        self.armed = false;
        self.dirs()
    }

    /// The interface this cgroup was made with.
    pub fn version(&self) -> Version {
        match &self.backend {
            Backend::V1(_) => Version::V1,
            Backend::V2(_) => Version::V2,
        }
    }

    /// Its directories: one per hierarchy on v1, one on v2.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.dirs(),
            Backend::V2(cgroup) => cgroup.dirs(),
        }
    }

    /// The processes in the group now.
    pub fn procs(&self) -> Result<Vec<Pid>> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.procs(),
            Backend::V2(cgroup) => cgroup.procs(),
        }
    }

    /// CPU time used and throttling, from the kernel's own accounting.
    pub fn cpu_stat(&self) -> Result<CpuStat> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.cpu_stat(),
            Backend::V2(cgroup) => cgroup.cpu_stat(),
        }
    }

    /// How often the memory limit was hit, and how many processes the OOM
    /// killer killed (zeros without a memory limit on v2, where the memory
    /// controller is then not enabled).
    pub fn memory_events(&self) -> Result<MemoryEvents> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.memory_events(),
            Backend::V2(cgroup) => cgroup.memory_events(),
        }
    }

    /// Kills every process in the group now (v2 `cgroup.kill`, or `SIGKILL`
    /// to each PID listed).
    pub fn kill(&self) -> Result<()> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.kill(),
            Backend::V2(cgroup) => cgroup.kill(),
        }
    }

    fn remove_now(&mut self) -> Result<()> {
        match &mut self.backend {
            Backend::V1(cgroup) => cgroup.remove()?,
            Backend::V2(cgroup) => cgroup.remove()?,
        }
        runtime::remove_created(self.files, &mut self.created)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            if let Err(err) = self.remove_now() {
                eprintln!("{}: {err:#}", ch01_uts::cli::program_name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component() {
        assert!(check_name("cfs-42").is_ok());
        for bad in ["", ".", "..", "a/b", "/abs"] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn key_value_fields() {
        let stat = "usage_usec 1234\nnr_periods 20\nnr_throttled 19\n";
        assert_eq!(field(stat, "usage_usec"), Some(1234));
        assert_eq!(field(stat, "nr_throttled"), Some(19));
        assert_eq!(field(stat, "nr"), None);
    }
}
