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
//! cgroup2 tree at `/sys/fs/cgroup/unified` has few or none. This module finds
//! out which layout it runs on ([`Hierarchies`]), and [`Cgroup`] is the one type
//! the runtime uses, with a backend per version ([`v1`], [`v2`]) that writes
//! the files by hand. [`Limits`] is what to write.
//!
//! A runtime that is not one long-lived process (chapter 6's: `create`,
//! `pause` and `delete` are separate runs) saves where the group is as a
//! [`Placement`] and opens it again with [`Cgroup::open`]. Such a runtime also
//! *freezes* a group ([`Cgroup::freeze`]: `pause`) and limits which
//! [`devices`] its processes may use.
//!
//! What it leaves out: I/O and cpuset limits, a cgroup namespace for the
//! container (`CLONE_NEWCGROUP`, chapter 6), and the systemd driver through
//! which runc asks systemd over D-Bus to create the cgroup instead of writing
//! files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ch01_uts::say;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::units::format_size;

pub mod devices;
pub mod files;
pub mod runtime;
pub mod v1;
pub mod v2;

pub use devices::{Access, DeviceKind, DeviceRule};
pub use files::{Files, Kernel, KERNEL};
pub use runtime::{CgroupsPath, Resources};

// ANCHOR: limits
/// What the container may use; `None` leaves a resource unlimited.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// CPU bandwidth: `quota` microseconds of CPU time in every `period`.
    pub cpus: Option<Cpus>,
    /// CPU weight, counted as v1's `cpu.shares` (2 to 262144, default 1024):
    /// the group's share of CPU time when CPUs are contended, not a ceiling.
    pub cpu_shares: Option<u64>,
    /// Memory in bytes, page cache included.
    pub memory: Option<u64>,
    /// Memory plus swap in bytes, as v1's `memory.memsw.limit_in_bytes` and
    /// the OCI config count it; `None`: no swap on top of `memory`.
    pub memory_swap: Option<u64>,
    /// How many processes (and threads) may exist in the group at once.
    pub pids: Option<u64>,
    /// Which devices the group may use, rules in order ([`devices`]);
    /// `None` leaves it to the parent group (usually: all).
    pub devices: Option<Vec<DeviceRule>>,
    /// Whether the group must be freezable ([`Cgroup::freeze`]): on v1 it
    /// then joins the `freezer` hierarchy; every v2 group can be frozen.
    pub freezer: bool,
    /// The rest of an OCI config's `linux.resources` (I/O, cpusets,
    /// hugepages, ...): only chapter 6's runtime sets them ([`runtime`]).
    pub resources: Resources,
}

/// CPU bandwidth as the kernel's CFS scheduler enforces it: a group may run
/// for `quota_us` microseconds (summed over all CPUs) in every `period_us`,
/// then waits, *throttled*, for the next period. 0.2 CPUs is 20 ms per 100 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    pub quota_us: u64,
    pub period_us: u64,
}
// ANCHOR_END: limits

impl Cpus {
    /// The period Docker and runc use: 100 ms.
    pub const PERIOD_US: u64 = 100_000;
    /// The kernel refuses a quota or period below 1 ms...
    pub const MIN_US: u64 = 1_000;
    /// ... and a period above 1 s.
    pub const MAX_PERIOD_US: u64 = 1_000_000;

    /// A quota and period as an OCI `config.json` gives them.
    pub fn new(quota_us: u64, period_us: u64) -> Result<Cpus> {
        ensure!(
            (Self::MIN_US..=Self::MAX_PERIOD_US).contains(&period_us),
            "a CPU period of {period_us} us is outside the kernel's range of 1000 to 1000000 us"
        );
        ensure!(
            quota_us >= Self::MIN_US,
            "a CPU quota of {quota_us} us is below the kernel's minimum of 1000 us (0.01 CPUs)"
        );
        Ok(Cpus {
            quota_us,
            period_us,
        })
    }

    /// `0.2` CPUs: a quota of 20 ms in every 100 ms period.
    pub fn from_cpus(cpus: f64) -> Result<Cpus> {
        let quota = (cpus * Self::PERIOD_US as f64).round();
        ensure!(
            quota >= Self::MIN_US as f64,
            "{cpus} CPUs is below the kernel's minimum of 0.01 (1 ms in every 100 ms)"
        );
        ensure!(quota < u64::MAX as f64, "{cpus} CPUs is too many");
        Cpus::new(quota as u64, Self::PERIOD_US)
    }

