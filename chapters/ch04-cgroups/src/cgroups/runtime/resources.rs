//! The rest of an OCI config's `linux.resources`, on v1 and v2.
//!
//! Chapter 4's [`Limits`](super::super::Limits) are the ones a learner sets
//! by hand: CPU quota and weight, memory and swap, pids, devices. Engines
//! send more, in every config, and a runtime must accept it: Docker sends
//! `blockIO` (often empty), the kubelet sends `hugepageLimits` for each page
//! size and often `cpu.cpus`. Each field goes to its controller's file, as
//! runc's `libcontainer/cgroups/fs` (v1) and `fs2` (v2) write them; a zero,
//! an empty string or an empty list means "not set" there and sets nothing
//! here. A field whose controller this machine lacks is an error naming
//! both (runc fails too, when it writes the file), except where runc
//! ignores the field on v2 (network classes, swappiness, the OOM-killer
//! switch, kernel memory), which is said in the narration.
//!
//! What it leaves out: the statistics runc reads back (`io.stat`,
//! `hugetlb.*.usage_in_bytes`), and `memory.kernel` on v1 too, which runc
//! ignores since 1.1 (the kernel deprecated `memory.kmem.limit_in_bytes`
//! in 5.4).

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use ch01_uts::say;

use super::super::{read, write, Files, Version};

/// A device's weight for the block I/O scheduler (`weight` 10 to 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightDevice {
    pub major: i64,
    pub minor: i64,
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
}

/// A ceiling on a device's bytes or I/O operations per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleDevice {
    pub major: i64,
    pub minor: i64,
    pub rate: u64,
}

/// `linux.resources.blockIO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub weight: Option<u16>,
    pub leaf_weight: Option<u16>,
    pub weight_device: Vec<WeightDevice>,
    pub read_bps: Vec<ThrottleDevice>,
    pub write_bps: Vec<ThrottleDevice>,
    pub read_iops: Vec<ThrottleDevice>,
    pub write_iops: Vec<ThrottleDevice>,
}

impl BlockIo {
    /// Whether anything is set (Docker sends `"blockIO": {}`).
    pub fn is_set(&self) -> bool {
        *self != BlockIo::default()
    }

    /// The throttles: OCI's list, v1's file, v2's key in `io.max`.
    fn throttles(&self) -> [(&[ThrottleDevice], &'static str, &'static str); 4] {
        [
            (&self.read_bps, "blkio.throttle.read_bps_device", "rbps"),
            (&self.write_bps, "blkio.throttle.write_bps_device", "wbps"),
            (&self.read_iops, "blkio.throttle.read_iops_device", "riops"),
            (
                &self.write_iops,
                "blkio.throttle.write_iops_device",
                "wiops",
            ),
        ]
    }
}

/// One `linux.resources.rdma` entry: a device's handle and object limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdma {
    pub device: String,
    pub hca_handles: Option<u32>,
    pub hca_objects: Option<u32>,
}

// ANCHOR: resources
/// What an OCI runtime sets beyond chapter 4's limits; the default sets
/// nothing. Values that mean "not set" in the OCI config are `None` or
/// empty here (the runtime's conversion drops them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub block_io: BlockIo,
    /// `cpu.cpus`, `cpu.mems`: which CPUs and memory nodes (`0-3,6`).
    pub cpus: Option<String>,
    pub mems: Option<String>,
    /// Real-time CPU time (v1 `cpu.rt_*`): microseconds per period.
    pub rt_runtime_us: Option<i64>,
    pub rt_period_us: Option<u64>,
    /// `cpu.idle`: 1 makes the group's tasks SCHED_IDLE.
    pub cpu_idle: Option<i64>,
    /// `cpu.burst`: quota a group may save up and spend at once.
    pub cpu_burst_us: Option<u64>,
    /// `hugepageLimits`: page size (`2MB`) and bytes.
    pub hugepages: Vec<(String, u64)>,
    /// `network.classID` and `network.priorities` (v1 only).
    pub net_class_id: Option<u32>,
    pub net_priorities: Vec<(String, u32)>,
    pub rdma: Vec<Rdma>,
    /// `unified`: v2 files written as given, by name.
    pub unified: Vec<(String, String)>,
    /// `memory.reservation` (a soft limit), `swappiness`,
    /// `disableOOMKiller`, `kernelTCP`.
    pub memory_reservation: Option<u64>,
    pub swappiness: Option<u64>,
    pub disable_oom_killer: bool,
    pub kernel_tcp: Option<u64>,
}
// ANCHOR_END: resources

