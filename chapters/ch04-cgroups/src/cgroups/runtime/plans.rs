//! The file plans of what chapter 6 asks of the backends (a weight, swap on
//! top of memory, device rules, a freezer, a group reopened by a later run),
//! on the unit tests' fake file system.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cgroups::v1::tests as v1t;
use crate::cgroups::v2::tests::{self as v2t, SCOPE};
use crate::cgroups::{v1, v2, Limits};

/// What chapter 6 asks for: a weight, swap on top of memory, device rules
/// and a freezer; then a later process opens it, pauses and resumes it,
/// and removes it while frozen.
#[test]
fn file_plan_of_a_runtime_v1() -> Result<()> {
    use crate::cgroups::{Cgroup as Any, DeviceRule, FreezerState, Placement};
    let files = v1t::fake();
    let limits = Limits {
        cpu_shares: Some(512),
        memory: Some(32 << 20),
        memory_swap: Some(48 << 20),
        devices: Some(vec![
            DeviceRule::DENY_ALL,
            DeviceRule::allow_char(1, Some(3)),
        ]),
        freezer: true,
        ..Limits::default()
    };
    let cgroup = v1::Cgroup::create(files, &v1t::hierarchies(), "cfs-1", &limits)?;
    let placement = Placement::v1(cgroup.dirs_with_controllers());
    // A later run of the runtime, from the saved placement.
    let later = Any::open_with(files, &placement);
    assert_eq!(later.placement(), placement);
    later.freeze()?;
    assert_eq!(later.freezer_state()?, FreezerState::Frozen);
    later.thaw()?;
    later.freeze()?;
    later.remove()?;
    // Chapter 4's groups (its file plan spells them out), made and removed
    // as it does; the runtime's devices and freezer groups come after them
    // and go before them.
    let chapter4 = v1t::fake();
    v1::Cgroup::create(chapter4, &v1t::hierarchies(), "cfs-1", &Limits::default())?.remove()?;
    let (made, removed): (Vec<String>, Vec<String>) = chapter4
        .log()
        .into_iter()
        .partition(|l| l.starts_with("mkdir "));
    let runtime = [
        "mkdir /cg/devices/cfs-1",
        "mkdir /cg/freezer/cfs-1",
        r#"write /cg/cpu/cfs-1/cpu.shares "512""#,
        r#"write /cg/memory/app/cfs-1/memory.limit_in_bytes "33554432""#,
        r#"write /cg/memory/app/cfs-1/memory.memsw.limit_in_bytes "50331648""#,
        r#"write /cg/devices/cfs-1/devices.deny "a *:* rwm""#,
        r#"write /cg/devices/cfs-1/devices.allow "c 1:3 rwm""#,
        r#"write /cg/freezer/cfs-1/freezer.state "FROZEN""#,
        r#"write /cg/freezer/cfs-1/freezer.state "THAWED""#,
        r#"write /cg/freezer/cfs-1/freezer.state "FROZEN""#,
        // remove: kill what is inside (nothing here), thaw, rmdir.
        r#"write /cg/freezer/cfs-1/freezer.state "THAWED""#,
        "rmdir /cg/freezer/cfs-1",
        "rmdir /cg/devices/cfs-1",
    ]
    .map(String::from);
    assert_eq!(files.log(), [made, runtime.to_vec(), removed].concat());
    Ok(())
}

#[test]
fn a_missing_freezer_hierarchy_is_reported() {
    let files = v1t::fake();
    let limits = Limits {
        freezer: true,
        ..Limits::default()
    };
    let err = v1::Cgroup::create(files, &v1t::hierarchies()[..5], "cfs-1", &limits).err();
    assert!(err.is_some_and(|e| e.to_string().contains("freezer controller")));
    assert!(files.log().is_empty(), "{:?}", files.log());
}

// ANCHOR: runtime_plan
/// What chapter 6 asks for on v2: the weight becomes cpu.weight, swap is
/// counted apart from memory, the device rules become an eBPF program,
/// and the freezer is cgroup.freeze, with cgroup.events saying "frozen".
#[test]
fn file_plan_of_a_runtime_v2() -> Result<()> {
    use crate::cgroups::{Cgroup as Any, DeviceRule, Dir, FreezerState, Placement, Version};
    let files = v2t::systemd_machine().leak();
    let limits = Limits {
        cpu_shares: Some(1024),
        memory: Some(32 << 20),
        memory_swap: Some(48 << 20),
        pids: Some(16),
        devices: Some(vec![
            DeviceRule::DENY_ALL,
            DeviceRule::allow_char(1, Some(3)),
        ]),
        freezer: true,
        ..Limits::default()
    };
    let cgroup = v2::Cgroup::create(files, &v2t::tree(SCOPE), "cfs-1", &limits)?;
    let slice = "/cg/user.slice/user-1000.slice";
    let placement = Placement {
        version: Version::V2,
        dirs: vec![Dir {
            path: PathBuf::from(format!("{slice}/cfs-1")),
            controllers: Vec::new(),
        }],
        created: Vec::new(),
    };
    assert_eq!(cgroup.dirs(), [placement.dirs[0].path.clone()]);
    let later = Any::open_with(files, &placement);
    assert_eq!(later.freezer_state()?, FreezerState::Thawed);
    later.freeze()?;
    assert_eq!(later.freezer_state()?, FreezerState::Frozen);
    later.thaw()?;
    later.remove()?;
    // The group goes where chapter 4's plan puts it (cpu down the tree,
    // EBUSY, beside the scope: its file plan spells these writes out).
    let chapter4 = v2t::systemd_machine().leak();
    let needed = v2::needed(&v2t::all_limits()?);
    assert_eq!(
        v2::place(chapter4, &v2t::tree(SCOPE), &needed)?,
        Path::new(slice)
    );
    let mut plan = chapter4.log();
    plan.extend([
        format!("mkdir {slice}/cfs-1"),
        // 1024 shares, v1's default, is weight 39 (v2's default is 100).
        format!(r#"write {slice}/cfs-1/cpu.weight "39""#),
        format!(r#"write {slice}/cfs-1/memory.max "33554432""#),
        // 48M of memory and swap together: 16M of swap.
        format!(r#"write {slice}/cfs-1/memory.swap.max "16777216""#),
        format!(r#"write {slice}/cfs-1/pids.max "16""#),
        format!("bpf attach {slice}/cfs-1 BPF_CGROUP_DEVICE (2 rules)"),
        format!(r#"write {slice}/cfs-1/cgroup.freeze "1""#),
        format!(r#"write {slice}/cfs-1/cgroup.freeze "0""#),
        format!("rmdir {slice}/cfs-1"),
    ]);
    assert_eq!(files.log(), plan);
    Ok(())
}
// ANCHOR_END: runtime_plan
