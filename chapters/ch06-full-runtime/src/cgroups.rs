//! The container's cgroup: chapter 4's code, driven by `linux.resources`.
//!
//! NOT YET WIRED: chapter 4 (`ch04-cgroups`) has not landed on main, so this
//! module is the seam where its `Cgroup` type will be called. Until then a
//! container gets no cgroup of its own, `linux.resources` is reported as
//! ignored, and `pause`/`resume` say that they need chapter 4.

use std::path::Path;

use anyhow::{bail, Result};
use ch01_uts::say;
use nix::mount::MsFlags;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// Where the container's cgroup is (one directory per hierarchy on v1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Placement {
    pub paths: Vec<std::path::PathBuf>,
}

impl Placement {
    /// Whether the freezer says the cgroup is frozen.
    pub fn is_frozen(&self) -> bool {
        false
    }
}

/// Creates the container's cgroup, applies `linux.resources` and moves `pid` in.
pub fn create(_id: &str, spec: &Spec, _pid: Pid) -> Result<Option<Placement>> {
    if spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .is_some()
    {
        crate::logging::warn(
            "linux.resources ignored: cgroup limits need chapter 4 (ch04-cgroups), not merged yet",
        );
    }
    Ok(None)
}

/// Freezes (`true`) or thaws the container's cgroup.
pub fn freeze(_placement: Option<&Placement>, _frozen: bool) -> Result<()> {
    bail!("pause and resume need the freezer of chapter 4's cgroups, which is not merged yet")
}

/// Removes the container's cgroup.
pub fn remove(_placement: Option<&Placement>) -> Result<()> {
    Ok(())
}

/// Moves `pid` into the container's cgroup (for `exec`).
pub fn join(_placement: Option<&Placement>, _pid: Pid) -> Result<()> {
    Ok(())
}

/// A mount of type `cgroup` in config.json (engines add one on `/sys/fs/cgroup`).
pub fn mount_in_container(target: &Path, _flags: MsFlags) -> Result<()> {
    say!("skip the cgroup mount on {target:?} (needs chapter 4)");
    Ok(())
}
