//! seccomp: a filter on the system calls themselves.
//!
//! Capabilities decide what a process may do with a system call; seccomp
//! decides which system calls it may make at all. A filter is a small BPF
//! program that the kernel runs on every system call of the process (number,
//! architecture, arguments) and that returns an action: allow, fail with an
//! errno, kill, trap, log. Docker's default profile blocks some 50 calls that
//! containers rarely need and that widen the kernel's attack surface
//! (`kexec_load`, `open_by_handle_at`, `keyctl`...). Once loaded, a filter
//! cannot be removed, and it is inherited by every child. See `seccomp(2)`.
//!
//! `linux.seccomp` names calls by name and per architecture; libseccomp turns
//! that into the BPF program (as runc and crun do). Loading a filter needs
//! `CAP_SYS_ADMIN` or `no_new_privs` (see [`crate::user`]): otherwise a filter
//! could fool a setuid program into running with a call silently failing.
//!
//! What it leaves out: `SCMP_ACT_NOTIFY` (a supervisor answering calls through
//! a listener fd), which needs a `listenerPath` agent.

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno as u16),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            bail!("config.json: linux.seccomp: SCMP_ACT_NOTIFY is not supported by this runtime")
        }
    })
}

fn operator(op: LinuxSeccompOperator, value_two: u64) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two),
    }
}

// ANCHOR: compile
/// Builds the filter `linux.seccomp` describes (checked at create time).
pub fn compile(config: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(config.default_action(), config.default_errno_ret())?;
    let mut filter =
        ScmpFilterContext::new(default).context("failed to create a seccomp filter")?;
    // no_new_privs is the config's decision (process.noNewPrivileges), not libseccomp's.
    filter
        .set_ctl_nnp(false)
        .context("failed to configure the seccomp filter")?;
    for arch in config.architectures().as_deref().unwrap_or_default() {
        let name = serde_json::to_value(arch)?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let arch: ScmpArch = name
            .parse()
            .with_context(|| format!("config.json: linux.seccomp.architectures: unknown {name}"))?;
        filter
            .add_arch(arch)
            .with_context(|| format!("failed to add architecture {name}"))?;
    }
    for rule in config.syscalls().as_deref().unwrap_or_default() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue; // libseccomp refuses rules that repeat the default
        }
        let conditions: Vec<ScmpArgCompare> = rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| {
                ScmpArgCompare::new(
                    a.index() as u32,
                    operator(a.op(), a.value_two().unwrap_or(0)),
                    a.value(),
                )
            })
            .collect();
        for name in rule.names() {
            let Ok(call) = ScmpSyscall::from_name(name) else {
                // Profiles list calls of newer kernels; runc skips those too.
                say!("seccomp: unknown system call {name} skipped");
                continue;
            };
            filter
                .add_rule_conditional(act, call, &conditions)
                .with_context(|| format!("config.json: linux.seccomp: bad rule for {name}"))?;
        }
    }
    Ok(filter)
}

/// Loads the filter into the kernel for this process and its future children.
pub fn load(filter: &ScmpFilterContext) -> Result<()> {
    say!("seccomp(SECCOMP_SET_MODE_FILTER, ...)");
    filter.load().context("failed to load the seccomp filter")
}
// ANCHOR_END: compile
