//! The container's cgroup: chapter 4's `Cgroup`, driven by `linux.resources`.
//!
//! Chapter 4 took its limits as flags and lived as long as the container.
//! Here the limits come from the config, and the cgroup outlives the
//! runtime process that made it: `create` creates it and moves the
//! container's process in before releasing it; `pause`, `resume`, `ps`,
//! `exec`, `kill --all` and `delete`, each a new run of the runtime, open it
//! again from the [`Placement`] saved in `state.json`.
//!
//! Where it goes: a real runtime reads `linux.cgroupsPath`. runc's cgroupfs
//! driver takes an absolute path (`/default/hello`, as containerd passes it:
//! `/<namespace>/<id>`) relative to the root of each hierarchy, and a
//! relative one relative to its own cgroup; with systemd as the manager the
//! path is `slice:prefix:name` and systemd creates a scope. This runtime
//! keeps to one rule instead, the one chapter 4 follows: the group goes
//! beneath the cgroup the runtime runs in (per hierarchy on v1), named after
//! `cgroupsPath` (or the id, when it is missing) flattened into one
//! directory name with a `cfs-` prefix: `/default/hello` becomes
//! `cfs-default-hello`.
//!
//! `linux.resources`: CPU quota, period and shares, the memory limit and
//! memory+swap, the pids limit, and device rules. The default rules (see
//! [`DEFAULT_DEVICES`]) are added after the config's, as runc adds them.
//! Everything else there (block I/O, hugepages, cpusets, network classes,
//! RDMA, raw `unified` files, memory reservations and swappiness, real-time
//! CPU time) is refused with an error naming the field, rather than ignored.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use ch01_uts::say;
use ch04_cgroups::cgroups::{
    Access, Cgroup, Cpus, DeviceKind, DeviceRule, FreezerState, Limits, Placement, Version,
};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{LinuxDeviceType, LinuxResources, Spec};

use crate::mounts::bind;

/// The devices every container may use whatever its rules say, as runc
/// allows them: chapter 3's nodes, the console, `/dev/pts/*` and
/// `/dev/ptmx` for terminals, and `mknod` of any node (opening it is what is
/// checked).
pub const DEFAULT_DEVICES: &[(char, Option<u32>, Option<u32>, &str)] = &[
    ('c', None, None, "m"),
    ('b', None, None, "m"),
    ('c', Some(1), Some(3), "rwm"), // null
    ('c', Some(1), Some(5), "rwm"), // zero
    ('c', Some(1), Some(7), "rwm"), // full
    ('c', Some(1), Some(8), "rwm"), // random
    ('c', Some(1), Some(9), "rwm"), // urandom
    ('c', Some(5), Some(0), "rwm"), // tty
    ('c', Some(5), Some(1), "rwm"), // console
    ('c', Some(5), Some(2), "rwm"), // ptmx
    ('c', Some(136), None, "rwm"),  // pts/*
];

// ANCHOR: name
/// The cgroup's name: `cgroupsPath` (or the id) as one directory name
/// beginning `cfs-`.
pub fn name(id: &str, spec: &Spec) -> Result<String> {
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let mut parts = Vec::new();
    if let Some(path) = &path {
        for part in path.to_string_lossy().split(['/', ':']) {
            ensure!(
                part != "..",
                "config.json: linux.cgroupsPath {}: `..` is not allowed",
                path.display()
            );
            if !part.is_empty() && part != "." {
                parts.push(part.to_string());
            }
        }
    }
    let base = if parts.is_empty() {
        id.to_string()
    } else {
        parts.join("-")
    };
    let name = if base.starts_with("cfs-") {
        base
    } else {
        format!("cfs-{base}")
    };
    ensure!(
        name.len() <= 255,
        "config.json: linux.cgroupsPath makes a cgroup name longer than 255 bytes"
    );
    Ok(name)
}
// ANCHOR_END: name

// ANCHOR: limits
/// `linux.resources` as chapter 4's [`Limits`] (plus the freezer, which
/// `pause` needs). Fields this runtime cannot honour are refused by name.
pub fn limits(spec: &Spec) -> Result<Limits> {
    let linux = spec.linux().as_ref();
    let mut limits = Limits {
        freezer: true,
        ..Limits::default()
    };
    let Some(resources) = linux.and_then(|l| l.resources().as_ref()) else {
        return Ok(limits);
    };
    refuse_unsupported(resources)?;
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
    limits.check().context("config.json: linux.resources")?;
    Ok(limits)
}
// ANCHOR_END: limits

