//! Device access: which device nodes the group's processes may create and open.
//!
//! A device node is a file that names a driver by type and numbers: `c 1:3`
//! is the character device "null", `b 8:0` the first SCSI disk. Anyone who
//! may `mknod(2)` a node, or open one that exists, reaches that driver, so a
//! container's root with `CAP_MKNOD` could make `/dev/sda` and read the host's
//! disk. The device controller closes that: for each `open(2)` or `mknod(2)`
//! of a device node, the kernel asks the group whether this type, these
//! numbers and this access (`r`ead, `w`rite, `m`knod) are allowed.
//!
//! A rule list reads like the OCI config's `linux.resources.devices`: rules in
//! order, later ones winning, usually "deny everything" followed by the few
//! devices a container needs. The two versions ask in different ways:
//!
//! - **v1** has files: a line such as `c 1:3 rwm` written to `devices.allow`
//!   or `devices.deny`; `a` (all devices) in `devices.deny` empties the list
//!   and makes "deny" the default. `devices.list` shows the result.
//! - **v2** has no device files at all. The group gets a small eBPF program
//!   (`BPF_PROG_TYPE_CGROUP_DEVICE`) that the kernel runs on every access and
//!   that returns 1 (allow) or 0 (deny). [`program`] assembles it from the
//!   rules, instruction by instruction, and [`attach`] loads it with `bpf(2)`
//!   and attaches it to the group's directory, as runc does.
//!
//! What it leaves out: runc keeps the rules of a v1 group in sync when they
//! change (an "emulator" computes the writes from the old list to the new);
//! here the rules are written once, into a new group. In the eBPF program an
//! allow rule must cover all the access a request asks for (`rw` for
//! `O_RDWR`), so `r` and `w` allowed by two separate rules do not add up to
//! `rw` as they do in v1's list.

use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// The kinds of device a rule names; `All` matches both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

/// What a rule allows or denies: any of read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };

    /// Parses `rwm`, `rw`, `m`...: each letter at most once, at least one.
    pub fn parse(text: &str) -> Result<Access> {
        let mut access = Access {
            read: false,
            write: false,
            mknod: false,
        };
        for c in text.chars() {
            let flag = match c {
                'r' => &mut access.read,
                'w' => &mut access.write,
                'm' => &mut access.mknod,
                _ => bail!("device access {text:?}: use the letters r, w and m"),
            };
            ensure!(!*flag, "device access {text:?} names {c} twice");
            *flag = true;
        }
        ensure!(
            access.read || access.write || access.mknod,
            "device access is empty: use r, w, m or a mix such as rwm"
        );
        Ok(access)
    }

    /// The eBPF context's access bits (`BPF_DEVCG_ACC_*`).
    fn bits(self) -> i32 {
        (if self.mknod { ACC_MKNOD } else { 0 })
            | (if self.read { ACC_READ } else { 0 })
            | (if self.write { ACC_WRITE } else { 0 })
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

// ANCHOR: rule
/// One rule: allow or deny `access` to devices of `kind` with these numbers
/// (`None` matches any number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}
// ANCHOR_END: rule

impl DeviceRule {
    /// "Deny every device": the usual first rule.
    pub const DENY_ALL: DeviceRule = DeviceRule {
        allow: false,
        kind: DeviceKind::All,
        major: None,
        minor: None,
        access: Access::ALL,
    };

    /// Allows all access to the character device `major:minor`.
    pub fn allow_char(major: u32, minor: Option<u32>) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access: Access::ALL,
        }
    }

    /// The file v1 takes the rule in.
    pub fn v1_file(&self) -> &'static str {
        if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    }
}

/// v1's line: `c 1:3 rwm`, `a *:* rwm`, `c 136:* rw`.
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{kind} {}:{} {}",
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