/// Controllers a `unified` file may belong to.
const V2_CONTROLLERS: &[&str] = &[
    "cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma", "misc",
];

impl Resources {
    /// Each set field with the controller it needs on `version`.
    pub fn needs(&self, version: Version) -> Vec<(&'static str, &'static str)> {
        let v1 = version == Version::V1;
        let mut needs = Vec::new();
        if self.block_io.is_set() {
            needs.push(("blockIO", if v1 { "blkio" } else { "io" }));
        }
        if self.cpus.is_some() {
            needs.push(("cpu.cpus", "cpuset"));
        }
        if self.mems.is_some() {
            needs.push(("cpu.mems", "cpuset"));
        }
        if self.rt_runtime_us.is_some() || self.rt_period_us.is_some() {
            needs.push(("cpu.realtimeRuntime", "cpu"));
        }
        if self.cpu_idle.is_some() {
            needs.push(("cpu.idle", "cpu"));
        }
        if self.cpu_burst_us.is_some() {
            needs.push(("cpu.burst", "cpu"));
        }
        if !self.hugepages.is_empty() {
            needs.push(("hugepageLimits", "hugetlb"));
        }
        if v1 && self.net_class_id.is_some() {
            needs.push(("network.classID", "net_cls"));
        }
        if v1 && !self.net_priorities.is_empty() {
            needs.push(("network.priorities", "net_prio"));
        }
        if !self.rdma.is_empty() {
            needs.push(("rdma", "rdma"));
        }
        if self.memory_reservation.is_some() {
            needs.push(("memory.reservation", "memory"));
        }
        if v1 && (self.swappiness.is_some() || self.disable_oom_killer || self.kernel_tcp.is_some())
        {
            needs.push(("memory", "memory"));
        }
        if !v1 {
            for (name, _) in &self.unified {
                let prefix = name.split('.').next().unwrap_or_default();
                if let Some(c) = V2_CONTROLLERS.iter().find(|c| **c == prefix) {
                    needs.push(("unified", c));
                }
            }
        }
        needs
    }

    /// Refuses what `version` cannot do at all, before anything is created.
    pub fn check(&self, version: Version) -> Result<()> {
        if let Some(s) = self.swappiness {
            ensure!(
                s <= 100,
                "linux.resources.memory.swappiness {s} is outside 0 to 100"
            );
        }
        for (name, _) in &self.unified {
            ensure!(
                !name.contains('/') && !name.starts_with('.') && !name.is_empty(),
                "linux.resources.unified: {name:?} is not a cgroup file name"
            );
        }
        match version {
            Version::V1 => ensure!(
                self.unified.is_empty(),
                "linux.resources.unified holds cgroup v2 files, and this machine's controllers \
                 are on cgroup v1: remove it"
            ),
            Version::V2 => ensure!(
                self.rt_runtime_us.is_none() && self.rt_period_us.is_none(),
                "linux.resources.cpu.realtimeRuntime: cgroup v2 has no real-time group \
                 scheduling (v1's cpu.rt_runtime_us): remove it"
            ),
        }
        Ok(())
    }

    /// The set fields' names, for a summary line.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (field, _) in self
            .needs(Version::V1)
            .into_iter()
            .chain(self.needs(Version::V2))
        {
            if !names.iter().any(|n| n == field) {
                names.push(field.to_string());
            }
        }
        if self.kernel_tcp.is_some() && !names.iter().any(|n| n == "memory") {
            names.push("memory".to_string());
        }
        names
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.names().join(", "))
    }
}

/// A device as the kernel's files name it: `8:0`.
fn device(major: i64, minor: i64) -> String {
    format!("{major}:{minor}")
}

/// The directory of the hierarchy that carries `controller`.
fn dir_of<'a>(dirs: &'a [(PathBuf, Vec<String>)], controller: &str) -> Result<&'a Path> {
    dirs.iter()
        .find(|(_, c)| c.iter().any(|c| c == controller))
        .map(|(d, _)| d.as_path())
        .with_context(|| format!("the cgroup has no directory for the {controller} controller"))
}

