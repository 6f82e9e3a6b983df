//! The lifecycle: `create`, `start`, `kill`, `delete`, and `run`, `exec`,
//! `pause`, `resume`, `ps`, `list` around them.
//!
//! ```text
//!            create              start                (process exits)          delete
//!  (none) ----------> created ----------> running ----------------> stopped ---------> (none)
//!                        |                  |  ^                       ^
//!                        |                  |  | resume                |
//!                        |            pause v  |                       |
//!                        |                 paused                      |
//!                        +--------------- kill -----------------------+
//! ```
//!
//! Each arrow is a separate run of the runtime, which exits in between. That
//! is the shape containerd needs: its shim calls `create`, then `start`, and
//! stays behind as the container's parent (a *subreaper*, `prctl(2)`) holding
//! its stdio and waiting for its exit status, while the runtime is gone. If
//! the runtime had to stay, every container would cost one more process, and
//! restarting or upgrading the runtime would kill containers.

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ch01_uts::{process, say};
use ch02_pid::init::{self as supervisor, Reap};
use ch04_cgroups::cgroups::Cgroup;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill as send, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{mkfifo, pipe2, Pid};
use oci_spec::runtime::{Process, Spec};

use crate::container_init::{self, Init, FAILED, READY};
use crate::hardening::{self, PassFds};
use crate::namespaces::{self, Kind, Plan};
use crate::state::{self, proc_stat, Container, NotFound, Status, Store};
use crate::{capabilities, cgroups, hooks, logging, seccomp, spec, user, user_ns};

/// What `create` and `run` take besides the id.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// `--preserve-fds N`: descriptors 3.. that go into the container.
    pub preserve_fds: u32,
}

/// Undoes a half-done `create`: kills the child, removes the cgroup (chapter
/// 4's `Cgroup` does that when dropped) and the state directory. Disarmed
/// once the container exists.
struct Undo {
    dir: Option<PathBuf>,
    pid: Option<Pid>,
    cgroup: Option<Cgroup>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = send(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        drop(self.cgroup.take());
        if let Some(dir) = self.dir.take() {
            let _ = state::remove_dir(&dir);
        }
    }
}

impl Undo {
    fn disarm(mut self) {
        self.dir = None;
        self.pid = None;
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.keep();
        }
    }
}

// ANCHOR: create
/// `create`: sets the container up and leaves its process blocked on
/// `exec.fifo`. Returns once the process reported "ready". Each step is a
/// function below, in this order; on an error, `undo` removes what was made.
pub fn create(store: &Store, id: &str, opts: &CreateOptions) -> Result<Container> {
    // Everything that can be checked is checked before anything exists.
    let mut checked = check(id, opts)?;
    let (mut container, mut undo) = record(store, id, &checked)?;
    // The limits are in place before the process exists.
    let cgroup = cgroups::create(id, &checked.spec)?;
    container.cgroup = Some(cgroup.placement());
    let cgroup = undo.cgroup.insert(cgroup);
    let (child, ready, sources) = clone_init(&container, &mut checked, opts)?;
    let pid = child.pid();
    // The child waits on the sync pipe: set up from outside what it cannot.
    set_up_from_outside(&checked, pid, sources, cgroup)?;
    container.pid = Some(pid.as_raw());
    container.start_time = proc_stat(pid.as_raw()).map(|(_, t)| t);
    container.save()?;
    run_create_hooks(&container)?;
    let pid = child.release()?;
    undo.pid = Some(pid);
    wait_ready(ready, pid)?;

    container.status = Status::Created;
    container.save()?;
    if let Some(path) = &checked.pid_file {
        write_pid_file(path, pid)?;
    }
    undo.disarm();
    Ok(container)
}
// ANCHOR_END: create

/// What `create` read and checked before making anything.
struct Checked {
    bundle: PathBuf,
    spec: Spec,
    process: Process,
    rootfs: PathBuf,
    plan: Plan,
    joins: Vec<(Kind, File)>,
    seccomp: Option<libseccomp::ScmpFilterContext>,
    pass_fds: PassFds,
    /// Absolute: relative to where we were started, not to the bundle we chdir to.
    pid_file: Option<PathBuf>,
}