// The eBPF context the kernel passes: `struct bpf_cgroup_dev_ctx` in
// <linux/bpf.h>: `access_type` (access << 16 | type), `major`, `minor`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (`struct bpf_insn`): an opcode, two registers, a
/// jump offset and an immediate value, 8 bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// The destination register in the low 4 bits, the source in the high 4.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (<linux/bpf_common.h>, <linux/bpf.h>): class | operation | source.
pub const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
pub const ALU64_AND_K: u8 = 0x57; // dst &= imm
pub const ALU64_RSH_K: u8 = 0x77; // dst >>= imm
pub const ALU64_MOV_K: u8 = 0xb7; // dst = imm
pub const ALU64_MOV_X: u8 = 0xbf; // dst = src
pub const JMP_JEQ_K: u8 = 0x15; // if dst == imm: pc += off
pub const JMP_JNE_K: u8 = 0x55; // if dst != imm: pc += off
pub const JMP_JSET_K: u8 = 0x45; // if dst & imm: pc += off
pub const JMP_EXIT: u8 = 0x95; // return r0

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// ANCHOR: program
/// The eBPF program for `rules`. It loads the request into registers, then
/// tests the rules *last first*: the first that matches decides (so the
/// last matching rule of the list wins). No rule matching means "allow",
/// as a new v1 group allows what its parent allows. A rule that matches
/// everything (deny all) ends the program: the kernel's verifier refuses
/// instructions that can never run.
///
/// ```text
/// r2 = type  r3 = access  r4 = major  r5 = minor
/// for each rule, last first:
///     if r2 != TYPE goto next            (unless the rule is for all types)
///     if r3 & ~ACCESS goto next          (allow: it must cover every access asked)
///     if r3 & ACCESS == 0 goto next      (deny: it applies if it covers any)
///     if r4 != MAJOR goto next           (unless *)
///     if r5 != MINOR goto next           (unless *)
///     r0 = ALLOW; exit
/// next: ...
/// r0 = 1; exit
/// ```
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        // Each jump's offset is filled in once the block's length is known.
        let mut block = Vec::new();
        match rule.kind {
            DeviceKind::All => {}
            DeviceKind::Char => block.push(insn(JMP_JNE_K, 2, 0, 0, DEV_CHAR)),
            DeviceKind::Block => block.push(insn(JMP_JNE_K, 2, 0, 0, DEV_BLOCK)),
        }
        let bits = rule.access.bits();
        let all = Access::ALL.bits();
        if rule.allow && bits != all {
            block.push(insn(JMP_JSET_K, 3, 0, 0, all & !bits));
        }
        if !rule.allow && bits != all {
            block.push(insn(ALU64_MOV_X, 0, 3, 0, 0));
            block.push(insn(ALU64_AND_K, 0, 0, 0, bits));
            block.push(insn(JMP_JEQ_K, 0, 0, 0, 0));
        }
        if let Some(major) = rule.major {
            block.push(insn(JMP_JNE_K, 4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JMP_JNE_K, 5, 0, 0, minor as i32));
        }
        let unconditional = block.is_empty();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        if unconditional {
            prog.extend(block);
            return prog;
        }
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, JMP_JNE_K | JMP_JSET_K | JMP_JEQ_K) {
                // Past the end of this block: to the next rule's test.
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
    }
    prog.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}
// ANCHOR_END: program

// From <linux/bpf.h>.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The start of `union bpf_attr` as `BPF_PROG_LOAD` reads it.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as `BPF_PROG_ATTACH` reads it.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// `bpf(2)`: libc has no wrapper, so through `syscall(2)`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union
    // bpf_attr` of the given size; the kernel reads at most that many bytes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

