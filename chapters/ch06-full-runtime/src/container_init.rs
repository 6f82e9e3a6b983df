//! The container's first process, from `clone(2)` to `execve(2)`.
//!
//! Everything the config asks for that must happen *inside* is done here, by
//! the cloned child, in an order where each step still has the rights it
//! needs: namespaces joined, the file tree built (before `pivot_root`, while
//! host paths are reachable), the root changed, `/proc` and `/sys` hardened,
//! hostname and sysctls set, and only then the privileges dropped: bounding
//! set, seccomp (needs `CAP_SYS_ADMIN` unless `no_new_privs`), user, the other
//! capability sets, `no_new_privs`.
//!
//! Then the process reports "ready" to the runtime over a pipe and blocks
//! opening `exec.fifo` for writing, which only succeeds when `start` opens it
//! for reading. This is runc's trick: the container exists, fully set up, but
//! the user's program has not run yet; the runtime process that created it
//! has exited. `start`, another process, releases it.

use std::convert::Infallible;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::{process, say, uts};
use ch03_mount_chroot::rootfs;
use libseccomp::ScmpFilterContext;
use nix::fcntl::{open, OFlag};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Process, Spec};

use crate::namespaces::{self, Kind};
use crate::state::Status;
use crate::{capabilities, devices, hooks, mounts, seccomp, user, user_ns};

/// What the child needs, prepared by the runtime before `clone(2)`.
pub struct Init<'a> {
    pub spec: &'a Spec,
    pub process: &'a Process,
    pub rootfs: PathBuf,
    pub plan: &'a namespaces::Plan,
    pub joins: Vec<(Kind, File)>,
    /// The container's state directory (for `exec.fifo` and the hooks' state).
    pub state_dir: PathBuf,
    /// The write end of the pipe on which the child reports "ready" or its error.
    pub ready: OwnedFd,
    pub console: Option<OwnedFd>,
    pub seccomp: Option<ScmpFilterContext>,
    /// In a user namespace: the socket on which the runtime sends the bind
    /// sources it opened (see [`mounts::send_sources`]).
    pub sources: Option<OwnedFd>,
    /// The descriptors above 2 that go through `execve`.
    pub pass_fds: crate::hardening::PassFds,
}

/// The first byte on the ready pipe: set-up done, or an error message follows.
pub const READY: u8 = b'0';
pub const FAILED: u8 = b'1';

impl Init<'_> {
    /// The child's whole life. Errors before "ready" go to the runtime
    /// through the pipe; after it, to the container's stderr.
    pub fn run(self) -> Result<Infallible> {
        let prepared = self.prepare();
        let mut ready = File::from(self.ready);
        let (fifo, start_state) = match prepared {
            Ok(done) => done,
            Err(err) => {
                let _ = ready.write_all(format!("{}{err:#}", FAILED as char).as_bytes());
                std::process::exit(process::exit_code_for(&err));
            }
        };
        say!("write(ready pipe) -> runtime; open(exec.fifo, O_WRONLY) blocks until start");
        ready
            .write_all(&[READY])
            .context("failed to tell the runtime we are ready")?;
        drop(ready);
        // Open until execve closes it: `start` waits for that, or for an error.
        let mut go = wait_for_start(fifo)?;
        if let Err(err) = hooks::run(
            self.spec.hooks().as_ref(),
            hooks::Point::StartContainer,
            &start_state,
        ) {
            let _ = go.write_all(format!("{}{err:#}", FAILED as char).as_bytes());
            std::process::exit(1);
        }
        finish(self.process, self.seccomp.as_ref())
    }

    // ANCHOR: prepare
    /// Everything before "ready": returns the `O_PATH` descriptor of
    /// `exec.fifo` and the state JSON for the `startContainer` hooks.
    fn prepare(&self) -> Result<(OwnedFd, String)> {
        // Chapter 1's spawn makes the child die with the runtime (PR_SET_PDEATHSIG); a
        // container must outlive it (containerd's shim reaps it), so undo that.
        nix::sys::prctl::set_pdeathsig(None).context("failed to clear PR_SET_PDEATHSIG")?;
        // Nothing of the runtime's (or its caller's) goes through execve.
        crate::hardening::close_on_exec_from(self.pass_fds.first_closed())?;
        for (kind, file) in &self.joins {
            namespaces::join(*kind, file, "config.json path")?;
        }
        if self.plan.owns(Kind::User) {
            // The maps are written: become the new namespace's root, so that
            // files we create belong to a mapped user.
            user_ns::become_root()?;
        }
        if self.plan.owns(Kind::Cgroup) {
            // Now, not at clone time: the runtime has moved us into our cgroup,
            // which becomes the root of the new cgroup namespace.
            say!("unshare(CLONE_NEWCGROUP)");
            unshare(CloneFlags::CLONE_NEWCGROUP).context("failed to create a cgroup namespace")?;
        }
        if let Some(slave) = &self.console {
            crate::console::attach(slave)?;
        }
        let container = crate::state::Store::new(self.state_dir.parent().unwrap_or(Path::new("/")))
            .load(
                &self
                    .state_dir
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy(),
            )?;
        let hooks = self.spec.hooks().as_ref();
        let fifo_path = self.state_dir.join(crate::state::EXEC_FIFO);
        let own_mount = self.plan.owns(Kind::Mount);
        let own_dev = devices::config_mounts_dev(self.spec);
        if own_mount {
            rootfs::make_private()?;
            rootfs::bind_to_itself(&self.rootfs)?;
            let sources = match &self.sources {
                Some(socket) => mounts::receive_sources(socket, self.spec)?,
                None => Vec::new(),
            };
            mounts::mount_all(self.spec, &self.rootfs, container.cgroup.as_ref(), &sources)?;
            if own_dev {
                devices::create_all(self.spec, &self.rootfs, self.plan.owns(Kind::User))?;
            }
        }
        hooks::run(
            hooks,
            hooks::Point::CreateContainer,
            &container.oci_state(Status::Creating)?,
        )?;
        // A handle on exec.fifo that survives the change of root.
        let fifo = open_path(&fifo_path)?;
        if own_mount {
            rootfs::pivot_root(&self.rootfs)?;
            if !own_dev {
                ch03_mount_chroot::devices::mount_dev()?;
            }
        } else {
            // Without a mount namespace of its own, chroot(2) is all there is.
            rootfs::chroot(&self.rootfs)?;
        }
        if let Some(name) = self.spec.hostname() {
            uts::set_hostname(name)?;
        }
        let linux = self.spec.linux().as_ref();
        if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
            user::set_sysctls(sysctl)?;
        }
        if own_mount {
            // After the sysctls: /proc/sys is usually among the read-only paths.
            mounts::harden(self.spec)?;
        }
        user::set_rlimits(self.process.rlimits().as_deref().unwrap_or_default())?;
        let caps = self.process.capabilities().as_ref();
        capabilities::drop_bounding(caps)?;
        if !self.process.no_new_privileges().unwrap_or(false) {
            // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN:
            // load it now, before the capabilities go.
            if let Some(filter) = &self.seccomp {
                seccomp::load(filter)?;
            }
        }
        user::switch(self.process)?;
        capabilities::apply(caps)?;
        user::no_new_privileges(self.process)?;
        let cwd = self.process.cwd();
        say!("chdir({cwd:?})");
        std::env::set_current_dir(cwd).with_context(|| {
            format!(
                "config.json: process.cwd {}: cannot chdir there",
                cwd.display()
            )
        })?;
        crate::hardening::check_cwd(cwd)?;
        set_env(self.process.env().as_deref().unwrap_or_default());
        find_command(self.process.args().as_deref().unwrap_or_default())?;
        Ok((fifo, container.oci_state(Status::Created)?))
    }
    // ANCHOR_END: prepare
}

