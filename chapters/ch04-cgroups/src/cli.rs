//! The resource flags: `--cpus`, `--memory`, `--pids`, `--keep-cgroup`.
//!
//! Values are checked while the command line is parsed, so nonsense such as
//! `--cpus 0` or `--memory 10` is refused before any cgroup or process exists.

use anyhow::Result;
use ch01_uts::{narrate, say};

use crate::cgroups::{min_memory, Cgroup, Cpus, Limits};
use crate::units::{self, format_size};

/// The container's resource limits, shared by this chapter and the ones after it.
#[derive(Debug, Clone, clap::Args)]
pub struct Resources {
    /// CPU time the container may use, in CPUs: 0.2 is 20 ms in every 100 ms
    #[arg(long, value_name = "CPUS", value_parser = parse_cpus)]
    pub cpus: Option<Cpus>,
    /// Memory the container may use, e.g. 64M or 1G (no swap on top); past it, the OOM killer
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub memory: Option<u64>,
    /// How many processes and threads the container may have at once
    #[arg(long, value_name = "N", value_parser = parse_pids)]
    pub pids: Option<u64>,
    /// Leave the container's cgroup in place when it ends, to read its files (then rmdir it)
    #[arg(long)]
    pub keep_cgroup: bool,
}

impl Resources {
    /// The limits asked for.
    pub fn limits(&self) -> Limits {
        Limits {
            cpus: self.cpus,
            memory: self.memory,
            pids: self.pids,
            ..Limits::default()
        }
    }

    // ANCHOR: finish
    /// After the container has ended: says whether the kernel's OOM killer
    /// struck (its victim was killed by `SIGKILL`, so the runtime exits 137),
    /// then removes the cgroup, or keeps it with `--keep-cgroup`.
    pub fn finish(&self, cgroup: Cgroup) -> Result<()> {
        if narrate::verbose() {
            // What the kernel charged to the group (only for the narration).
            if let Ok(cpu) = cgroup.cpu_stat() {
                say!(
                    "cpu: used {:.2} s of CPU time, throttled in {} of {} periods",
                    cpu.usage.as_secs_f64(),
                    cpu.nr_throttled,
                    cpu.nr_periods
                );
            }
        }
        let killed = cgroup.oom_killed()?;
        if killed > 0 {
            let limit = self.memory.map(format_size).unwrap_or_default();
            eprintln!(
                "{}: out of memory: the kernel's OOM killer killed {killed} process{} of the \
                 container (--memory {limit})",
                ch01_uts::cli::program_name(),
                if killed == 1 { "" } else { "es" }
            );
        }
        if self.keep_cgroup {
            for dir in cgroup.keep() {
                eprintln!(
                    "{}: kept cgroup {} (rmdir it when done)",
                    ch01_uts::cli::program_name(),
                    dir.display()
                );
            }
            return Ok(());
        }
        cgroup.remove()
    }
    // ANCHOR_END: finish
}

/// How many CPUs this machine has online.
fn online_cpus() -> Option<f64> {
    nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .map(|n| n as f64)
}

fn parse_cpus(text: &str) -> Result<Cpus, String> {
    let cpus = units::parse_cpus(text).map_err(|e| e.to_string())?;
    if let Some(online) = online_cpus() {
        if cpus > online {
            return Err(format!(
                "this machine has {online} CPUs; ask for at most {online}"
            ));
        }
    }
    Cpus::from_cpus(cpus).map_err(|e| e.to_string())
}

fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = units::parse_size(text).map_err(|e| e.to_string())?;
    let page = min_memory();
    if bytes < page {
        return Err(format!(
            "{bytes} bytes is below one page ({page} bytes): write e.g. 64M"
        ));
    }
    Ok(bytes)
}

fn parse_pids(text: &str) -> Result<u64, String> {
    units::parse_count(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_at_parse_time() {
        assert_eq!(
            parse_cpus("0.2"),
            Ok(Cpus {
                quota_us: 20_000,
                period_us: 100_000
            })
        );
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("0.001").is_err());
        assert!(parse_cpus("100000").is_err());
        assert_eq!(parse_memory("64M"), Ok(64 << 20));
        assert!(parse_memory("10").is_err());
        assert!(parse_memory("64Q").is_err());
        assert_eq!(parse_pids("32"), Ok(32));
        assert!(parse_pids("0").is_err());
    }
}