// ANCHOR: apply_v1
/// Writes the resources to a v1 cgroup's directories (one per hierarchy).
pub fn apply_v1(files: &dyn Files, dirs: &[(PathBuf, Vec<String>)], r: &Resources) -> Result<()> {
    let cpu = || dir_of(dirs, "cpu");
    // Period first: the kernel checks the runtime against it.
    if let Some(period) = r.rt_period_us {
        write(files, &cpu()?.join("cpu.rt_period_us"), &period.to_string())?;
    }
    if let Some(runtime) = r.rt_runtime_us {
        write(
            files,
            &cpu()?.join("cpu.rt_runtime_us"),
            &runtime.to_string(),
        )?;
    }
    if let Some(burst) = r.cpu_burst_us {
        write(files, &cpu()?.join("cpu.cfs_burst_us"), &burst.to_string())?;
    }
    if let Some(idle) = r.cpu_idle {
        write(files, &cpu()?.join("cpu.idle"), &idle.to_string())?;
    }
    if let Ok(dir) = dir_of(dirs, "cpuset") {
        // A new group has no CPUs or nodes: the parent's, unless given.
        // The kernel refuses a set that is not within the parent's.
        let parent = dir.parent().context("a cgroup without a parent")?;
        for (name, given) in [("cpuset.cpus", &r.cpus), ("cpuset.mems", &r.mems)] {
            let value = match given {
                Some(value) => value.clone(),
                None => read(files, &parent.join(name))?.trim().to_string(),
            };
            write(files, &dir.join(name), &value).with_context(|| {
                format!("{name} must lie within the parent's ({})", parent.display())
            })?;
        }
    }
    let io = &r.block_io;
    if io.is_set() {
        let dir = dir_of(dirs, "blkio")?;
        // With the BFQ scheduler the weights are blkio.bfq.*; with CFQ
        // (gone since Linux 5.0) blkio.weight; blk-mq without BFQ has none.
        let bfq = files.exists(&dir.join("blkio.bfq.weight"));
        let (weight, weight_device) = if bfq {
            ("blkio.bfq.weight", "blkio.bfq.weight_device")
        } else {
            ("blkio.weight", "blkio.weight_device")
        };
        let weights = |field: &str, file: &str, value: String| -> Result<()> {
            ensure!(
                files.exists(&dir.join(file)),
                "linux.resources.blockIO.{field}: {} has no {file} (no I/O scheduler with \
                 weights, such as bfq, on this machine's disks): remove it",
                dir.display()
            );
            write(files, &dir.join(file), &value)
        };
        if let Some(w) = io.weight {
            weights("weight", weight, w.to_string())?;
        }
        if let Some(w) = io.leaf_weight {
            weights("leafWeight", "blkio.leaf_weight", w.to_string())?;
        }
        for d in &io.weight_device {
            if let Some(w) = d.weight {
                let value = format!("{} {w}", device(d.major, d.minor));
                weights("weightDevice", weight_device, value)?;
            }
            if let Some(w) = d.leaf_weight {
                let value = format!("{} {w}", device(d.major, d.minor));
                weights("weightDevice", "blkio.leaf_weight_device", value)?;
            }
        }
        for (list, file, _) in io.throttles() {
            for t in list {
                let value = format!("{} {}", device(t.major, t.minor), t.rate);
                write(files, &dir.join(file), &value)?;
            }
        }
    }
    if !r.hugepages.is_empty() {
        let dir = dir_of(dirs, "hugetlb")?;
        for (size, bytes) in &r.hugepages {
            let file = dir.join(format!("hugetlb.{size}.limit_in_bytes"));
            ensure!(
                files.exists(&file),
                "linux.resources.hugepageLimits: no page size {size} here ({} is missing)",
                file.display()
            );
            write(files, &file, &bytes.to_string())?;
        }
    }
    if let Some(id) = r.net_class_id {
        write(
            files,
            &dir_of(dirs, "net_cls")?.join("net_cls.classid"),
            &id.to_string(),
        )?;
    }
    for (interface, priority) in &r.net_priorities {
        let file = dir_of(dirs, "net_prio")?.join("net_prio.ifpriomap");
        write(files, &file, &format!("{interface} {priority}"))?;
    }
    for entry in &r.rdma {
        write(files, &dir_of(dirs, "rdma")?.join("rdma.max"), &rdma(entry))?;
    }
    if r.memory_reservation.is_some()
        || r.swappiness.is_some()
        || r.disable_oom_killer
        || r.kernel_tcp.is_some()
    {
        let dir = dir_of(dirs, "memory")?;
        if let Some(bytes) = r.memory_reservation {
            write(
                files,
                &dir.join("memory.soft_limit_in_bytes"),
                &bytes.to_string(),
            )?;
        }
        if let Some(s) = r.swappiness {
            write(files, &dir.join("memory.swappiness"), &s.to_string())?;
        }
        if r.disable_oom_killer {
            write(files, &dir.join("memory.oom_control"), "1")?;
        }
        if let Some(bytes) = r.kernel_tcp {
            write(
                files,
                &dir.join("memory.kmem.tcp.limit_in_bytes"),
                &bytes.to_string(),
            )?;
        }
    }
    Ok(())
}
// ANCHOR_END: apply_v1