/// `create`'s first step: the id, the bundle, `config.json` and the
/// command line, all checked; the namespaces to join opened.
fn check(id: &str, opts: &CreateOptions) -> Result<Checked> {
    state::validate_id(id)?;
    let bundle = fs::canonicalize(&opts.bundle)
        .with_context(|| format!("bundle {} does not exist", opts.bundle.display()))?;
    let spec = spec::load(&bundle)?;
    let mut process = spec
        .process()
        .clone()
        .context("config.json: `process` is missing")?;
    let pass_fds = PassFds::new(opts.preserve_fds);
    add_env(&mut process, pass_fds.env());
    let plan = Plan::from_spec(&spec)?;
    user_ns::validate(&spec, plan.owns(Kind::User))?;
    let seccomp = seccomp_filter(&spec)?;
    if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
        bail!("config.json: process.terminal is true: pass --console-socket, or set it to false");
    }
    let joins = plan.open_joins()?;
    let pid_file = opts
        .pid_file
        .as_deref()
        .map(std::path::absolute)
        .transpose()
        .context("bad --pid-file path")?;
    let rootfs = fs::canonicalize(spec::rootfs(&spec, &bundle)?)
        .context("config.json: root.path does not exist")?;
    Ok(Checked {
        bundle,
        spec,
        process,
        rootfs,
        plan,
        joins,
        seccomp,
        pass_fds,
        pid_file,
    })
}

/// The container's state directory and its first record, "creating"; the
/// `Undo` that removes them again unless `create` gets to its end.
fn record(store: &Store, id: &str, checked: &Checked) -> Result<(Container, Undo)> {
    let dir = store.create_dir(id)?;
    let undo = Undo {
        dir: Some(dir.clone()),
        pid: None,
        cgroup: None,
    };
    let container = Container {
        id: id.to_string(),
        bundle: checked.bundle.clone(),
        rootfs: checked.rootfs.clone(),
        status: Status::Creating,
        pid: None,
        start_time: None,
        created: logging::rfc3339(std::time::SystemTime::now()),
        cgroup: None,
        spec: checked.spec.clone(),
        dir,
    };
    container.save()?;
    Ok((container, undo))
}

/// The container's first process, cloned into its namespaces and held on the
/// sync pipe; with it, the read end of its ready pipe and, in a user
/// namespace, our end of the socket for the bind sources.
fn clone_init(
    container: &Container,
    checked: &mut Checked,
    opts: &CreateOptions,
) -> Result<(process::Child, OwnedFd, Option<OwnedFd>)> {
    make_fifo(&container.fifo())?;
    let console = opts
        .console_socket
        .as_deref()
        .map(crate::console::open_and_send)
        .transpose()?;
    if let Some(path) = checked.plan.join_pid() {
        // setns(CLONE_NEWPID) applies to our future children: join before clone.
        let file =
            File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
        namespaces::join(Kind::Pid, &file, &path.display().to_string())?;
    }
    // Relative bind-mount sources are relative to the bundle.
    std::env::set_current_dir(&checked.bundle)
        .with_context(|| format!("failed to chdir to {}", checked.bundle.display()))?;
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).context("failed to create the ready pipe")?;
    // A mapped root may not reach the bind sources: the runtime opens them.
    let (sources_ours, sources_theirs) = if checked.plan.owns(Kind::User) {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .context("failed to create the bind sources socket")?;
        (Some(ours), Some(theirs))
    } else {
        (None, None)
    };
    let init = Init {
        spec: &checked.spec,
        process: &checked.process,
        rootfs: checked.rootfs.clone(),
        plan: &checked.plan,
        joins: std::mem::take(&mut checked.joins),
        state_dir: container.dir.clone(),
        ready: ready_w,
        console,
        seccomp: checked.seccomp.take(),
        sources: sources_theirs,
        pass_fds: checked.pass_fds,
    };
    let child = process::spawn(checked.plan.clone_flags(), move || init.run())?;
    Ok((child, ready_r, sources_ours))
}

