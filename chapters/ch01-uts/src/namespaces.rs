//! Namespaces by name: which `CLONE_NEW*` flags a runtime passes to `clone(2)`.
//!
//! A namespace wraps one kind of global resource (hostname, PIDs, mounts, ...)
//! so that the processes inside see their own copy. Each kind has a clone flag;
//! see `namespaces(7)`. This module only turns the flags into text for `-v`:
//! the chapters choose which flags to pass.

use nix::sched::CloneFlags;

/// Every namespace flag with the name the kernel headers give it, in the order
/// the chapters introduce them.
pub const ALL: &[(CloneFlags, &str)] = &[
    (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
    (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
    (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
    (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
    (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
    (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
    (CloneFlags::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
];

/// Every namespace flag with its file under `/proc/<pid>/ns/` (`uts`, `mnt`...),
/// the handle that `setns(2)` takes to join one.
pub const PROC_NAMES: &[(CloneFlags, &str)] = &[
    (CloneFlags::CLONE_NEWUTS, "uts"),
    (CloneFlags::CLONE_NEWPID, "pid"),
    (CloneFlags::CLONE_NEWNS, "mnt"),
    (CloneFlags::CLONE_NEWIPC, "ipc"),
    (CloneFlags::CLONE_NEWNET, "net"),
    (CloneFlags::CLONE_NEWUSER, "user"),
    (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
];

/// The `/proc/<pid>/ns/` name of one namespace flag (`"?"` for anything else).
pub fn proc_name(flag: CloneFlags) -> &'static str {
    PROC_NAMES
        .iter()
        .find(|(f, _)| *f == flag)
        .map_or("?", |(_, name)| *name)
}

/// `CLONE_NEWUTS|CLONE_NEWPID`, as a C programmer would write the flags.
pub fn describe(flags: CloneFlags) -> String {
    let names: Vec<&str> = ALL
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flags_in_order() {
        let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS;
        assert_eq!(describe(flags), "CLONE_NEWUTS|CLONE_NEWPID");
        assert_eq!(describe(CloneFlags::empty()), "0");
    }

    #[test]
    fn every_flag_has_a_proc_name() {
        for (flag, _) in ALL {
            assert_ne!(proc_name(*flag), "?", "{flag:?}");
        }
        assert_eq!(proc_name(CloneFlags::CLONE_NEWNS), "mnt");
    }
}
