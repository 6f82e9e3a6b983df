//! The rootfs: make a directory of files the container's `/`.
//!
//! A *rootfs* is the user-space half of an operating system: `/bin`, `/etc`,
//! libraries, configuration, but no kernel (the container shares the host's).
//! It is what a container image unpacks to. Giving a process a rootfs takes
//! three steps inside a new mount namespace:
//!
//! 1. [`make_private`]: stop mount events from propagating to and from the host.
//! 2. [`pivot_root`]: make the rootfs the new `/` and detach the host's old root
//!    entirely ([`chroot`] only changes where path lookups start, which a root
//!    process can undo: see the `chroot-escape` program).
//! 3. [`mount_proc`], [`crate::devices::mount_dev`], [`mount_sys`]: fresh kernel
//!    filesystems, so `ps` reads this PID namespace's processes.
//!
//! See `mount_namespaces(7)`, `pivot_root(2)`, `chroot(2)`, `proc(5)`.
//!
//! What it leaves out: read-only and masked paths (`/proc/kcore`, `/sys/firmware`),
//! bind mounts requested by the user, and `rootfsPropagation`; chapter 6 adds
//! them from the OCI config. runc also avoids the `put_old` directory with the
//! `pivot_root(".", ".")` trick, which works on read-only rootfs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, mkdtemp};

use crate::devices;

/// How the rootfs becomes the container's `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// `pivot_root(2)`: swap the root mount, then detach the old one.
    PivotRoot,
    /// `chroot(2)`: only change where path lookups start (escapable).
    Chroot,
}

/// The `PATH` a container starts with, as Docker sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Checks, in the runtime and before any namespace exists, that `rootfs` is an
/// absolute path to a directory in which `command` can be found. Failing here
/// gives a clear message instead of an `ENOENT` from deep inside the child.
pub fn validate(rootfs: &Path, argv: &[String]) -> Result<()> {
    let Some(command) = argv.first() else {
        bail!("no command given");
    };
    if !rootfs.is_absolute() {
        bail!(
            "rootfs must be an absolute path, not {} (try --rootfs \"$PWD/{}\")",
            rootfs.display(),
            rootfs.display()
        );
    }
    if !rootfs.is_dir() {
        bail!(
            "rootfs {} is not a directory: build one with scripts/mkrootfs",
            rootfs.display()
        );
    }
    let found = candidates(rootfs, DEFAULT_PATH, command)
        .iter()
        .any(|path| path.symlink_metadata().is_ok());
    if !found {
        bail!(
            "command {command} not found in rootfs {} (is it a rootfs? scripts/mkrootfs builds one)",
            rootfs.display()
        );
    }
    Ok(())
}

// ANCHOR: setup
/// Turns the calling process's (new, private) mount namespace into a
/// container's view: `rootfs` as `/`, fresh `/proc`, `/dev` and `/sys`.
/// Called in the child after `clone(CLONE_NEWNS)`, before exec.
pub fn setup(rootfs: &Path, root: Root) -> Result<()> {
    make_private()?;
    match root {
        Root::PivotRoot => {
            bind_to_itself(rootfs)?;
            pivot_root(rootfs)?;
        }
        Root::Chroot => chroot(rootfs)?,
    }
    mount_proc()?;
    devices::mount_dev()?;
    mount_sys()?;
    default_env();
    Ok(())
}
// ANCHOR_END: setup