/// While the child waits on the sync pipe: what it cannot do itself, done
/// from outside (its ID maps, its bind sources, its cgroup, its OOM score).
fn set_up_from_outside(
    checked: &Checked,
    pid: Pid,
    sources: Option<OwnedFd>,
    cgroup: &Cgroup,
) -> Result<()> {
    if checked.plan.owns(Kind::User) {
        user_ns::write_maps(pid, &checked.spec)?;
    }
    if let Some(socket) = sources {
        crate::mounts::send_sources(&socket, pid, &checked.spec, &checked.bundle)?;
    }
    // Before the child runs a single instruction of its own: everything it
    // does and every process it forks is counted and limited.
    cgroup.add(pid)?;
    if let Some(adj) = checked.process.oom_score_adj() {
        user::set_oom_score_adj(pid, adj)?;
    }
    Ok(())
}

/// The `prestart` and `createRuntime` hooks, in the runtime's namespaces,
/// with the container's pid in the state they read.
fn run_create_hooks(container: &Container) -> Result<()> {
    let creating = container.oci_state(Status::Creating)?;
    let hooks = container.spec.hooks().as_ref();
    hooks::run(hooks, hooks::Point::Prestart, &creating)?;
    hooks::run(hooks, hooks::Point::CreateRuntime, &creating)
}

/// Compiles `linux.seccomp` at create time, so a bad profile fails early.
fn seccomp_filter(spec: &Spec) -> Result<Option<libseccomp::ScmpFilterContext>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .map(seccomp::compile)
        .transpose()
}

fn make_fifo(path: &Path) -> Result<()> {
    say!("mkfifo {}", path.display());
    mkfifo(path, Mode::from_bits_truncate(0o622))
        .with_context(|| format!("failed to create {}", path.display()))?;
    // Any user the container switches to must be able to open it for writing.
    fs::set_permissions(path, fs::Permissions::from_mode(0o622))
        .with_context(|| format!("failed to chmod {}", path.display()))
}

/// Reads the child's report: [`READY`], or [`FAILED`] and its error message.
fn wait_ready(ready: std::os::fd::OwnedFd, pid: Pid) -> Result<()> {
    let mut pipe = File::from(ready);
    let mut first = [0u8; 1];
    let n = loop {
        match pipe.read(&mut first) {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other.context("failed to read the ready pipe")?,
        }
    };
    if n == 1 && first[0] == READY {
        return Ok(());
    }
    let mut message = String::new();
    let _ = pipe.read_to_string(&mut message);
    if n == 1 && first[0] == FAILED {
        bail!("{message}");
    }
    let status = process::wait(pid).map(|code| format!("exit code {code}"));
    bail!(
        "the container process ended during set-up ({})",
        status.unwrap_or_else(|e| e.to_string())
    )
}

fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    ch01_uts::state::write_atomically(path, pid.to_string().as_bytes())
        .with_context(|| format!("failed to write the pid file {}", path.display()))
}

// ANCHOR: start
/// `start`: opens `exec.fifo` for reading, which lets the blocked process
/// go on to exec the command; then removes the fifo (now `running`).
pub fn start(store: &Store, id: &str) -> Result<()> {
    // LAB:BEGIN start: release a created container's init through exec.fifo and wait until it goes, then run the poststart hooks; see fifo(7), poll(2)
    let container = store.load(id)?;
    match container.status() {
        Status::Created => {}
        status => bail!("cannot start container {id}: it is {status}, not created"),
    }
    let fifo = container.fifo();
    say!("open({}, O_RDONLY)", fifo.display());
    let fd = open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("failed to open {}", fifo.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u16)) {
            Ok(n) if n > 0 => {
                let mut byte = [0u8; 1];
                if nix::unistd::read(&fd, &mut byte) == Ok(1) {
                    break;
                }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno).context("failed to poll exec.fifo"),
        }
        if !container.alive() {
            bail!("cannot start container {id}: its process has exited");
        }
        if Instant::now() > deadline {
            bail!("container {id} did not answer on exec.fifo within 10 s");
        }
    }
    say!("rm {}", fifo.display());
    fs::remove_file(&fifo).with_context(|| format!("failed to remove {}", fifo.display()))?;
    await_exec(&fd, id)?;
    hooks::run_logged(
        container.spec.hooks().as_ref(),
        hooks::Point::Poststart,
        &container.oci_state(Status::Running)?,
    );
    Ok(())
    // LAB:END
}
// ANCHOR_END: start