    /// How many CPUs' worth of time this is: 0.2 for 20000/100000.
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CPUs", self.cpus())
    }
}

/// The smallest memory limit that makes sense: one page. The kernel counts
/// memory in pages, so a limit below one would round down to nothing.
pub fn min_memory() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|size| size as u64)
        .unwrap_or(4096)
}

impl Limits {
    /// The range of v1's `cpu.shares`.
    pub const SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;

    /// Checks the limits before any cgroup exists.
    pub fn check(&self) -> Result<()> {
        if let Some(cpus) = self.cpus {
            Cpus::new(cpus.quota_us, cpus.period_us)?;
        }
        if let Some(shares) = self.cpu_shares {
            ensure!(
                Self::SHARES.contains(&shares),
                "CPU shares of {shares} are outside the kernel's range of 2 to 262144 (1024 is the default)"
            );
        }
        if let Some(swap) = self.memory_swap {
            let Some(memory) = self.memory else {
                bail!("a memory+swap limit needs a memory limit too");
            };
            ensure!(
                swap >= memory,
                "a memory+swap limit of {swap} bytes is below the memory limit of {memory} bytes: \
                 it counts memory and swap together"
            );
        }
        if let Some(bytes) = self.memory {
            let page = min_memory();
            ensure!(
                bytes >= page,
                "a memory limit of {bytes} bytes is below one page ({page} bytes): write e.g. 64M"
            );
        }
        if let Some(pids) = self.pids {
            ensure!(
                pids >= 1,
                "a pids limit of 0 leaves no room for the container's first process"
            );
        }
        Ok(())
    }

    /// The controllers these limits need, by their v2 names (v1's are the same).
    pub fn controllers(&self) -> Vec<&'static str> {
        let mut needed = Vec::new();
        if self.cpus.is_some() || self.cpu_shares.is_some() {
            needed.push("cpu");
        }
        if self.memory.is_some() {
            needed.push("memory");
        }
        if self.pids.is_some() {
            needed.push("pids");
        }
        needed
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(cpus) = self.cpus {
            parts.push(format!("cpus {}", cpus.cpus()));
        }
        if let Some(shares) = self.cpu_shares {
            parts.push(format!("cpu shares {shares}"));
        }
        if let Some(bytes) = self.memory {
            parts.push(format!("memory {}", format_size(bytes)));
        }
        if let Some(bytes) = self.memory_swap {
            parts.push(format!("memory+swap {}", format_size(bytes)));
        }
        if let Some(pids) = self.pids {
            parts.push(format!("pids {pids}"));
        }
        if let Some(rules) = &self.devices {
            parts.push(format!("{} device rules", rules.len()));
        }
        parts.extend(self.resources.names());
        if self.freezer {
            parts.push("freezer".to_string());
        }
        if parts.is_empty() {
            write!(f, "no limits")
        } else {
            write!(f, "{}", parts.join(", "))
        }
    }
}

/// Which interface a cgroup is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::V1 => write!(f, "v1"),
            Version::V2 => write!(f, "v2"),
        }
    }
}

/// How a machine mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies (older distributions).
    V1,
    /// v1 hierarchies hold the controllers; a cgroup2 tree is mounted too,
    /// with few or no controllers (systemd's "hybrid" mode).
    Hybrid,
    /// Only cgroup2 (Debian 11+, Ubuntu 21.10+, Fedora 31+).
    V2,
}

impl Layout {
    /// The interface to use: the one that holds the controllers.
    pub fn version(self) -> Version {
        match self {
            Layout::V1 | Layout::Hybrid => Version::V1,
            Layout::V2 => Version::V2,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::V1 => write!(f, "v1"),
            Layout::Hybrid => write!(f, "hybrid"),
            Layout::V2 => write!(f, "v2"),
        }
    }
}

/// A v1 hierarchy: where it is mounted, which controllers it carries, and the
/// directory of the cgroup this process is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    /// Which cgroup of the hierarchy the mount shows (`/` for all of it;
    /// in a cgroup namespace, `/` is the namespace's root).
    pub root: PathBuf,
    pub own: PathBuf,
}

/// The cgroup2 tree: where it is mounted and the directory of our cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Hierarchy {
    pub mount: PathBuf,
    /// As [`V1Hierarchy::root`].
    pub root: PathBuf,
    pub own: PathBuf,
}

