//! What a cgroup may use: [`Limits`], checked before any group exists.
//!
//! Each limit is one number for one controller (`cpu`, `memory`, `pids`),
//! in the units the kernel counts; the backends ([`super::v1`], [`super::v2`])
//! write them in each version's files.

use std::fmt;

use anyhow::{bail, ensure, Result};

use super::{DeviceRule, Resources};
use crate::units::format_size;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
