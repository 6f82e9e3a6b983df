//! The container's cgroup: chapter 4's `Cgroup`, driven by `linux.resources`.
//!
//! Chapter 4 took its limits as flags and lived as long as the container.
//! Here the limits come from the config, and the cgroup outlives the
//! runtime process that made it: `create` creates it and moves the
//! container's process in before releasing it; `pause`, `resume`, `ps`,
//! `exec`, `kill --all` and `delete`, each a new run of the runtime, open it
//! again from the [`Placement`] saved in `state.json`.
//!
//! Where it goes: `linux.cgroupsPath`, read as runc's cgroupfs driver reads
//! it (chapter 4's [`CgroupsPath`]): an absolute path (`/docker/<id>`,
//! containerd's `/<namespace>/<id>`) from the root of each hierarchy, a
//! relative one beneath the runtime's own cgroup, and none at all
//! `cfs-<id>` beneath it. A systemd `slice:prefix:name` is refused: this
//! runtime has no systemd driver.
//!
//! `linux.resources`: every field. Chapter 4's [`Limits`] take CPU quota,
//! period and shares, the memory limit and memory+swap, the pids limit and
//! device rules (the default rules, chapter 3's nodes and a few more, are
//! added after the config's, as runc adds them); the rest (block I/O,
//! cpusets, real-time CPU time, idle and burst, hugepages, network classes,
//! RDMA, raw `unified` files, memory reservation, swappiness, OOM killer,
//! kernel TCP memory) goes to chapter 4's [`Resources`]. Zero, empty and -1
//! mean "not set" where runc reads them so; `memory.kernel` is ignored, as
//! runc ignores it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use ch04_cgroups::cgroups::runtime::{BlockIo, Rdma, ThrottleDevice, WeightDevice};
use ch04_cgroups::cgroups::{
    Access, Cgroup, CgroupsPath, Cpus, DeviceKind, DeviceRule, FreezerState, Limits, Placement,
    Resources, Version,
};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{LinuxDeviceType, LinuxResources, LinuxThrottleDevice, Spec};

use crate::mounts::bind;

/// The devices every container may use whatever its rules say, as runc
/// allows them, beyond chapter 3's nodes ([`ch03_mount_chroot::devices::DEVICES`]):
/// `mknod` of any node (opening it is what is checked), the console,
/// `/dev/ptmx` and `/dev/pts/*` for terminals.
pub const MORE_DEVICES: &[(DeviceKind, Option<u32>, Option<u32>, &str)] = &[
    (DeviceKind::Char, None, None, "m"),
    (DeviceKind::Block, None, None, "m"),
    (DeviceKind::Char, Some(5), Some(1), "rwm"), // console
    (DeviceKind::Char, Some(5), Some(2), "rwm"), // ptmx
    (DeviceKind::Char, Some(136), None, "rwm"),  // pts/*
];

/// Where the container's cgroup goes: `linux.cgroupsPath`, or `cfs-<id>`.
pub fn path(id: &str, spec: &Spec) -> Result<CgroupsPath> {
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let path = path.as_ref().map(|p| p.to_string_lossy());
    CgroupsPath::parse(path.as_deref(), id).context("config.json")
}

