//! The process's identity and privileges: user, groups, umask, rlimits,
//! oom_score_adj, no_new_privs.
//!
//! The container's process runs as `process.user` (`uid`, `gid`,
//! `additionalGids`). Switching from root to that user normally empties the
//! capability sets; `PR_SET_KEEPCAPS` keeps the permitted set across the
//! switch so that [`crate::capabilities::apply`] can then set exactly what the
//! config asks. Groups are changed before the user, while we may still.
//!
//! `noNewPrivileges` sets `PR_SET_NO_NEW_PRIVS`: from then on no `execve(2)`
//! can raise privileges, neither setuid bits nor file capabilities. It is
//! inherited and cannot be undone; `/proc/<pid>/status` shows it as `NoNewPrivs: 1`.

use anyhow::{Context, Result};
use ch01_uts::say;
use nix::sys::resource::{setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Pid, Uid};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, Process};

/// Becomes `process.user`, keeping the permitted capabilities for [`crate::capabilities::apply`].
pub fn switch(process: &Process) -> Result<()> {
    let user = process.user();
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    let groups: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    say!("setgroups({groups:?})");
    setgroups(&groups)
        .context("failed to set the additional groups (process.user.additionalGids)")?;
    say!("setresgid({gid}, {gid}, {gid})");
    setresgid(gid, gid, gid).with_context(|| format!("failed to set gid {gid}"))?;
    if !uid.is_root() {
        say!("prctl(PR_SET_KEEPCAPS, 1)");
        nix::sys::prctl::set_keepcaps(true).context("failed to set PR_SET_KEEPCAPS")?;
    }
    say!("setresuid({uid}, {uid}, {uid})");
    setresuid(uid, uid, uid).with_context(|| format!("failed to set uid {uid}"))?;
    if let Some(mask) = user.umask() {
        say!("umask({mask:o})");
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// `PR_SET_NO_NEW_PRIVS`, when the config asks.
pub fn no_new_privileges(process: &Process) -> Result<()> {
    if process.no_new_privileges().unwrap_or(false) {
        say!("prctl(PR_SET_NO_NEW_PRIVS, 1)");
        nix::sys::prctl::set_no_new_privs().context("failed to set no_new_privs")?;
    }
    Ok(())
}

fn resource(kind: PosixRlimitType) -> Option<Resource> {
    Some(match kind {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    })
}

/// `process.rlimits`: per-process limits (`setrlimit(2)`), kept across exec.
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for limit in rlimits {
        let res = resource(limit.typ()).context("config.json: process.rlimits: unknown type")?;
        say!("setrlimit({res:?}, {}, {})", limit.soft(), limit.hard());
        setrlimit(res, limit.soft(), limit.hard())
            .with_context(|| format!("failed to set {res:?}"))?;
    }
    Ok(())
}

/// `process.oomScoreAdj`: how eagerly the OOM killer picks this process
/// (-1000 never, 1000 first). Written by the runtime for the child.
pub fn set_oom_score_adj(pid: Pid, value: i32) -> Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    say!("write {path} {value:?}");
    std::fs::write(&path, value.to_string()).with_context(|| format!("failed to write {path}"))
}

/// `linux.sysctl`: kernel settings of the container's own namespaces
/// (`net.*` of its network namespace, `kernel.shm*` of its IPC namespace),
/// written under `/proc/sys` once the container's `/proc` is mounted.
pub fn set_sysctls(sysctl: &std::collections::HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let value = &sysctl[key];
        say!("write {path} {value:?}");
        // Open without O_CREAT/O_TRUNC: a proc file is written, never created.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()))
            .with_context(|| format!("config.json: linux.sysctl: failed to set {key} ({path})"))?;
    }
    Ok(())
}