/// After the go: the process runs the `startContainer` hooks, then executes
/// the command, which closes its end of `exec.fifo` (close-on-exec). A
/// failing hook is an error of `start` (the spec's rule): the process writes
/// [`FAILED`] and the error instead, and exits.
fn await_exec(fd: &std::os::fd::OwnedFd, id: &str) -> Result<()> {
    let mut message = Vec::new();
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno).context("failed to poll exec.fifo"),
        }
        let mut buf = [0u8; 512];
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => message.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(errno) => return Err(errno).context("failed to read exec.fifo"),
        }
    }
    if let Some(text) = message.strip_prefix(&[FAILED]) {
        bail!(
            "cannot start container {id}: {}",
            String::from_utf8_lossy(text)
        );
    }
    Ok(())
}

/// Parses a signal as runc does: `TERM`, `SIGTERM`, `term` or `15`. `0`
/// is no signal (`None`): `kill(2)` then only checks that the process exists.
pub fn parse_signal(text: &str) -> Result<Option<Signal>> {
    if let Ok(number) = text.parse::<i32>() {
        if number == 0 {
            return Ok(None);
        }
        return Signal::try_from(number)
            .map(Some)
            .with_context(|| format!("unknown signal number {number}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map(Some).map_err(|_| {
        anyhow::anyhow!("unknown signal {text:?}: use a name such as TERM or a number")
    })
}

/// The text runc gives when a stopped container is sent a signal: engines
/// look for these words (containerd's shim turns them into "process
/// already finished", not a failure).
pub const NOT_RUNNING: &str = "container not running";

// ANCHOR: kill
/// `kill [--all] ID [SIGNAL]`: sends a signal to the container's process, or
/// with `all` to every process in its cgroup. For `all` the group is frozen
/// meanwhile: a process forked after `cgroup.procs` was read would escape
/// the signal, and a frozen group forks nothing. (v2's `cgroup.kill` does
/// the same in the kernel, for `SIGKILL` only.)
pub fn kill(store: &Store, id: &str, signal: Option<Signal>, all: bool) -> Result<()> {
    let container = store.load(id)?;
    let status = container.status();
    if !matches!(status, Status::Created | Status::Running | Status::Paused) {
        if all && status == Status::Stopped {
            // runc's answer to `kill --all` of a stopped container, which
            // containerd's shim sends after every exit: success. What may be
            // left in the cgroup (a container without a PID namespace of its
            // own leaves its orphans there) still gets the signal.
            return signal_leftovers(&container, signal);
        }
        bail!("cannot kill container {id}: {NOT_RUNNING} (it is {status})");
    }
    let paused = status == Status::Paused;
    if all {
        let cgroup = cgroups::open(container.cgroup.as_ref())?;
        not_ours(&cgroup, id)?;
        if !paused {
            cgroup.freeze()?;
        }
        let sent = cgroup.procs().and_then(|pids| {
            pids.into_iter()
                .try_for_each(|pid| send_signal(pid.as_raw(), signal))
        });
        if !paused {
            cgroup.thaw()?;
        }
        sent?;
    } else if let Some(pid) = container.pid {
        send_signal(pid, signal)?;
    }
    // A frozen process acts on a signal only once thawed: SIGKILL still
    // means "now", so a paused container is thawed for it (as runc does).
    if paused && signal == Some(Signal::SIGKILL) {
        cgroups::open(container.cgroup.as_ref())?.thaw()?;
    }
    Ok(())
}

/// Refuses to signal, freeze or empty a cgroup that holds this very process:
/// the runtime would freeze or kill itself and end without a word (a caller
/// such as containerd's shim sees only "signal: killed" or a hang).
fn not_ours(cgroup: &ch04_cgroups::cgroups::Cgroup, id: &str) -> Result<()> {
    if cgroup.procs().unwrap_or_default().contains(&Pid::this()) {
        bail!(
            "the cgroup of container {id} holds this runtime ({}): run the runtime outside the container's cgroup",
            cgroup
                .dirs()
                .first()
                .map_or(String::new(), |d| d.display().to_string())
        );
    }
    Ok(())
}

/// `kill --all` of a stopped container: signals what is still in its cgroup,
/// if the cgroup is still there; a cgroup gone already is nothing to do.
fn signal_leftovers(container: &Container, signal: Option<Signal>) -> Result<()> {
    let Ok(cgroup) = cgroups::open(container.cgroup.as_ref()) else {
        return Ok(());
    };
    let Ok(pids) = cgroup.procs() else {
        return Ok(());
    };
    not_ours(&cgroup, &container.id)?;
    pids.into_iter()
        .try_for_each(|pid| send_signal(pid.as_raw(), signal))
}
// ANCHOR_END: kill

fn send_signal(pid: i32, signal: Option<Signal>) -> Result<()> {
    let name = signal.map_or("0", Signal::as_str);
    say!("kill({pid}, {name})");
    match send(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(errno).with_context(|| format!("failed to send {name} to {pid}")),
    }
}

// ANCHOR: delete
/// `delete [--force] ID`: removes a stopped (or, with force, any) container.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    let container = match store.load(id) {
        Ok(c) => c,
        Err(err) if err.downcast_ref::<NotFound>().is_some() => {
            // A `create` killed before it wrote state.json leaves a directory
            // without it: remove that (as runc does), then answer as runc:
            // engines call `delete --force` to be sure, and nothing there is fine.
            state::remove_dir(&store.dir(id))?;
            return if force { Ok(()) } else { Err(err) };
        }
        Err(err) => return Err(err),
    };
    // Before anything is killed: the cgroup will be emptied.
    if let Ok(cgroup) = cgroups::open(container.cgroup.as_ref()) {
        not_ours(&cgroup, id)?;
    }
    match container.status() {
        Status::Stopped => {}
        // Its command never ran: nothing is lost by killing it.
        Status::Created => stop(&container)?,
        _ if force => stop(&container)?,
        // runc's words, which engines match.
        status => bail!(
            "cannot delete container {id} that is not stopped: {status}: kill it first or use --force"
        ),
    }
    if container.cgroup.is_some() {
        // Kills whatever is left in the group (exec'd processes, or what a
        // container without a PID namespace of its own left behind), then rmdir.
        cgroups::open(container.cgroup.as_ref())?.remove()?;
    }
    hooks::run_logged(
        container.spec.hooks().as_ref(),
        hooks::Point::Poststop,
        &container.oci_state(Status::Stopped)?,
    );
    state::remove_dir(&container.dir)
}
// ANCHOR_END: delete