/// The cgroup trees this process can use, and its own place in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1 hierarchies with resource controllers (named ones such as
    /// `name=systemd` carry none and are left out).
    pub v1: Vec<V1Hierarchy>,
    pub v2: Option<V2Hierarchy>,
}

impl Hierarchies {
    /// Reads `/proc/self/mountinfo` (where each tree is mounted) and
    /// `/proc/self/cgroup` (which cgroup we are in, in each tree).
    pub fn detect() -> Result<Hierarchies> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context("failed to read /proc/self/mountinfo")?;
        let cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .context("failed to read /proc/self/cgroup")?;
        Hierarchies::parse(&mountinfo, &cgroup)
    }

    /// The layout: which kinds of tree are mounted.
    pub fn layout(&self) -> Result<Layout> {
        match (self.v1.is_empty(), &self.v2) {
            (false, Some(_)) => Ok(Layout::Hybrid),
            (false, None) => Ok(Layout::V1),
            (true, Some(_)) => Ok(Layout::V2),
            (true, None) => bail!(
                "no cgroup filesystem is mounted (see /proc/self/mountinfo): \
                 mount one with `mount -t cgroup2 none /sys/fs/cgroup`"
            ),
        }
    }

    // ANCHOR: parse
    /// Parses the two files; see [`Hierarchies::detect`].
    ///
    /// Each line of `/proc/self/cgroup` is `ID:CONTROLLERS:PATH`, such as
    /// `4:memory:/user.slice` (v1) or `0::/user.slice/session-1.scope` (v2).
    /// PATH is relative to the tree's root; the directory is where that tree
    /// is mounted, plus PATH (less the mount's own root, if only a subtree is
    /// mounted, as inside a container).
    pub fn parse(mountinfo: &str, proc_self_cgroup: &str) -> Result<Hierarchies> {
        let mounts = parse_mountinfo(mountinfo);
        let mut hierarchies = Hierarchies {
            v1: Vec::new(),
            v2: None,
        };
        for line in proc_self_cgroup.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(list), Some(path)) = (fields.next(), fields.next(), fields.next())
            else {
                bail!("unexpected line in /proc/self/cgroup: {line:?}");
            };
            let path = Path::new(path);
            if id == "0" && list.is_empty() {
                let mount = mounts
                    .iter()
                    .find(|m| m.fstype == "cgroup2" && path.starts_with(&m.root));
                if let Some(m) = mount {
                    hierarchies.v2 = Some(V2Hierarchy {
                        mount: m.point.clone(),
                        root: m.root.clone(),
                        own: own_dir(m, path),
                    });
                }
                continue;
            }
            let controllers: Vec<String> = list
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect();
            if controllers.is_empty() {
                continue;
            }
            // The mount of this hierarchy lists its controllers in its options.
            let mount = mounts.iter().find(|m| {
                m.fstype == "cgroup"
                    && controllers.iter().all(|c| m.options.iter().any(|o| o == c))
                    && path.starts_with(&m.root)
            });
            if let Some(m) = mount {
                hierarchies.v1.push(V1Hierarchy {
                    controllers,
                    mount: m.point.clone(),
                    root: m.root.clone(),
                    own: own_dir(m, path),
                });
            }
        }
        // The order of /proc/self/cgroup is the kernel's; narrate by name.
        hierarchies.v1.sort_by(|a, b| a.mount.cmp(&b.mount));
        Ok(hierarchies)
    }
    // ANCHOR_END: parse

    /// The v1 hierarchy that carries `controller`.
    pub fn v1_with(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }
}

/// One line of `/proc/self/mountinfo`, the fields we need.
struct Mount {
    /// The directory of the filesystem that is mounted (`/` for a whole tree).
    root: PathBuf,
    point: PathBuf,
    fstype: String,
    options: Vec<String>,
}

/// `36 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory`:
/// fields 4 and 5 are the root and mount point; after `-` come the type, the
/// source and the filesystem's own options, which name a v1 hierarchy's
/// controllers. See `proc(5)`.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                root: PathBuf::from(unescape(fields.get(3)?)),
                point: PathBuf::from(unescape(fields.get(4)?)),
                fstype: fields.get(dash + 1)?.to_string(),
                options: fields
                    .get(dash + 3)?
                    .split(',')
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// mountinfo writes a space in a path as `\040` (octal), and so on.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn own_dir(mount: &Mount, path: &Path) -> PathBuf {
    let inside = path.strip_prefix(&mount.root).unwrap_or(path);
    mount.point.join(inside)
}

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
    // LAB:BEGIN remove_dir: done if cgroup.procs is gone; kill what it lists (once) and poll until it is empty, up to EMPTY_TIMEOUT; then rmdir, retrying while EBUSY
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