// ANCHOR: private
/// Marks every mount in our namespace private, recursively.
///
/// The new namespace's mounts are copies of the host's, and on systemd hosts
/// they are *shared*: a mount made under a shared mount propagates to its
/// peers, here the host's. Without this step the container's `/proc` would
/// appear on the host, and `pivot_root(2)` fails with `EINVAL` because the
/// new root's parent mount is shared.
pub fn make_private() -> Result<()> {
    // LAB:BEGIN make_private: stop mounts propagating between this namespace and the host, narrated; see mount_namespaces(7), mount(2)
    say!("mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("failed to make the mount tree private")
    // LAB:END
}
// ANCHOR_END: private

/// Bind-mounts `dir` onto itself: `pivot_root(2)` needs the new root to be a
/// mount point, and a plain directory is not one.
pub fn bind_to_itself(dir: &Path) -> Result<()> {
    say!("mount({dir:?}, {dir:?}, NULL, MS_BIND|MS_REC)");
    mount(
        Some(dir),
        dir,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .with_context(|| format!("failed to bind-mount {} onto itself", dir.display()))
}

// ANCHOR: pivot_root
/// Makes `new_root` the root mount and detaches the old root.
///
/// `pivot_root(2)` moves the current root mount to `put_old`, a directory
/// under `new_root`, and makes `new_root` the root. Once the old root is
/// unmounted (lazily: processes may still hold files open on it) nothing of
/// the host's file tree is reachable any more, not even for root.
pub fn pivot_root(new_root: &Path) -> Result<()> {
    // LAB:BEGIN pivot_root: make new_root the root mount and leave nothing of the host reachable or behind, narrated; see pivot_root(2), umount2(2)
    // A unique name, so containers sharing one rootfs do not collide.
    let put_old = mkdtemp(&new_root.join(".oldroot-XXXXXX"))
        .with_context(|| format!("failed to create put_old under {}", new_root.display()))?;
    say!("pivot_root({new_root:?}, {put_old:?})");
    if let Err(errno) = nix::unistd::pivot_root(new_root, &put_old) {
        // Leave no put_old behind in the rootfs when pivoting fails.
        let _ = std::fs::remove_dir(&put_old);
        return Err(errno)
            .with_context(|| format!("failed to pivot_root to {}", new_root.display()));
    }
    say!("chdir(\"/\")");
    chdir("/").context("failed to chdir to the new root")?;
    let old_root = PathBuf::from("/").join(put_old.file_name().context("put_old has no name")?);
    say!("umount2({old_root:?}, MNT_DETACH)");
    umount2(&old_root, MntFlags::MNT_DETACH)
        .with_context(|| format!("failed to unmount the old root at {}", old_root.display()))?;
    say!("rmdir({old_root:?})");
    std::fs::remove_dir(&old_root)
        .with_context(|| format!("failed to remove {}", old_root.display()))
    // LAB:END
}
// ANCHOR_END: pivot_root

// ANCHOR: chroot
/// Changes the root directory to `dir` with `chroot(2)`, then `chdir("/")`.
///
/// Only path lookups change: the host's mounts are all still there, and a
/// root process can walk back out (see `chroot-escape`). Kept to compare.
pub fn chroot(dir: &Path) -> Result<()> {
    say!("chroot({dir:?})");
    nix::unistd::chroot(dir).with_context(|| format!("failed to chroot to {}", dir.display()))?;
    say!("chdir(\"/\")");
    chdir("/").context("failed to chdir to the new root")
}
// ANCHOR_END: chroot

// ANCHOR: proc
/// Mounts a fresh `proc` on `/proc`. A `proc` mount shows the processes of the
/// PID namespace of the process that mounts it, so from now on `ps` inside
/// lists only the container's processes.
pub fn mount_proc() -> Result<()> {
    // LAB:BEGIN mount_proc: a /proc that shows the container's own processes, narrated; see proc(5), mount(2)
    say!("mount(\"proc\", \"/proc\", \"proc\", MS_NOSUID|MS_NODEV|MS_NOEXEC)");
    std::fs::create_dir_all("/proc").context("failed to create /proc")?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .context("failed to mount proc at /proc")
    // LAB:END
}
// ANCHOR_END: proc

// ANCHOR: sys
/// Mounts `sysfs` read-only on `/sys`: programs look there for devices and
/// kernel settings, and a container must not change them.
pub fn mount_sys() -> Result<()> {
    say!("mount(\"sysfs\", \"/sys\", \"sysfs\", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)");
    std::fs::create_dir_all("/sys").context("failed to create /sys")?;
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .context("failed to mount sysfs at /sys")
}
// ANCHOR_END: sys

/// Removes every inherited environment variable (the process is single-threaded
/// here, between `clone` and `execve`, so changing the environment is safe).
pub fn clear_env() {
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
}

/// Where `execvp(3)` would look for `command`, beneath `root` (the rootfs
/// seen from the host, or `/` inside): the command itself if it holds a
/// `/`, else each directory of `path` (a `PATH` value) in order.
pub fn candidates(root: &Path, path: &str, command: &str) -> Vec<std::path::PathBuf> {
    if command.contains('/') {
        return vec![root.join(command.trim_start_matches('/'))];
    }
    path.split(':')
        .map(|dir| root.join(dir.trim_start_matches('/')).join(command))
        .collect()
}

/// Replaces the inherited environment with a small default one: the host's
/// variables (its `PATH` with host directories, `SUDO_USER`, ...) mean nothing
/// inside. `TERM` is kept so that interactive programs draw correctly.
pub fn default_env() {
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".to_string());
    clear_env();
    std::env::set_var("PATH", DEFAULT_PATH);
    std::env::set_var("HOME", "/root");
    std::env::set_var("TERM", term);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(command: &str) -> Vec<String> {
        vec![command.to_string()]
    }

    #[test]
    fn validate_rejects_relative_and_missing_paths() {
        let err = validate(Path::new("build/rootfs"), &argv("sh")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("rootfs must be an absolute path"));
        let err = validate(Path::new("/no/such/rootfs"), &argv("sh")).unwrap_err();
        assert!(err.to_string().contains("is not a directory"));
    }

    #[test]
    fn validate_looks_for_the_command_inside() {
        let dir = std::env::temp_dir().join(format!("cfs-validate-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/sh"), "").unwrap();
        assert!(validate(&dir, &argv("sh")).is_ok());
        assert!(validate(&dir, &argv("/bin/sh")).is_ok());
        let err = validate(&dir, &argv("bash")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("command bash not found in rootfs"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