// ANCHOR: limits
/// `linux.resources` as chapter 4's [`Limits`] (plus the freezer, which
/// `pause` needs) and [`Resources`].
pub fn limits(spec: &Spec) -> Result<Limits> {
    let linux = spec.linux().as_ref();
    let mut limits = Limits {
        freezer: true,
        ..Limits::default()
    };
    let Some(resources) = linux.and_then(|l| l.resources().as_ref()) else {
        return Ok(limits);
    };
    let field = |name: &str| format!("config.json: linux.resources.{name}");
    if let Some(cpu) = resources.cpu() {
        // A quota of -1 (or none) means no limit; the period defaults to 100 ms.
        if let Some(quota) = cpu.quota().filter(|q| *q > 0) {
            let period = cpu.period().unwrap_or(Cpus::PERIOD_US);
            limits.cpus =
                Some(Cpus::new(quota as u64, period).with_context(|| field("cpu.quota"))?);
        }
        limits.cpu_shares = cpu.shares().filter(|s| *s > 0);
    }
    if let Some(memory) = resources.memory() {
        // -1 means no limit; 0 is what engines write for "not set".
        limits.memory = memory.limit().filter(|l| *l > 0).map(|l| l as u64);
        limits.memory_swap = match memory.swap() {
            Some(-1) => bail!(
                "{}: -1 (unlimited swap) is not supported: leave it out for no swap, \
                 or give memory plus swap in bytes",
                field("memory.swap")
            ),
            Some(swap) if swap > 0 => Some(swap as u64),
            _ => None,
        };
    }
    if let Some(pids) = resources.pids() {
        // 0 and -1 mean no limit.
        limits.pids = (pids.limit() > 0).then_some(pids.limit() as u64);
    }
    let rules = resources.devices().as_deref().unwrap_or_default();
    if !rules.is_empty() {
        let mut all = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            all.push(device_rule(rule).with_context(|| field(&format!("devices[{i}]")))?);
        }
        all.extend(default_devices(spec)?);
        limits.devices = Some(all);
    }
    limits.resources = resources_of(resources);
    limits.check().context("config.json: linux.resources")?;
    Ok(limits)
}
// ANCHOR_END: limits

/// The fields beyond chapter 4's limits, with the values that mean "not
/// set" (as runc reads them) dropped: a blkio weight, a throttle rate, a
/// real-time runtime or a class id of 0, an empty cpuset, a negative
/// hugepage limit or memory figure.
fn resources_of(r: &LinuxResources) -> Resources {
    let positive = |v: Option<i64>| v.filter(|v| *v > 0).map(|v| v as u64);
    let mut out = Resources::default();
    if let Some(io) = r.block_io() {
        let throttles = |list: &Option<Vec<LinuxThrottleDevice>>| {
            list.iter()
                .flatten()
                .filter(|t| t.rate() > 0)
                .map(|t| ThrottleDevice {
                    major: t.major(),
                    minor: t.minor(),
                    rate: t.rate(),
                })
                .collect()
        };
        out.block_io = BlockIo {
            weight: io.weight().filter(|w| *w > 0),
            leaf_weight: io.leaf_weight().filter(|w| *w > 0),
            weight_device: io
                .weight_device()
                .iter()
                .flatten()
                .map(|d| WeightDevice {
                    major: d.major(),
                    minor: d.minor(),
                    weight: d.weight().filter(|w| *w > 0),
                    leaf_weight: d.leaf_weight().filter(|w| *w > 0),
                })
                .filter(|d| d.weight.is_some() || d.leaf_weight.is_some())
                .collect(),
            read_bps: throttles(io.throttle_read_bps_device()),
            write_bps: throttles(io.throttle_write_bps_device()),
            read_iops: throttles(io.throttle_read_iops_device()),
            write_iops: throttles(io.throttle_write_iops_device()),
        };
    }
    if let Some(cpu) = r.cpu() {
        let set = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
        out.cpus = set(cpu.cpus());
        out.mems = set(cpu.mems());
        out.rt_runtime_us = cpu.realtime_runtime().filter(|v| *v != 0);
        out.rt_period_us = cpu.realtime_period().filter(|v| *v != 0);
        out.cpu_idle = cpu.idle();
        out.cpu_burst_us = cpu.burst();
    }
    for h in r.hugepage_limits().iter().flatten() {
        if h.limit() >= 0 {
            out.hugepages
                .push((h.page_size().clone(), h.limit() as u64));
        }
    }
    if let Some(net) = r.network() {
        out.net_class_id = net.class_id().filter(|id| *id != 0);
        out.net_priorities = net
            .priorities()
            .iter()
            .flatten()
            .map(|p| (p.name().clone(), p.priority()))
            .collect();
    }
    for (device, limit) in r.rdma().iter().flatten() {
        out.rdma.push(Rdma {
            device: device.clone(),
            hca_handles: limit.hca_handles(),
            hca_objects: limit.hca_objects(),
        });
    }
    out.rdma.sort_by(|a, b| a.device.cmp(&b.device));
    out.unified = r
        .unified()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.unified.sort();
    if let Some(memory) = r.memory() {
        out.memory_reservation = positive(memory.reservation());
        out.swappiness = memory.swappiness();
        out.disable_oom_killer = memory.disable_oom_killer() == Some(true);
        out.kernel_tcp = positive(memory.kernel_tcp());
        if positive(memory.kernel()).is_some() {
            say!("linux.resources.memory.kernel: ignored (the kernel deprecated kernel memory limits in 5.4; runc ignores them too)");
        }
    }
    out
}

