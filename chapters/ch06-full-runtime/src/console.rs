//! `process.terminal` with `--console-socket`: a pseudo-terminal for the container.
//!
//! An interactive container (`ctr run -t`, `docker run -t`) needs a terminal:
//! line editing, job control, `SIGWINCH` on resize. The runtime opens a new
//! pseudo-terminal pair, gives the *slave* side to the container as its
//! stdin, stdout, stderr and controlling terminal, and passes the *master*
//! side to the engine over the unix socket named by `--console-socket`, as a
//! file descriptor in an `SCM_RIGHTS` message (`unix(7)`). The engine then
//! copies bytes between the user's terminal and the master, long after the
//! runtime has exited. See `pty(7)`.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use ch01_uts::say;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::pty::openpty;
use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

/// Opens a pty pair and sends the master over `socket_path`; returns the slave.
pub fn open_and_send(socket_path: &Path) -> Result<OwnedFd> {
    say!("openpty()");
    let pty = openpty(None, None).context("failed to open a pseudo-terminal")?;
    // openpty(3) leaves both ends inheritable: no hook or container gets them by accident.
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .context("failed to set FD_CLOEXEC on the pty")?;
    }
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("failed to create a unix socket")?;
    let addr = UnixAddr::new(socket_path)
        .with_context(|| format!("bad console socket path {}", socket_path.display()))?;
    say!("connect({})", socket_path.display());
    connect(sock.as_raw_fd(), &addr).with_context(|| {
        format!(
            "failed to connect to console socket {}",
            socket_path.display()
        )
    })?;
    let fds = [pty.master.as_raw_fd()];
    let name = b"/dev/ptmx";
    say!("sendmsg(SCM_RIGHTS, pty master)");
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .with_context(|| format!("failed to send the pty to {}", socket_path.display()))?;
    Ok(pty.slave)
}

/// In the child: a new session with the pty slave as controlling terminal and stdio.
pub fn attach(slave: &OwnedFd) -> Result<()> {
    say!("setsid(); ioctl(TIOCSCTTY); dup2(pty, 0/1/2)");
    nix::unistd::setsid().context("failed to start a new session")?;
    // SAFETY: TIOCSCTTY takes an int argument; the fd is a valid terminal.
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .context("failed to make the pty the controlling terminal");
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this (single-threaded) child.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(std::io::Error::last_os_error()).context("failed to dup2 the pty");
        }
    }
    Ok(())
}