/// The last steps before `execve(2)`, shared with `exec`: seccomp when
/// `no_new_privs` allowed to delay it (as few calls as possible run after
/// it), then the command.
pub fn finish(process: &Process, filter: Option<&ScmpFilterContext>) -> Result<Infallible> {
    if process.no_new_privileges().unwrap_or(false) {
        if let Some(filter) = filter {
            seccomp::load(filter)?;
        }
    }
    ch01_uts::process::exec(process.args().as_deref().unwrap_or_default())
}

/// Opens `path` with `O_PATH`: a handle that survives `pivot_root` without
/// opening the fifo (which would block).
fn open_path(path: &Path) -> Result<OwnedFd> {
    let fd = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .with_context(|| format!("failed to open {}", path.display()))?;
    Ok(fd)
}

// ANCHOR: wait_for_start
/// Blocks until `start` opens the fifo for reading, then writes one byte.
/// The fifo is reopened for writing through `/proc/self/fd`, the one path to
/// it that still works after `pivot_root`. Returns the open fifo: `start`
/// reads on until `execve` closes it.
fn wait_for_start(fifo: OwnedFd) -> Result<File> {
    // LAB:BEGIN wait_for_start: block until start releases the init through exec.fifo, then tell it so, narrated; see fifo(7), open(2)
    let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
    let fd = open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("failed to open exec.fifo (is /proc mounted in the container?)")?;
    let mut file = File::from(fd);
    file.write_all(b"0")
        .context("failed to write to exec.fifo")?;
    say!("exec.fifo opened by start: go");
    Ok(file)
    // LAB:END
}
// ANCHOR_END: wait_for_start

/// Replaces the environment with `process.env` (what `execvp` passes on and
/// where it looks up `PATH`).
pub fn set_env(env: &[String]) {
    rootfs::clear_env();
    for pair in env {
        if let Some((key, value)) = pair.split_once('=') {
            if !key.is_empty() {
                std::env::set_var(key, value);
            }
        }
    }
}

/// Fails now, at create time, when the command cannot be found, rather than
/// after `start` (runc does the same check).
pub fn find_command(args: &[String]) -> Result<()> {
    let Some(program) = args.first() else {
        bail!("config.json: process.args is empty");
    };
    // A path with a `/` is taken as it is (relative to process.cwd), as execvp does.
    let candidates = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        let path_var = std::env::var("PATH").unwrap_or_default();
        rootfs::candidates(Path::new("/"), &path_var, program)
    };
    for path in candidates {
        if nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file() {
            return Ok(());
        }
    }
    Err(ch01_uts::process::ExecFailed {
        program: program.clone(),
        errno: nix::errno::Errno::ENOENT,
    }
    .into())
}