/// One `linux.resources.devices` entry as a chapter 4 rule.
fn device_rule(rule: &oci_spec::runtime::LinuxDeviceCgroup) -> Result<DeviceRule> {
    let kind = match rule.typ() {
        None | Some(LinuxDeviceType::A) => DeviceKind::All,
        Some(LinuxDeviceType::C | LinuxDeviceType::U) => DeviceKind::Char,
        Some(LinuxDeviceType::B) => DeviceKind::Block,
        Some(LinuxDeviceType::P) => bail!("type \"p\" (a fifo) is not a device: use a, b or c"),
    };
    let number = |n: Option<i64>, what: &str| -> Result<Option<u32>> {
        match n {
            None | Some(-1) => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{what} {n} is not a device number")),
        }
    };
    Ok(DeviceRule {
        allow: rule.allow(),
        kind,
        major: number(rule.major(), "major")?,
        minor: number(rule.minor(), "minor")?,
        access: Access::parse(rule.access().as_deref().unwrap_or("rwm"))?,
    })
}

/// One entry of [`MORE_DEVICES`] as an allow rule.
fn allowed(
    (kind, major, minor, access): &(DeviceKind, Option<u32>, Option<u32>, &str),
) -> Result<DeviceRule> {
    Ok(DeviceRule {
        allow: true,
        kind: *kind,
        major: *major,
        minor: *minor,
        access: Access::parse(access)?,
    })
}

/// The rules added after the config's: `mknod` of anything, chapter 3's
/// nodes, [`MORE_DEVICES`], and the nodes `linux.devices` creates, allowed.
fn default_devices(spec: &Spec) -> Result<Vec<DeviceRule>> {
    let (mknod, more) = MORE_DEVICES.split_at(2);
    let mut rules: Vec<DeviceRule> = Vec::new();
    for entry in mknod {
        rules.push(allowed(entry)?);
    }
    for (_, major, minor) in ch03_mount_chroot::devices::DEVICES {
        rules.push(DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major: u32::try_from(*major).ok(),
            minor: u32::try_from(*minor).ok(),
            access: Access::ALL,
        });
    }
    for entry in more {
        rules.push(allowed(entry)?);
    }
    for device in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        let kind = match device.typ() {
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            // Fifos are not devices; `a` is refused where the node is made.
            LinuxDeviceType::P | LinuxDeviceType::A => continue,
        };
        rules.push(DeviceRule {
            allow: true,
            kind,
            major: u32::try_from(device.major()).ok(),
            minor: u32::try_from(device.minor()).ok(),
            access: Access::ALL,
        });
    }
    Ok(rules)
}

/// Creates the container's cgroup with the config's limits. The caller moves
/// the process in ([`Cgroup::add`]) while it still waits on the sync pipe,
/// and keeps the group ([`Cgroup::keep`]) only once `create` has succeeded:
/// dropped before that, it is removed again.
pub fn create(id: &str, spec: &Spec) -> Result<Cgroup> {
    let limits = limits(spec)?;
    let path = path(id, spec)?;
    say!("cgroup {path}: {limits}");
    Cgroup::create_at(&path, &limits)
}

/// Opens the container's cgroup from its saved placement.
pub fn open(placement: Option<&Placement>) -> Result<Cgroup> {
    let placement = placement.context("the container has no cgroup")?;
    Cgroup::open(placement)
}