// ANCHOR: attach
/// Loads `program` (the kernel's verifier checks it first) and attaches it
/// to the cgroup directory `dir`. The attachment keeps the program alive
/// after this process exits; removing the group detaches it.
/// `BPF_F_ALLOW_MULTI` lets programs of parent groups (systemd's) run too:
/// an access must pass all of them.
pub fn attach(dir: &Path, program: &[Insn]) -> Result<()> {
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..ProgLoad::default()
    };
    load.prog_name[..7].copy_from_slice(b"cfs_dev");
    let fd = bpf(BPF_PROG_LOAD, &mut load).map_err(|err| {
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        anyhow::anyhow!(
            "failed to load the device eBPF program ({} instructions): {err}{}{}",
            program.len(),
            if text.is_empty() { "" } else { ": verifier: " },
            text
        )
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new descriptor that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir)
        .with_context(|| format!("failed to open cgroup {}", dir.display()))?;
    let mut attach = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..ProgAttach::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attach).with_context(|| {
        format!(
            "failed to attach the device eBPF program to {}",
            dir.display()
        )
    })?;
    Ok(())
}
// ANCHOR_END: attach

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a program the way the kernel would, for the opcodes
    /// [`program`] uses: the answer for one request.
    fn interpret(prog: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> i64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut r = [0i64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i64::from(i.imm);
            let mut next = pc + 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = i64::from(ctx[i.off as usize / 4]);
                }
                ALU64_AND_K => r[dst] &= imm,
                ALU64_RSH_K => r[dst] >>= imm,
                ALU64_MOV_K => r[dst] = imm,
                ALU64_MOV_X => r[dst] = r[src],
                JMP_JEQ_K | JMP_JNE_K | JMP_JSET_K => {
                    let jump = match i.code {
                        JMP_JEQ_K => r[dst] == imm,
                        JMP_JNE_K => r[dst] != imm,
                        _ => r[dst] & imm != 0,
                    };
                    if jump {
                        next = (pc as i64 + 1 + i64::from(i.off)) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
            pc = next;
        }
    }

    /// The verifier's first check: every instruction can be reached.
    fn assert_all_reachable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            match prog[pc].code {
                JMP_EXIT => {}
                JMP_JEQ_K | JMP_JNE_K | JMP_JSET_K => {
                    todo.push(pc + 1);
                    todo.push((pc as i64 + 1 + i64::from(prog[pc].off)) as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        assert!(seen.iter().all(|s| *s), "unreachable: {seen:?}");
    }

    fn rule(text: &str) -> DeviceRule {
        // "+c 1:3 rw" allows, "-a *:* rwm" denies.
        let (allow, rest) = text.split_at(1);
        let mut parts = rest.split([' ', ':']);
        let kind = match parts.next() {
            Some("a") => DeviceKind::All,
            Some("b") => DeviceKind::Block,
            _ => DeviceKind::Char,
        };
        let number = |p: Option<&str>| p.and_then(|n| n.parse().ok());
        DeviceRule {
            allow: allow == "+",
            kind,
            major: number(parts.next()),
            minor: number(parts.next()),
            access: Access::parse(parts.next().unwrap_or("rwm")).expect("access"),
        }
    }

    const R: i32 = ACC_READ;
    const W: i32 = ACC_WRITE;
    const M: i32 = ACC_MKNOD;

    #[test]
    fn rules_print_as_v1_lines() {
        assert_eq!(DeviceRule::DENY_ALL.to_string(), "a *:* rwm");
        assert_eq!(DeviceRule::allow_char(136, None).to_string(), "c 136:* rwm");
        assert_eq!(rule("+b 8:0 r").to_string(), "b 8:0 r");
        assert_eq!(rule("-c 1:3 w").v1_file(), "devices.deny");
        assert!(Access::parse("rwx").is_err());
        assert!(Access::parse("rr").is_err());
        assert!(Access::parse("").is_err());
    }

    #[test]
    fn deny_all_then_allow_a_few() {
        let prog = program(&[rule("-a *:* rwm"), rule("+c 1:3 rwm"), rule("+c 136:* rw")]);
        assert_all_reachable(&prog);
        assert_eq!(interpret(&prog, DEV_CHAR, R | W, 1, 3), 1, "null");
        assert_eq!(interpret(&prog, DEV_CHAR, M, 1, 3), 1, "mknod null");
        assert_eq!(interpret(&prog, DEV_CHAR, R, 1, 5), 0, "zero");
        assert_eq!(interpret(&prog, DEV_BLOCK, R, 1, 3), 0, "block 1:3");
        assert_eq!(interpret(&prog, DEV_CHAR, R | W, 136, 7), 1, "pts/7");
        assert_eq!(interpret(&prog, DEV_CHAR, M, 136, 7), 0, "mknod pts/7");
        assert_eq!(interpret(&prog, DEV_BLOCK, R, 8, 0), 0, "sda");
    }

    #[test]
    fn the_last_matching_rule_wins() {
        let prog = program(&[rule("+c 1:3 rwm"), rule("-c 1:3 w")]);
        assert_eq!(interpret(&prog, DEV_CHAR, R, 1, 3), 1, "read stays allowed");
        assert_eq!(
            interpret(&prog, DEV_CHAR, R | W, 1, 3),
            0,
            "any write denied"
        );
        let prog = program(&[rule("-c 1:3 rwm"), rule("+c 1:3 rwm")]);
        assert_eq!(interpret(&prog, DEV_CHAR, W, 1, 3), 1);
        let prog = program(&[rule("+c 1:3 rwm"), rule("-a *:* rwm")]);
        assert_all_reachable(&prog);
        assert_eq!(prog.len(), 8, "nothing after the deny-all rule");
        assert_eq!(interpret(&prog, DEV_CHAR, R, 1, 3), 0, "deny all came last");
    }

    #[test]
    fn no_rule_or_no_match_allows() {
        assert_eq!(interpret(&program(&[]), DEV_BLOCK, R | W, 8, 0), 1);
        let prog = program(&[rule("-b 8:* rwm")]);
        assert_all_reachable(&prog);
        assert_eq!(interpret(&prog, DEV_BLOCK, R, 8, 1), 0);
        assert_eq!(interpret(&prog, DEV_BLOCK, R, 9, 1), 1);
    }

    #[test]
    fn an_allow_rule_must_cover_all_access_asked() {
        let prog = program(&[rule("-a *:* rwm"), rule("+c 1:3 r")]);
        assert_eq!(interpret(&prog, DEV_CHAR, R, 1, 3), 1);
        assert_eq!(interpret(&prog, DEV_CHAR, R | W, 1, 3), 0);
    }
}
