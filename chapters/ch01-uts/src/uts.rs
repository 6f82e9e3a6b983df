//! The UTS namespace: a private hostname (and NIS domain name).
//!
//! UTS stands for "UNIX Time-sharing System", the name of the `uname(2)` struct
//! whose `nodename` field holds the hostname. In a new UTS namespace the child
//! starts with a copy of the host's names; changing them there leaves the host's
//! untouched. See `uts_namespaces(7)` and `sethostname(2)`.
//!
//! A real runtime also sets the domain name when the OCI config asks
//! (`domainname`); the book leaves it out because it teaches nothing new.

use anyhow::{bail, Context, Result};

use crate::say;

/// The kernel's limit on a hostname's length (`HOST_NAME_MAX` in `<limits.h>`).
pub const HOST_NAME_MAX: usize = 64;

/// Checks a hostname before any namespace exists, so a bad name fails early
/// with a clear message instead of an `EINVAL` from inside the child.
pub fn validate_hostname(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("hostname must not be empty");
    }
    if name.len() > HOST_NAME_MAX {
        bail!(
            "hostname {name:?} is {} bytes long; the kernel allows at most {HOST_NAME_MAX}",
            name.len()
        );
    }
    Ok(())
}

// ANCHOR: set_hostname
/// Sets the hostname of the calling process's UTS namespace.
///
/// Called in the child after `clone(CLONE_NEWUTS)`: there the change is
/// private. Called on the host, it would rename the host, which is why the
/// chapter never does that.
pub fn set_hostname(name: &str) -> Result<()> {
    // LAB:BEGIN set_hostname: name the UTS namespace of the calling process, narrated; see sethostname(2)
    say!("sethostname({name:?})");
    nix::unistd::sethostname(name).with_context(|| format!("failed to set hostname to {name:?}"))
    // LAB:END
}
// ANCHOR_END: set_hostname

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_and_long_names() {
        assert!(validate_hostname("box").is_ok());
        assert!(validate_hostname("").is_err());
        assert!(validate_hostname(&"x".repeat(65)).is_err());
        assert!(validate_hostname(&"x".repeat(64)).is_ok());
    }
}