// ANCHOR: placement
/// Where a cgroup is: what a later run of a runtime needs to open it again
/// ([`Cgroup::open`]). Chapter 6 keeps it in the container's `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub version: Version,
    /// One directory per v1 hierarchy; one on v2.
    pub dirs: Vec<Dir>,
    /// The parents of those directories that the runtime created on the
    /// way to them (a `cgroupsPath` such as `/cfs/app/ctr`), outermost
    /// first: removed with the group when nothing else is left in them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<PathBuf>,
}

/// One directory of a cgroup, with the controllers of its v1 hierarchy
/// (none listed on v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    pub path: PathBuf,
    pub controllers: Vec<String>,
}
// ANCHOR_END: placement

impl Placement {
    /// A v1 cgroup's directories, each with its hierarchy's controllers.
    pub fn v1(dirs: Vec<(PathBuf, Vec<String>)>) -> Placement {
        Placement {
            version: Version::V1,
            dirs: dirs
                .into_iter()
                .map(|(path, controllers)| Dir { path, controllers })
                .collect(),
            created: Vec::new(),
        }
    }

    /// Refuses a placement that is not a group beneath a cgroup tree mounted
    /// here: removing a group kills what is in it, so a damaged state file
    /// must not name, say, the root of a hierarchy.
    fn check(&self, hierarchies: &Hierarchies) -> Result<()> {
        for created in &self.created {
            let beneath = match self.version {
                Version::V1 => hierarchies.v1.iter().any(|h| created.starts_with(&h.mount)),
                Version::V2 => hierarchies.v2.iter().any(|h| created.starts_with(&h.mount)),
            };
            let plain = created
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
            ensure!(
                beneath && plain && hierarchies.v1.iter().all(|h| *created != h.mount),
                "{} is not a cgroup beneath a {} hierarchy of this machine: refusing to use it",
                created.display(),
                self.version
            );
        }
        for dir in &self.dirs {
            let mount = match self.version {
                Version::V1 => hierarchies
                    .v1
                    .iter()
                    .find(|h| h.controllers == dir.controllers)
                    .map(|h| &h.mount),
                Version::V2 => hierarchies.v2.as_ref().map(|h| &h.mount),
            };
            let beneath = mount.is_some_and(|m| dir.path.starts_with(m) && dir.path != *m);
            let plain = dir.path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::RootDir
                )
            });
            ensure!(
                beneath && plain,
                "{} is not a cgroup beneath a {} hierarchy{} of this machine: refusing to use it",
                dir.path.display(),
                self.version,
                if dir.controllers.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", dir.controllers.join(","))
                }
            );
        }
        Ok(())
    }
}