/// Whether the container's cgroup is frozen (for `state`: `paused`).
pub fn is_frozen(placement: Option<&Placement>) -> bool {
    open(placement)
        .and_then(|c| c.freezer_state())
        .is_ok_and(|s| s == FreezerState::Frozen)
}

// ANCHOR: mount
/// A mount of type `cgroup` in config.json (engines add one on
/// `/sys/fs/cgroup`): the container's own cgroup, seen from inside. The child
/// does this before `pivot_root`, while the host's cgroup trees are in
/// reach: it bind-mounts its group's directory, so the container sees its
/// own group as the whole tree (on v1 one directory per hierarchy, on a
/// tmpfs), with the config's flags (usually `ro`).
pub fn mount_in_container(
    target: &Path,
    flags: MsFlags,
    placement: Option<&Placement>,
) -> Result<()> {
    let placement =
        placement.context("a cgroup mount needs the container's cgroup, and it has none")?;
    let bind_flags =
        flags & (MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV);
    match placement.version {
        Version::V2 => {
            let dir = &placement
                .dirs
                .first()
                .context("a v2 cgroup without a directory")?
                .path;
            bind(dir, target, bind_flags)
        }
        Version::V1 => {
            let tmpfs_flags = bind_flags & !MsFlags::MS_RDONLY;
            say!(
                "mount(\"tmpfs\", {target:?}, \"tmpfs\", {}, \"mode=755\")",
                crate::mounts::c_flags(tmpfs_flags)
            );
            mount(
                Some("tmpfs"),
                target,
                Some("tmpfs"),
                tmpfs_flags,
                Some("mode=755"),
            )
            .with_context(|| format!("failed to mount a tmpfs on {}", target.display()))?;
            for dir in &placement.dirs {
                let inside = target.join(dir.controllers.join(","));
                std::fs::create_dir(&inside)
                    .with_context(|| format!("failed to create {}", inside.display()))?;
                bind(&dir.path, &inside, bind_flags)?;
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                crate::mounts::remount(target, MsFlags::MS_RDONLY)?;
            }
            Ok(())
        }
    }
}
// ANCHOR_END: mount

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut value = serde_json::to_value(Spec::default()).expect("serializes");
        edit(&mut value);
        serde_json::from_value(value).expect("a spec")
    }

    #[test]
    fn cgroups_path_is_absolute_relative_or_the_id() -> Result<()> {
        let with = |p: &str| spec(|s| s["linux"]["cgroupsPath"] = json!(p));
        let abs = |p: &str| CgroupsPath::Absolute(p.into());
        let rel = |p: &str| CgroupsPath::Relative(p.into());
        assert_eq!(path("box", &spec(|_| {}))?, rel("cfs-box"));
        assert_eq!(path("x", &with(""))?, rel("cfs-x"));
        assert_eq!(path("x", &with("/default/hello"))?, abs("default/hello"));
        assert_eq!(
            path("x", &with("/kubepods/besteffort/pod12/x"))?,
            abs("kubepods/besteffort/pod12/x")
        );
        assert_eq!(path("x", &with("cfs-bench/x"))?, rel("cfs-bench/x"));
        let err = |p: &str| path("x", &with(p)).map_err(|e| format!("{e:#}")).err();
        assert!(err("system.slice:docker:abc").is_some_and(|e| e.contains("cgroupfs")));
        assert!(err("/a/../b").is_some_and(|e| e.contains("`..`")));
        assert!(err("/").is_some_and(|e| e.contains("root cgroup")));
        Ok(())
    }

    #[test]
    fn resources_become_limits() -> Result<()> {
        let s = spec(|s| {
            s["linux"]["resources"] = json!({
                "cpu": {"quota": 20000, "period": 100000, "shares": 512},
                "memory": {"limit": 33554432, "swap": 67108864},
                "pids": {"limit": 16},
                "devices": [{"allow": false, "access": "rwm"},
                            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rw"}],
            });
        });
        let l = limits(&s)?;
        assert_eq!(l.cpus, Some(Cpus::new(20_000, 100_000)?));
        assert_eq!(l.cpu_shares, Some(512));
        assert_eq!((l.memory, l.memory_swap), (Some(32 << 20), Some(64 << 20)));
        assert_eq!(l.pids, Some(16));
        assert!(l.freezer);
        let rules = l.devices.context("no device rules")?;
        assert_eq!(rules[0], DeviceRule::DENY_ALL);
        assert_eq!(rules[1].to_string(), "c 10:200 rw");
        assert_eq!(
            rules.len(),
            2 + MORE_DEVICES.len() + ch03_mount_chroot::devices::DEVICES.len()
        );
        assert_eq!(rules[2].to_string(), "c *:* m");
        Ok(())
    }

    #[test]
    fn unlimited_values_and_the_default_config_set_nothing() -> Result<()> {
        let l = limits(&spec(|_| {}))?;
        assert_eq!(
            l,
            Limits {
                freezer: true,
                ..Limits::default()
            }
        );
        let s = spec(|s| {
            s["linux"]["resources"] = json!({
                "cpu": {"quota": -1, "period": 100000},
                "memory": {"limit": -1},
                "pids": {"limit": 0},
            });
        });
        assert_eq!(
            limits(&s)?,
            Limits {
                freezer: true,
                ..Limits::default()
            }
        );
        Ok(())
    }

    #[test]
    fn bad_resources_are_named() {
        let err = |resources: serde_json::Value| {
            limits(&spec(|s| s["linux"]["resources"] = resources))
                .map(|_| String::new())
                .unwrap_or_else(|e| format!("{e:#}"))
        };
        assert!(err(json!({"memory": {"limit": 1000, "swap": -1}})).contains("memory.swap"));
        assert!(err(json!({"memory": {"limit": 100}})).contains("below one page"));
        assert!(err(json!({"cpu": {"quota": 500}})).contains("linux.resources.cpu.quota"));
        assert!(err(json!({"cpu": {"shares": 1}})).contains("range of 2 to 262144"));
        assert!(err(json!({"devices": [{"allow": true, "access": "rwx"}]}))
            .contains("linux.resources.devices[0]"));
    }

    /// What Docker and the kubelet send: empty objects and zeros set
    /// nothing; the rest becomes chapter 4's resources.
    #[test]
    fn what_engines_send_is_accepted() -> Result<()> {
        let docker = spec(|s| {
            s["linux"]["resources"] = json!({
                "blockIO": {"weight": 0},
                "cpu": {"shares": 0, "cpus": "", "mems": ""},
                "memory": {"kernel": 0, "kernelTCP": 0},
                "network": {"classID": 0},
            });
        });
        assert_eq!(limits(&docker)?.resources, Resources::default());
        let kubelet = spec(|s| {
            s["linux"]["resources"] = json!({
                "cpu": {"shares": 2, "cpus": "0-1", "mems": "0"},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0},
                                   {"pageSize": "1GB", "limit": 0}],
                "memory": {"reservation": 1048576, "swappiness": 10, "disableOOMKiller": true},
                "blockIO": {"weight": 500, "throttleReadBpsDevice": [
                    {"major": 8, "minor": 0, "rate": 1048576}]},
                "rdma": {"mlx5_0": {"hcaHandles": 2}},
                "unified": {"memory.high": "1G"},
            });
        });
        let r = limits(&kubelet)?.resources;
        assert_eq!(
            (r.cpus.as_deref(), r.mems.as_deref()),
            (Some("0-1"), Some("0"))
        );
        assert_eq!(r.hugepages, [("2MB".into(), 0), ("1GB".into(), 0)]);
        assert_eq!(r.memory_reservation, Some(1 << 20));
        assert_eq!((r.swappiness, r.disable_oom_killer), (Some(10), true));
        assert_eq!(r.block_io.weight, Some(500));
        assert_eq!(r.block_io.read_bps[0].rate, 1 << 20);
        assert_eq!(r.rdma[0].hca_handles, Some(2));
        assert_eq!(r.unified, [("memory.high".into(), "1G".into())]);
        Ok(())
    }
}
