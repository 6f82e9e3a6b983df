//! Capabilities: root's powers cut into pieces, and the five sets that hold them.
//!
//! Since Linux 2.2, "root" is not one privilege but about forty
//! (`capabilities(7)`): `CAP_NET_ADMIN` configures networks, `CAP_SYS_ADMIN`
//! mounts, `CAP_SYS_MODULE` loads kernel modules... A container's root gets
//! only a few of them, so that being root inside does not mean owning the
//! shared kernel. Each thread has five sets:
//!
//! - **bounding**: the most it can ever get back, even by executing a setuid
//!   program; can only shrink.
//! - **permitted**: what it may turn on.
//! - **effective**: what the kernel checks right now.
//! - **inheritable**: what may pass through `execve(2)` to programs allowed to take it.
//! - **ambient**: what passes through `execve(2)` to any program, also for a
//!   non-root user.
//!
//! Order matters. The bounding set is cut first, while we still hold
//! `CAP_SETPCAP`; then (after switching user, see [`crate::user`]) the
//! effective set shrinks before the permitted set, since effective must stay
//! inside permitted; ambient comes last, since it must stay inside both
//! permitted and inheritable.

use std::collections::HashSet;

use anyhow::{Context, Result};
use caps::{CapSet, Capability, CapsHashSet};
use ch01_uts::say;
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// Converts the config's names (`CAP_CHOWN`) to the kernel's capabilities.
fn convert(set: Option<&Capabilities>) -> Result<CapsHashSet> {
    let mut out = HashSet::new();
    for cap in set.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        match name.parse::<Capability>() {
            Ok(c) if caps::all().contains(&c) => {
                out.insert(c);
            }
            // Named in the spec but unknown to this kernel: nothing to grant.
            _ => crate::logging::warn(&format!("capability {name} is not known to this kernel")),
        }
    }
    Ok(out)
}

fn describe(set: &CapsHashSet) -> String {
    let mut names: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    names.sort();
    if names.is_empty() {
        "{}".to_string()
    } else {
        names.join(",")
    }
}

/// Cuts the bounding set to `process.capabilities.bounding`.
pub fn drop_bounding(config: Option<&LinuxCapabilities>) -> Result<()> {
    let Some(config) = config else { return Ok(()) };
    let keep = convert(config.bounding().as_ref())?;
    say!("prctl(PR_CAPBSET_DROP, ...) keeping {}", describe(&keep));
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("failed to drop {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

// ANCHOR: apply
/// Sets the effective, inheritable, permitted and ambient sets, in that order.
pub fn apply(config: Option<&LinuxCapabilities>) -> Result<()> {
    // LAB:BEGIN apply: give the process exactly the capability sets of the config, narrated; see capabilities(7)
    let Some(config) = config else { return Ok(()) };
    let effective = convert(config.effective().as_ref())?;
    let inheritable = convert(config.inheritable().as_ref())?;
    let permitted = convert(config.permitted().as_ref())?;
    let ambient = convert(config.ambient().as_ref())?;
    for (set, name, caps) in [
        (CapSet::Effective, "effective", &effective),
        (CapSet::Inheritable, "inheritable", &inheritable),
        (CapSet::Permitted, "permitted", &permitted),
    ] {
        say!("capset({name} = {})", describe(caps));
        caps::set(None, set, caps)
            .with_context(|| format!("failed to set the {name} capabilities"))?;
    }
    say!("prctl(PR_CAP_AMBIENT_RAISE, {})", describe(&ambient));
    caps::clear(None, CapSet::Ambient).context("failed to clear the ambient capabilities")?;
    for cap in &ambient {
        // Raising needs the capability in permitted and inheritable: skip
        // (as runc does) what the config did not also put there.
        if permitted.contains(cap) && inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .with_context(|| format!("failed to raise ambient {cap}"))?;
        }
    }
    Ok(())
    // LAB:END
}
// ANCHOR_END: apply
