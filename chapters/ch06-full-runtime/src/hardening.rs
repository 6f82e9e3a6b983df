//! Two ways out of a container that runc had to close, and how this runtime
//! closes them.
//!
//! - **Leaked descriptors** (CVE-2024-21626). A descriptor the runtime holds
//!   (inherited from its caller, or its own) that survives `execve(2)` into
//!   the container is a handle on the host: `fchdir(fd)`, `openat(fd, "..")`
//!   or `/proc/self/fd/N/..` walk out of the new root, which only limits
//!   *path* lookups that start at `/`. runc leaked a cgroup directory this
//!   way, and with `process.cwd` set to `/proc/self/fd/7` the container
//!   started *in* the host's tree. So: every descriptor above 2 is marked
//!   close-on-exec before `execve`, except those the caller asked to pass
//!   (`--preserve-fds N`, and socket activation's `LISTEN_FDS`), and the
//!   working directory is checked to lie inside the root after `chdir`.
//! - **The runtime's own binary** (CVE-2019-5736). Between `create` and
//!   `start`, and during `exec`, a process in the container runs the
//!   runtime's code: `/proc/<pid>/exe` is the host's runtime binary. A
//!   process of the container that opens it (`O_PATH`, then reopens
//!   `/proc/self/fd/N` for writing once the runtime has exited) can replace
//!   the binary that root runs next. So `create`, `run` and `exec` first copy
//!   the binary into a sealed memfd (`memfd_create(2)`, `F_SEAL_WRITE`) and
//!   re-execute from it: what the container can reach is a copy no one can
//!   write.
//!
//! What it leaves out: runc ≥ 1.2 avoids the copy (a read-only bind mount of
//! the binary on an overlay, or a clone of it on a private tmpfs); crun
//! copies as here. Neither escape needs a malicious rootfs; runc's defences
//! against one (symlinks in mount targets, `/proc` over-mounts) are not here.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use ch01_uts::say;

// ANCHOR: pass_fds
/// The descriptors above 2 that go into the container: socket activation's
/// first (`LISTEN_FDS`, when `LISTEN_PID` is this process, as systemd sets
/// them), then `--preserve-fds` more, numbered on from there (runc's order).
#[derive(Debug, Clone, Copy, Default)]
pub struct PassFds {
    pub listen: u32,
    pub preserve: u32,
}

impl PassFds {
    /// Reads `LISTEN_FDS`/`LISTEN_PID` from the runtime's environment.
    pub fn new(preserve: u32) -> PassFds {
        let ours = std::env::var("LISTEN_PID").ok() == Some(std::process::id().to_string());
        let listen = std::env::var("LISTEN_FDS")
            .ok()
            .filter(|_| ours)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        PassFds { listen, preserve }
    }

    /// The first descriptor that does not go through `execve`.
    pub fn first_closed(self) -> u32 {
        3 + self.listen + self.preserve
    }

    /// What socket activation's child reads: runc sets `LISTEN_PID=1`.
    pub fn env(self) -> Vec<String> {
        if self.listen == 0 {
            return Vec::new();
        }
        vec![format!("LISTEN_FDS={}", self.listen), "LISTEN_PID=1".into()]
    }
}
// ANCHOR_END: pass_fds

// ANCHOR: close_on_exec
/// Marks every descriptor from `first` up close-on-exec: they stay usable
/// until `execve` (the exec.fifo, the error pipe) and are gone after it.
/// Marking rather than closing: an `execve` that fails still reports.
pub fn close_on_exec_from(first: u32) -> Result<()> {
    say!("close_range({first}, ~0U, CLOSE_RANGE_CLOEXEC)");
    // SAFETY: close_range(2) takes three integers and touches only our table.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("close_range(CLOSE_RANGE_CLOEXEC) failed (needs Linux 5.11)");
    }
    Ok(())
}

/// After `chdir(process.cwd)`: fails unless the working directory is inside
/// the root. `getcwd(2)` cannot name a directory outside the root (the
/// kernel prefixes it with `(unreachable)`), as when `cwd` went through a
/// leaked descriptor such as `/proc/self/fd/7`.
pub fn check_cwd(cwd: &Path) -> Result<()> {
    say!("getcwd()");
    let here = std::env::current_dir();
    match here {
        Ok(path) if path.is_absolute() => Ok(()),
        _ => bail!(
            "config.json: process.cwd {} is outside the container's root: use a path inside it",
            cwd.display()
        ),
    }
}
// ANCHOR_END: close_on_exec

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

// The new mount API's constants (linux/mount.h), not all in the libc crate.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: libc::c_uint = 1;
const MOUNT_ATTR_NOSUID: libc::c_uint = 2;
const MOUNT_ATTR_NODEV: libc::c_uint = 4;