/// What a group's freezer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze; some processes still run on (on their way to a stop).
    Freezing,
    Frozen,
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

    /// Creates the cgroup an OCI config's `linux.cgroupsPath` names, with
    /// `limits`: see [`runtime`] (chapter 6).
    pub fn create_at(path: &CgroupsPath, limits: &Limits) -> Result<Cgroup> {
        let hierarchies = Hierarchies::detect()?;
        let version = hierarchies.layout()?.version();
        say!(
            "cgroup layout: {}: using cgroup {version}",
            hierarchies.layout()?
        );
        runtime::create(&KERNEL, &hierarchies, version, path, limits)
    }

    // ANCHOR: open
    /// Opens a cgroup that an earlier process created, from its
    /// [`Placement`]. Dropping it does not remove it: that takes
    /// [`Cgroup::remove`].
    pub fn open(placement: &Placement) -> Result<Cgroup> {
        placement.check(&Hierarchies::detect()?)?;
        Ok(Cgroup::open_with(&KERNEL, placement))
    }
    // ANCHOR_END: open

    /// Like [`Cgroup::open`], without the check, on any [`Files`].
    pub fn open_with(files: &'static dyn Files, placement: &Placement) -> Cgroup {
        let backend = match placement.version {
            Version::V1 => Backend::V1(v1::Cgroup::open(
                files,
                placement
                    .dirs
                    .iter()
                    .map(|d| (d.path.clone(), d.controllers.clone()))
                    .collect(),
            )),
            Version::V2 => Backend::V2(v2::Cgroup::open(
                files,
                placement.dirs.first().map(|d| d.path.clone()),
            )),
        };
        Cgroup {
            backend,
            armed: false,
            created: placement.created.clone(),
            files,
        }
    }

    /// Where the cgroup is, to save for [`Cgroup::open`].
    pub fn placement(&self) -> Placement {
        let mut placement = match &self.backend {
            Backend::V1(cgroup) => Placement::v1(cgroup.dirs_with_controllers()),
            Backend::V2(cgroup) => Placement {
                version: Version::V2,
                dirs: cgroup
                    .dirs()
                    .into_iter()
                    .map(|path| Dir {
                        path,
                        controllers: Vec::new(),
                    })
                    .collect(),
                created: Vec::new(),
            },
        };
        placement.created = self.created.clone();
        placement
    }

    /// Freezes every process in the group: each stops where it is, as if
    /// never scheduled again, until [`Cgroup::thaw`]. Returns once all are
    /// frozen. Unlike `SIGSTOP`, the processes cannot notice, catch or undo it.
    pub fn freeze(&self) -> Result<()> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.set_frozen(true),
            Backend::V2(cgroup) => cgroup.set_frozen(true),
        }
    }

    /// Lets the processes of a frozen group run again.
    pub fn thaw(&self) -> Result<()> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.set_frozen(false),
            Backend::V2(cgroup) => cgroup.set_frozen(false),
        }
    }

    /// Whether the group is frozen.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        match &self.backend {
            Backend::V1(cgroup) => cgroup.freezer_state(),
            Backend::V2(cgroup) => cgroup.freezer_state(),
        }
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

    /// This development machine's layout: v1 controllers, cpu and cpuacct in
    /// separate hierarchies, memory nested in a cgroup of its own, cgroup2 at
    /// /sys/fs/cgroup/unified.
    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/376c
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn detects_a_hybrid_layout() -> Result<()> {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP)?;
        assert_eq!(h.layout()?, Layout::Hybrid);
        assert_eq!(h.layout()?.version(), Version::V1);
        assert_eq!(h.v1.len(), 4, "name=systemd carries no controller: {h:?}");
        let memory = h.v1_with("memory").context("no memory")?;
        assert_eq!(
            memory.own,
            Path::new("/sys/fs/cgroup/memory/process_api/376c")
        );
        let cpu = h.v1_with("cpu").context("no cpu")?;
        assert_eq!(cpu.own, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(cpu.controllers, vec!["cpu"]);
        let v2 = h.v2.context("no v2")?;
        assert_eq!(v2.own, Path::new("/sys/fs/cgroup/unified"));
        Ok(())
    }

    #[test]
    fn detects_comounted_cpu_and_cpuacct() -> Result<()> {
        let mountinfo = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let h = Hierarchies::parse(mountinfo, "3:cpu,cpuacct:/a\n2:memory:/a\n")?;
        assert_eq!(h.layout()?, Layout::V1);
        assert_eq!(h.v1.len(), 2);
        assert_eq!(h.v1_with("cpuacct"), h.v1_with("cpu"));
        assert_eq!(
            h.v1_with("cpu").map(|c| c.own.clone()),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a"))
        );
        Ok(())
    }

    #[test]
    fn detects_v2_from_a_session_scope() -> Result<()> {
        let mountinfo = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchies::parse(
            mountinfo,
            "0::/user.slice/user-1000.slice/session-1.scope\n",
        )?;
        assert_eq!(h.layout()?, Layout::V2);
        assert_eq!(
            h.v2.map(|v| v.own),
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/session-1.scope"
            ))
        );
        Ok(())
    }

    #[test]
    fn a_mounted_subtree_is_stripped_from_the_path() -> Result<()> {
        // Inside a container, the cgroup2 mount may show only the container's
        // subtree, while /proc/self/cgroup still names the full path.
        let mountinfo = "30 24 0:26 /ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchies::parse(mountinfo, "0::/ctr/app\n")?;
        assert_eq!(
            h.v2.map(|v| v.own),
            Some(PathBuf::from("/sys/fs/cgroup/app"))
        );
        Ok(())
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let h = Hierarchies::parse("", "0::/\n");
        assert!(h.is_ok_and(|h| h.layout().is_err()));
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\0"), r"/odd\0");
    }

    #[test]
    fn cpus_become_quota_and_period() -> Result<()> {
        let cpus = Cpus::from_cpus(0.2)?;
        assert_eq!((cpus.quota_us, cpus.period_us), (20_000, 100_000));
        assert_eq!(Cpus::from_cpus(1.5)?.quota_us, 150_000);
        assert!(Cpus::from_cpus(0.001).is_err());
        assert!(Cpus::new(500, 100_000).is_err());
        assert!(Cpus::new(20_000, 2_000_000).is_err());
        Ok(())
    }

    #[test]
    fn limits_are_checked_and_named() -> Result<()> {
        let limits = Limits {
            cpus: Some(Cpus::from_cpus(0.5)?),
            memory: Some(64 << 20),
            pids: Some(32),
            ..Limits::default()
        };
        limits.check()?;
        assert_eq!(limits.controllers(), vec!["cpu", "memory", "pids"]);
        assert_eq!(limits.to_string(), "cpus 0.5, memory 64M, pids 32");
        assert_eq!(Limits::default().to_string(), "no limits");
        assert!(Limits {
            memory: Some(10),
            ..Limits::default()
        }
        .check()
        .is_err());
        assert!(Limits {
            pids: Some(0),
            ..Limits::default()
        }
        .check()
        .is_err());
        Ok(())
    }

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

    #[test]
    fn shares_and_swap_are_checked() {
        let check = |limits: Limits| limits.check().map_err(|e| e.to_string());
        assert!(check(Limits {
            cpu_shares: Some(1),
            ..Limits::default()
        })
        .is_err_and(|e| e.contains("range of 2 to 262144")));
        assert!(check(Limits {
            memory_swap: Some(64 << 20),
            ..Limits::default()
        })
        .is_err_and(|e| e.contains("needs a memory limit")));
        assert!(check(Limits {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Limits::default()
        })
        .is_err_and(|e| e.contains("below the memory limit")));
        assert!(check(Limits {
            memory: Some(64 << 20),
            memory_swap: Some(64 << 20),
            cpu_shares: Some(512),
            ..Limits::default()
        })
        .is_ok());
    }

    #[test]
    fn a_placement_must_be_beneath_a_hierarchy() -> Result<()> {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP)?;
        let v1 = |path: &str, controller: &str| Placement {
            version: Version::V1,
            dirs: vec![Dir {
                path: PathBuf::from(path),
                controllers: vec![controller.to_string()],
            }],
            created: Vec::new(),
        };
        v1("/sys/fs/cgroup/pids/cfs-a", "pids").check(&h)?;
        v1("/sys/fs/cgroup/memory/process_api/376c/cfs-a", "memory").check(&h)?;
        for (path, controller) in [
            // The root of a hierarchy: removing it would kill every process.
            ("/sys/fs/cgroup/pids", "pids"),
            // In the wrong hierarchy, outside any, or climbing out.
            ("/sys/fs/cgroup/cpu/cfs-a", "pids"),
            ("/tmp/cfs-a", "pids"),
            ("/sys/fs/cgroup/pids/../../../tmp", "pids"),
        ] {
            let err = v1(path, controller).check(&h).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains("refusing")),
                "{path} was accepted"
            );
        }
        let v2 = Placement {
            version: Version::V2,
            dirs: vec![Dir {
                path: PathBuf::from("/sys/fs/cgroup/unified/cfs-a"),
                controllers: Vec::new(),
            }],
            created: Vec::new(),
        };
        v2.check(&h)?;
        Ok(())
    }

    #[test]
    fn placements_are_saved_as_json() -> Result<()> {
        let placement = Placement {
            version: Version::V2,
            dirs: vec![Dir {
                path: PathBuf::from("/sys/fs/cgroup/cfs-a"),
                controllers: Vec::new(),
            }],
            created: Vec::new(),
        };
        let text = serde_json::to_string(&placement)?;
        assert_eq!(
            text,
            r#"{"version":"v2","dirs":[{"path":"/sys/fs/cgroup/cfs-a","controllers":[]}]}"#
        );
        assert_eq!(serde_json::from_str::<Placement>(&text)?, placement);
        Ok(())
    }
}
