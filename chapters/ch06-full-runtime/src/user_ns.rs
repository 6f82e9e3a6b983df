//! The user namespace: root inside, an ordinary user outside.
//!
//! In a new user namespace, user and group IDs are translated through two
//! maps, `/proc/<pid>/uid_map` and `gid_map`: the line `0 100000 65536` says
//! that IDs 0..65535 inside are 100000..165535 outside. The container's
//! root holds every capability *over its own namespaces*, enough to mount its
//! `/proc` or set its hostname, while on the host it is uid 100000, who owns
//! nothing. A process that escapes the container's other walls is still that
//! nobody. This is the strongest of the mitigations for a kernel shared by
//! all containers.
//!
//! The child cannot write its own maps with more than one line; its parent,
//! which holds `CAP_SETUID` in the outer namespace, writes them while the
//! child waits on chapter 1's sync pipe. See `user_namespaces(7)`.

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

/// `containerID hostID size` lines, as the kernel reads them.
fn lines(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Checks that a config asking for a user namespace also gives the maps.
pub fn validate(spec: &Spec, new_user_ns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux
        .and_then(|l| l.uid_mappings().as_ref())
        .map_or(0, Vec::len);
    let gids = linux
        .and_then(|l| l.gid_mappings().as_ref())
        .map_or(0, Vec::len);
    if new_user_ns && (uids == 0 || gids == 0) {
        bail!("config.json: a new user namespace needs linux.uidMappings and linux.gidMappings");
    }
    if !new_user_ns && (uids > 0 || gids > 0) {
        bail!(
            "config.json: linux.uidMappings are set but linux.namespaces has no new user namespace"
        );
    }
    Ok(())
}

// ANCHOR: write_maps
/// Writes the child's `uid_map` and `gid_map` (from the parent, before release).
pub fn write_maps(pid: Pid, spec: &Spec) -> Result<()> {
    // LAB:BEGIN write_maps: map the child's user namespace ids to the host's as the config says, narrated; see user_namespaces(7)
    let linux = spec.linux().as_ref();
    for (file, maps) in [
        ("uid_map", linux.and_then(|l| l.uid_mappings().as_ref())),
        ("gid_map", linux.and_then(|l| l.gid_mappings().as_ref())),
    ] {
        let path = format!("/proc/{pid}/{file}");
        let text = lines(maps.map(Vec::as_slice).unwrap_or_default());
        say!("write {path} {text:?}");
        std::fs::write(&path, &text).with_context(|| format!("failed to write {path}"))?;
    }
    Ok(())
    // LAB:END
}
// ANCHOR_END: write_maps

/// In the child, once the maps are written: `setresgid(0)`, `setresuid(0)`.
/// Until then it runs as the host's root, which the maps do not name, so
/// inside it counts as the overflow user `nobody`.
pub fn become_root() -> Result<()> {
    use nix::unistd::{setresgid, setresuid, Gid, Uid};
    let (root_uid, root_gid) = (Uid::from_raw(0), Gid::from_raw(0));
    say!("setresgid(0, 0, 0); setresuid(0, 0, 0) in the new user namespace");
    setresgid(root_gid, root_gid, root_gid)
        .context("failed to become gid 0 in the user namespace")?;
    setresuid(root_uid, root_uid, root_uid).context("failed to become uid 0 in the user namespace")
}