// ANCHOR: sealed_copy
/// Re-executes the runtime from a copy of its binary that no one can write,
/// unless it already runs from one. Returns only in that copy. `scratch` is
/// an empty directory of ours (the state root).
pub fn run_from_sealed_copy(scratch: &Path) -> Result<()> {
    let exe = File::open("/proc/self/exe").context("failed to open /proc/self/exe")?;
    if protected(&exe) {
        // fexecve(3) named us after the descriptor (or the memfd): take
        // the program's name back, for ps and /proc/<pid>/comm.
        let name = ch01_uts::cli::program_name();
        let name = CString::new(name.bytes().take(15).collect::<Vec<u8>>())
            .context("program name holds a NUL byte")?;
        nix::sys::prctl::set_name(&name).context("failed to set PR_SET_NAME")?;
        return Ok(());
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<_, _>>()
        .context("an argument holds a NUL byte")?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut pair = k.into_encoded_bytes();
            pair.push(b'=');
            pair.extend(v.into_encoded_bytes());
            CString::new(pair)
        })
        .collect::<Result<_, _>>()
        .context("an environment variable holds a NUL byte")?;
    let exec = |copy: OwnedFd| -> Result<()> {
        say!("execveat(copy, \"\", argv, envp, AT_EMPTY_PATH)");
        match nix::unistd::fexecve(&copy, &args, &env) {
            Ok(never) => match never {},
            Err(err) => Err(err).context("failed to re-execute the runtime from its copy"),
        }
    };
    // No overlayfs, no new mount API (before Linux 5.2), a lower layer
    // overlayfs refuses: the memfd then.
    if let Err(err) = read_only_view(scratch).and_then(exec) {
        say!("read-only view failed ({err:#}): copy into a memfd instead");
    }
    exec(memfd_copy(exe)?)
}

/// Runs from a copy no one can write: a sealed memfd, or a file on a
/// read-only mount (writing through `/proc/self/fd/N` reuses that mount).
fn protected(exe: &File) -> bool {
    // SAFETY: F_GET_SEALS only reads the seals; EINVAL if not a memfd.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        return true;
    }
    nix::sys::statvfs::fstatvfs(exe)
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// runc's way (1.2): the binary's directory as the top layer of a read-only
/// overlayfs made with the new mount API and never attached anywhere
/// (`fsopen(2)`, `fsconfig(2)`, `fsmount(2)`), the binary opened in it. No
/// copy; the mount goes when the last process running from it exits.
fn read_only_view(scratch: &Path) -> Result<OwnedFd> {
    let target = std::fs::read_link("/proc/self/exe").context("failed to read /proc/self/exe")?;
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        bail!("{} has no directory", target.display());
    };
    std::fs::create_dir_all(scratch)
        .with_context(|| format!("failed to create {}", scratch.display()))?;
    // Layers may not nest (ELOOP): the state root, or else /dev.
    let nested = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    let scratch = if nested(dir, scratch) {
        Path::new("/dev")
    } else {
        scratch
    };
    // Two lower layers and no upper one: overlayfs refuses every write.
    let lower = format!("{}:{}", dir.display(), scratch.display());
    if [dir, scratch]
        .iter()
        .any(|p| p.to_string_lossy().contains([':', ',', '\\']))
    {
        bail!("{lower}: a path holds : , or \\");
    }
    say!("fsopen(\"overlay\", FSOPEN_CLOEXEC)");
    // SAFETY: a NUL-terminated name and a flag; the result is checked.
    let ctx =
        owned(unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) })
            .context("fsopen(overlay) failed")?;
    let set = |key: &str, value: &str| -> Result<()> {
        say!("fsconfig(fs, FSCONFIG_SET_STRING, {key:?}, {value:?}, 0)");
        let (key, value) = (CString::new(key)?, CString::new(value)?);
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                ctx.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        };
        owned_rc(rc).with_context(|| format!("fsconfig {key:?} failed"))
    };
    set("lowerdir", &lower)?;
    // Only to keep overlayfs from warning in the kernel log when the layers
    // are on different filesystems; an older kernel may not know it.
    let _ = set("xino", "off");
    say!("fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0)");
    // SAFETY: no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    owned_rc(rc).context("creating the overlay failed")?;
    say!("fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV)");
    // SAFETY: integers only.
    let mnt = owned(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })
    .context("fsmount failed")?;
    say!("openat(mnt, {name:?}, O_PATH|O_NOFOLLOW|O_CLOEXEC)");
    let fd = nix::fcntl::openat(
        &mnt,
        name,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("failed to open {name:?} in the overlay"))?;
    Ok(fd)
}

/// crun's way (and runc's before 1.2): copy the binary into a memfd and
/// seal it against writes. Costs a copy of the whole binary on every run.
fn memfd_copy(mut exe: File) -> Result<OwnedFd> {
    say!("memfd_create(\"ch06-full-runtime\", MFD_CLOEXEC|MFD_ALLOW_SEALING)");
    // SAFETY: the name is a NUL-terminated literal; the result is checked.
    let memfd = owned(unsafe {
        libc::memfd_create(
            c"ch06-full-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
        .into()
    })
    .context("memfd_create failed")?;
    let mut copy = File::from(memfd);
    say!("sendfile(memfd, /proc/self/exe)");
    std::io::copy(&mut exe, &mut copy).context("failed to copy the runtime into a memfd")?;
    say!("fcntl(memfd, F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE)");
    // SAFETY: F_ADD_SEALS takes an int; the descriptor is ours.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("failed to seal the memfd");
    }
    Ok(copy.into())
}

/// A system call's new descriptor, or its error.
fn owned(rc: libc::c_long) -> Result<OwnedFd> {
    if rc < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

fn owned_rc(rc: libc::c_long) -> Result<()> {
    if rc < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}
// ANCHOR_END: sealed_copy