/// `mlx5_0 hca_handle=2 hca_object=2000` (a limit left out stays as it is).
fn rdma(entry: &Rdma) -> String {
    let mut value = entry.device.clone();
    if let Some(n) = entry.hca_handles {
        value.push_str(&format!(" hca_handle={n}"));
    }
    if let Some(n) = entry.hca_objects {
        value.push_str(&format!(" hca_object={n}"));
    }
    value
}

/// v1's blkio weight (10 to 1000) as v2's `io.weight` (1 to 10000), as
/// runc converts it.
pub fn io_weight(blkio: u16) -> u64 {
    1 + (u64::from(blkio.clamp(10, 1000)) - 10) * 9999 / 990
}

// ANCHOR: apply_v2
/// Writes the resources to a v2 cgroup's directory.
pub fn apply_v2(files: &dyn Files, dir: &Path, r: &Resources) -> Result<()> {
    if let Some(burst) = r.cpu_burst_us {
        write(files, &dir.join("cpu.max.burst"), &burst.to_string())?;
    }
    if let Some(idle) = r.cpu_idle {
        write(files, &dir.join("cpu.idle"), &idle.to_string())?;
    }
    // v2 intersects a group's set with its parent's by itself.
    if let Some(cpus) = &r.cpus {
        write(files, &dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = &r.mems {
        write(files, &dir.join("cpuset.mems"), mems)?;
    }
    let io = &r.block_io;
    // BFQ takes v1's weights as they are; io.weight has its own scale.
    let bfq = files.exists(&dir.join("io.bfq.weight"));
    if let Some(w) = io.weight {
        if bfq {
            write(files, &dir.join("io.bfq.weight"), &w.to_string())?;
        } else {
            write(files, &dir.join("io.weight"), &io_weight(w).to_string())?;
        }
    }
    for d in &io.weight_device {
        if let Some(w) = d.weight {
            let dev = device(d.major, d.minor);
            if bfq {
                write(files, &dir.join("io.bfq.weight"), &format!("{dev} {w}"))?;
            } else {
                write(
                    files,
                    &dir.join("io.weight"),
                    &format!("{dev} {}", io_weight(w)),
                )?;
            }
        }
    }
    if io.leaf_weight.is_some() || io.weight_device.iter().any(|d| d.leaf_weight.is_some()) {
        say!("linux.resources.blockIO leaf weights: ignored on cgroup v2 (it has no leaf weights; runc ignores them too)");
    }
    for (list, _, key) in io.throttles() {
        for t in list {
            let value = format!("{} {key}={}", device(t.major, t.minor), t.rate);
            write(files, &dir.join("io.max"), &value)?;
        }
    }
    for (size, bytes) in &r.hugepages {
        let file = dir.join(format!("hugetlb.{size}.max"));
        ensure!(
            files.exists(&file),
            "linux.resources.hugepageLimits: no page size {size} here ({} is missing)",
            file.display()
        );
        write(files, &file, &bytes.to_string())?;
    }
    for entry in &r.rdma {
        write(files, &dir.join("rdma.max"), &rdma(entry))?;
    }
    if let Some(bytes) = r.memory_reservation {
        write(files, &dir.join("memory.low"), &bytes.to_string())?;
    }
    for (field, set) in [
        (
            "network",
            r.net_class_id.is_some() || !r.net_priorities.is_empty(),
        ),
        ("memory.swappiness", r.swappiness.is_some()),
        ("memory.disableOOMKiller", r.disable_oom_killer),
        ("memory.kernelTCP", r.kernel_tcp.is_some()),
    ] {
        if set {
            say!(
                "linux.resources.{field}: ignored on cgroup v2 (no such file; runc ignores it too)"
            );
        }
    }
    for (name, value) in &r.unified {
        write(files, &dir.join(name), value).with_context(|| {
            format!(
                "linux.resources.unified.{name}: is its controller enabled, and the name right?"
            )
        })?;
    }
    Ok(())
}
// ANCHOR_END: apply_v2
