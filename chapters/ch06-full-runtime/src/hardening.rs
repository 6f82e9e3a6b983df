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

// ANCHOR: sealed_copy
/// Re-executes the runtime from a sealed in-memory copy of its binary,
/// unless it already runs from one. Returns only in that copy.
pub fn run_from_sealed_copy() -> Result<()> {
    let exe = File::open("/proc/self/exe").context("failed to open /proc/self/exe")?;
    // SAFETY: F_GET_SEALS only reads the seals; EINVAL if not a memfd.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & SEALS == SEALS {
        // fexecve(3) named us after the memfd (or its descriptor number):
        // take the program's name back, for ps and /proc/<pid>/comm.
        let name = ch01_uts::cli::program_name();
        let name = CString::new(
            name.as_bytes()
                .iter()
                .take(15)
                .copied()
                .collect::<Vec<u8>>(),
        )
        .context("program name holds a NUL byte")?;
        nix::sys::prctl::set_name(&name).context("failed to set PR_SET_NAME")?;
        return Ok(());
    }
    say!("memfd_create(\"ch06-full-runtime\", MFD_CLOEXEC|MFD_ALLOW_SEALING)");
    // SAFETY: the name is a NUL-terminated literal; the result is checked.
    let fd = unsafe {
        libc::memfd_create(
            c"ch06-full-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("memfd_create failed");
    }
    // SAFETY: memfd_create just returned this descriptor; nothing else owns it.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut copy = File::from(memfd);
    let mut source = exe;
    say!("copy_file_range(/proc/self/exe -> memfd)");
    std::io::copy(&mut source, &mut copy).context("failed to copy the runtime into a memfd")?;
    say!("fcntl(memfd, F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE)");
    // SAFETY: F_ADD_SEALS takes an int; the descriptor is ours.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(std::io::Error::last_os_error()).context("failed to seal the memfd");
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
    say!("fexecve(memfd, argv, envp)");
    match nix::unistd::fexecve(&copy, &args, &env) {
        Ok(never) => match never {},
        Err(err) => Err(err).context("failed to re-execute the runtime from its sealed copy"),
    }
}
// ANCHOR_END: sealed_copy