/// The resources this runtime does not set: an error naming the first one
/// given a value (absent, zero or empty values are fine).
fn refuse_unsupported(r: &LinuxResources) -> Result<()> {
    let mut given = Vec::new();
    if r.block_io().is_some() {
        given.push("blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        given.push("hugepageLimits");
    }
    if r.network().is_some() {
        given.push("network");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        given.push("rdma");
    }
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
        given.push("unified");
    }
    if let Some(cpu) = r.cpu() {
        let set = |v: Option<i64>| v.is_some_and(|v| v != 0);
        if cpu.cpus().as_ref().is_some_and(|c| !c.is_empty()) {
            given.push("cpu.cpus");
        }
        if cpu.mems().as_ref().is_some_and(|c| !c.is_empty()) {
            given.push("cpu.mems");
        }
        if set(cpu.realtime_runtime()) || cpu.realtime_period().is_some_and(|v| v != 0) {
            given.push("cpu.realtimeRuntime");
        }
        if cpu.burst().is_some_and(|v| v != 0) {
            given.push("cpu.burst");
        }
        if set(cpu.idle()) {
            given.push("cpu.idle");
        }
    }
    if let Some(memory) = r.memory() {
        let set = |v: Option<i64>| v.is_some_and(|v| v != 0 && v != -1);
        if set(memory.reservation()) {
            given.push("memory.reservation");
        }
        if set(memory.kernel()) || set(memory.kernel_tcp()) {
            given.push("memory.kernel");
        }
        if memory.swappiness().is_some() {
            given.push("memory.swappiness");
        }
        if memory.disable_oom_killer() == Some(true) {
            given.push("memory.disableOOMKiller");
        }
    }
    if let Some(first) = given.first() {
        bail!(
            "config.json: linux.resources.{first} is not supported by this runtime (it sets \
             cpu quota, period and shares, memory limit and swap, pids limit and devices): \
             remove it"
        );
    }
    Ok(())
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

/// [`DEFAULT_DEVICES`] and the nodes `linux.devices` creates, allowed.
fn default_devices(spec: &Spec) -> Result<Vec<DeviceRule>> {
    let mut rules: Vec<DeviceRule> = DEFAULT_DEVICES
        .iter()
        .map(|(kind, major, minor, access)| {
            Ok(DeviceRule {
                allow: true,
                kind: if *kind == 'b' {
                    DeviceKind::Block
                } else {
                    DeviceKind::Char
                },
                major: *major,
                minor: *minor,
                access: Access::parse(access)?,
            })
        })
        .collect::<Result<_>>()?;
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

// ANCHOR: create
/// Creates the container's cgroup with the config's limits. The caller moves
/// the process in ([`Cgroup::add`]) while it still waits on the sync pipe,
/// and keeps the group ([`Cgroup::keep`]) only once `create` has succeeded:
/// dropped before that, it is removed again.
pub fn create(id: &str, spec: &Spec) -> Result<Cgroup> {
    let limits = limits(spec)?;
    let name = name(id, spec)?;
    say!("cgroup {name}: {limits}");
    Cgroup::create(&name, &limits)
}
// ANCHOR_END: create

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
            say!("mount(\"tmpfs\", {target:?}, \"tmpfs\", {tmpfs_flags:?}, \"mode=755\")");
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
    fn names_come_from_cgroups_path_or_the_id() -> Result<()> {
        assert_eq!(name("box", &spec(|_| {}))?, "cfs-box");
        let with = |path: &str| spec(|s| s["linux"]["cgroupsPath"] = json!(path));
        assert_eq!(name("x", &with("/default/hello"))?, "cfs-default-hello");
        assert_eq!(name("x", &with("cfs-bench"))?, "cfs-bench");
        assert_eq!(
            name("x", &with("system.slice:docker:abc"))?,
            "cfs-system.slice-docker-abc"
        );
        assert_eq!(name("x", &with("/"))?, "cfs-x");
        assert!(name("x", &with("/a/../b")).is_err());
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
        assert_eq!(rules.len(), 2 + DEFAULT_DEVICES.len());
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
    fn unsupported_or_bad_resources_are_named() {
        let err = |resources: serde_json::Value| {
            limits(&spec(|s| s["linux"]["resources"] = resources))
                .map(|_| String::new())
                .unwrap_or_else(|e| format!("{e:#}"))
        };
        assert!(err(json!({"blockIO": {"weight": 10}})).contains("linux.resources.blockIO"));
        assert!(err(json!({"cpu": {"cpus": "0-1"}})).contains("linux.resources.cpu.cpus"));
        assert!(err(json!({"memory": {"limit": 1000, "swap": -1}})).contains("memory.swap"));
        assert!(err(json!({"memory": {"limit": 100}})).contains("below one page"));
        assert!(err(json!({"cpu": {"quota": 500}})).contains("linux.resources.cpu.quota"));
        assert!(err(json!({"cpu": {"shares": 1}})).contains("range of 2 to 262144"));
        assert!(err(json!({"devices": [{"allow": true, "access": "rwx"}]}))
            .contains("linux.resources.devices[0]"));
    }
}
