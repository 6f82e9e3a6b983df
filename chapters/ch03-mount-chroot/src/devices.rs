//! A fresh `/dev`: a tmpfs with the few device nodes every program expects.
//!
//! The host's `/dev` holds every disk and terminal of the machine; a container
//! gets its own small one instead, as the OCI runtime spec lists: `null`,
//! `zero`, `full`, `random`, `urandom`, `tty`, a private `devpts` instance for
//! pseudo-terminals, `/dev/shm`, and the `fd`/`stdin`/`stdout`/`stderr`
//! symlinks into `/proc/self/fd`. See `mknod(2)`, `pts(4)`, `null(4)`.
//!
//! What it leaves out: the device cgroup (or eBPF program) that decides which
//! devices the container may open, and the bind-mounts a runtime uses instead
//! of `mknod` inside a user namespace, where creating devices is not allowed.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use ch01_uts::say;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

/// The character devices of a container's `/dev`: name, major, minor.
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The symlinks of a container's `/dev`: link, target.
pub const SYMLINKS: &[(&str, &str)] = &[
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

fn mount_fs(fstype: &str, target: &str, flags: MsFlags, data: &str) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("failed to create {target}"))?;
    say!("mount({fstype:?}, {target:?}, {fstype:?}, {data:?})");
    mount(Some(fstype), target, Some(fstype), flags, Some(data))
        .with_context(|| format!("failed to mount {fstype} at {target}"))
}

// ANCHOR: mount_dev
/// Mounts a tmpfs on `/dev` and creates the devices, `/dev/pts`, `/dev/shm`
/// and the symlinks. Called after the root was changed.
pub fn mount_dev() -> Result<()> {
    // LAB:BEGIN mount_dev: a small /dev of the container's own: DEVICES usable by all, its own terminals, /dev/shm, SYMLINKS; see mknod(2), pts(4)
    mount_fs(
        "tmpfs",
        "/dev",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        "mode=755,size=65536k",
    )?;
    for (name, major, minor) in DEVICES {
        let path = Path::new("/dev").join(name);
        say!("mknod({path:?}, S_IFCHR|0666, makedev({major}, {minor}))");
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(*major, *minor),
        )
        .with_context(|| format!("failed to create device {}", path.display()))?;
        // mknod(2) applies the umask; the devices must be usable by everyone.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .with_context(|| format!("failed to chmod {}", path.display()))?;
    }
    // A private instance: the container sees its own terminals, not the host's.
    mount_fs(
        "devpts",
        "/dev/pts",
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    )?;
    mount_fs(
        "tmpfs",
        "/dev/shm",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "mode=1777,size=65536k",
    )?;
    say!("symlink(/dev/{{fd,stdin,stdout,stderr,ptmx}})");
    for (link, target) in SYMLINKS {
        let path = Path::new("/dev").join(link);
        symlink(target, &path)
            .with_context(|| format!("failed to create symlink {}", path.display()))?;
    }
    Ok(())
    // LAB:END
}
// ANCHOR_END: mount_dev