/// Kills the container's process with SIGKILL and waits until it is gone.
/// Only the process `create` started (same start time): a PID reused since
/// by another process, perhaps the engine's own, is left alone.
fn stop(container: &Container) -> Result<()> {
    if !container.alive() {
        return Ok(());
    }
    if let Some(pid) = container.pid {
        let pid = Pid::from_raw(pid);
        say!("kill({pid}, SIGKILL)");
        let _ = send(pid, Signal::SIGKILL);
        // A frozen process acts on SIGKILL only once thawed.
        if cgroups::is_frozen(container.cgroup.as_ref()) {
            cgroups::open(container.cgroup.as_ref())?.thaw()?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while container.alive() {
            // Reap it if it is our own child (`run`).
            let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
            if Instant::now() > deadline {
                bail!(
                    "container {} did not die within 10 s of SIGKILL",
                    container.id
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// `run`: create + start + wait, then delete. The runtime stays as the
/// container's parent, forwards signals (chapter 2) and exits with its code.
pub fn run(store: &Store, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
    if !detach {
        supervisor::block_signals()?;
    }
    let container = create(store, id, opts)?;
    if let Err(err) = start(store, id) {
        let _ = delete(store, id, true);
        return Err(err);
    }
    if detach {
        return Ok(0);
    }
    let pid = Pid::from_raw(container.pid.context("created container without a pid")?);
    let code = supervisor::supervise(pid, Reap::MainOnly);
    delete(store, id, true)?;
    code
}

/// What `exec` takes besides the id.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    /// `--preserve-fds N`, as for `create`.
    pub preserve_fds: u32,
}

/// Appends `VAR=value` pairs to the process's environment.
fn add_env(process: &mut Process, extra: Vec<String>) {
    if extra.is_empty() {
        return;
    }
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(extra);
    process.set_env(Some(env));
}

/// The process `exec` runs: `--process FILE`, or the container's own
/// process with the arguments (and `--cwd`, `--env`) replaced.
fn exec_process(container: &Container, opts: &ExecOptions) -> Result<Process> {
    if let Some(path) = &opts.process {
        let text = fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let mut json = serde_json::Deserializer::from_str(&text);
        return serde_path_to_error::deserialize(&mut json).map_err(|err| {
            anyhow::anyhow!(
                "invalid {}: field `{}`: {}",
                path.display(),
                err.path(),
                err.inner()
            )
        });
    }
    if opts.args.is_empty() {
        bail!("exec needs a command: exec ID CMD [ARGS...] or exec --process FILE ID");
    }
    let mut process = container.spec.process().clone().unwrap_or_default();
    process.set_args(Some(opts.args.clone()));
    process.set_terminal(Some(opts.tty));
    if let Some(cwd) = &opts.cwd {
        process.set_cwd(cwd.clone());
    }
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(opts.env.iter().cloned());
    process.set_env(Some(env));
    Ok(process)
}

/// `exec`: runs another process in a running container: in its cgroup and
/// namespaces, with its process settings (user, capabilities, seccomp).
pub fn exec(store: &Store, id: &str, opts: &ExecOptions) -> Result<i32> {
    let container = store.load(id)?;
    let status = container.status();
    if !matches!(status, Status::Created | Status::Running) {
        bail!("cannot exec in container {id}: it is {status}");
    }
    let mut process = exec_process(&container, opts)?;
    let pass_fds = PassFds::new(opts.preserve_fds);
    add_env(&mut process, pass_fds.env());
    if process.terminal().unwrap_or(false) && opts.console_socket.is_none() {
        bail!("exec with a terminal needs --console-socket");
    }
    let filter = seccomp_filter(&container.spec)?;
    let pid = container.pid.context("container without a pid")?;
    let console = opts
        .console_socket
        .as_deref()
        .map(crate::console::open_and_send)
        .transpose()?;
    if !opts.detach {
        supervisor::block_signals()?;
    }
    // Opened now, in the runtime's mount namespace (the child joins the
    // container's, where the path would lead elsewhere).
    let mut pid_file = opts
        .pid_file
        .as_deref()
        .map(|path| {
            File::create(path)
                .with_context(|| format!("failed to create the pid file {}", path.display()))
        })
        .transpose()?;
    let cgroup = cgroups::open(container.cgroup.as_ref())?;
    let mut namespaces = namespaces::open_all_of(pid)?;
    // A joined PID namespace applies to the caller's children only: the
    // runtime joins it; the child joins the others.
    if let Some(i) = namespaces.iter().position(|(k, _, _)| *k == Kind::Pid) {
        let (kind, file, path) = namespaces.remove(i);
        namespaces::join(kind, &file, &path)?;
    }
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).context("failed to create the exec pipe")?;
    let child = process::spawn(CloneFlags::empty(), move || {
        let result = namespaces::join_all(&namespaces)
            .and_then(|()| exec_child(&process, filter.as_ref(), console.as_ref(), pass_fds));
        let err = match result {
            Ok(never) => match never {},
            Err(err) => err,
        };
        let mut pipe = File::from(ready_w);
        let _ =
            std::io::Write::write_all(&mut pipe, format!("{}{err:#}", FAILED as char).as_bytes());
        std::process::exit(process::exit_code_for(&err))
    })?;
    // Into the container's cgroup while it waits, before it runs anything:
    // the limits apply from its first instruction. The runtime stays outside.
    cgroup.add(child.pid())?;
    let pid = child.release()?;
    // The pipe closes on a successful execve (close-on-exec) with nothing written.
    let mut message = String::new();
    File::from(ready_r)
        .read_to_string(&mut message)
        .context("failed to read the exec pipe")?;
    if let Some(text) = message.strip_prefix(FAILED as char) {
        let _ = waitpid(pid, None);
        bail!("{text}");
    }
    if let Some(file) = pid_file.as_mut() {
        std::io::Write::write_all(file, pid.to_string().as_bytes())
            .context("failed to write the pid file")?;
    }
    if opts.detach {
        return Ok(0);
    }
    supervisor::supervise(pid, Reap::MainOnly)
}

fn exec_child(
    process: &Process,
    filter: Option<&libseccomp::ScmpFilterContext>,
    console: Option<&std::os::fd::OwnedFd>,
    pass_fds: PassFds,
) -> Result<std::convert::Infallible> {
    nix::sys::prctl::set_pdeathsig(None).context("failed to clear PR_SET_PDEATHSIG")?;
    // Nothing of the runtime's (or its caller's) goes through execve.
    hardening::close_on_exec_from(pass_fds.first_closed())?;
    if let Some(slave) = console {
        crate::console::attach(slave)?;
    }
    // The process's own limits, not the runtime's (raising a hard limit
    // needs CAP_SYS_RESOURCE: before the capabilities go).
    user::set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    let caps = process.capabilities().as_ref();
    capabilities::drop_bounding(caps)?;
    if !process.no_new_privileges().unwrap_or(false) {
        if let Some(filter) = filter {
            seccomp::load(filter)?;
        }
    }
    user::switch(process)?;
    capabilities::apply(caps)?;
    user::no_new_privileges(process)?;
    std::env::set_current_dir(process.cwd())
        .with_context(|| format!("cannot chdir to {}", process.cwd().display()))?;
    hardening::check_cwd(process.cwd())?;
    container_init::set_env(process.env().as_deref().unwrap_or_default());
    container_init::finish(process, filter)
}

/// PIDs (host numbering) of the container's processes: those in its cgroup
/// (`cgroup.procs`), exec'd ones included.
pub fn processes(container: &Container) -> Result<Vec<i32>> {
    let cgroup = cgroups::open(container.cgroup.as_ref())?;
    let mut pids: Vec<i32> = cgroup.procs()?.into_iter().map(Pid::as_raw).collect();
    pids.sort();
    Ok(pids)
}

/// `ps [--format json] ID`.
pub fn ps(store: &Store, id: &str, json: bool) -> Result<String> {
    let container = store.load(id)?;
    let pids = processes(&container)?;
    if json {
        return Ok(serde_json::to_string(&pids)?);
    }
    let mut out = String::from("PID   CMD\n");
    for pid in pids {
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        out.push_str(&format!("{pid:<5} {}\n", cmd.trim_end()));
    }
    Ok(out)
}

/// `list [--format json] [-q]`.
pub fn list(store: &Store, json: bool, quiet: bool) -> Result<String> {
    let mut containers = Vec::new();
    for id in store.ids()? {
        match store.load(&id) {
            Ok(c) => containers.push(c),
            Err(err) => logging::warn(&format!("{err:#}")),
        }
    }
    if quiet {
        return Ok(containers.iter().map(|c| format!("{}\n", c.id)).collect());
    }
    if json {
        let all: Vec<_> = containers.iter().map(Container::report).collect();
        return Ok(serde_json::to_string(&all)?);
    }
    let mut out = format!(
        "{:<12} {:<8} {:<8} {:<40} {}\n",
        "ID", "PID", "STATUS", "BUNDLE", "CREATED"
    );
    for c in &containers {
        let status = c.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            c.pid.unwrap_or(0)
        };
        out.push_str(&format!(
            "{:<12} {:<8} {:<8} {:<40} {}\n",
            c.id,
            pid,
            status,
            c.bundle.display(),
            c.created
        ));
    }
    Ok(out)
}

/// What `pause` and `resume` ask of the cgroup freezer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freezer {
    Freeze,
    Thaw,
}

/// `pause` / `resume`: freeze or thaw every process of the container.
pub fn pause(store: &Store, id: &str, action: Freezer) -> Result<()> {
    let container = store.load(id)?;
    let status = container.status();
    let (from, verb) = match action {
        Freezer::Freeze => (Status::Running, "pause"),
        Freezer::Thaw => (Status::Paused, "resume"),
    };
    if status != from {
        bail!("cannot {verb} container {id}: it is {status}");
    }
    let cgroup = cgroups::open(container.cgroup.as_ref())?;
    match action {
        Freezer::Freeze => cgroup.freeze(),
        Freezer::Thaw => cgroup.thaw(),
    }
}
