//! Running the chapter binaries: with a time limit, as root or as `nobody`, in
//! the foreground or in the background while the test inspects them.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::paths;

/// The default time limit for one command.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The exit code, or 128 + signal when it was killed (as a shell reports it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Fails unless the exit code is `code`, showing both streams.
    pub fn expect_code(&self, code: i32) -> Result<&Self> {
        if self.code != code {
            bail!(
                "expected exit code {code}, got {}\nstdout: {}\nstderr: {}",
                self.code,
                self.stdout,
                self.stderr
            );
        }
        Ok(self)
    }
}

/// A `Command` for a chapter binary with arguments.
pub fn chapter(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(paths::bin(name));
    cmd.args(args);
    cmd
}

/// Starts `cmd` with stdin closed and stdout and stderr piped to us.
fn spawn_piped(cmd: &mut Command) -> Result<Child> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {cmd:?}"))
}

/// Runs `cmd` to the end with stdin closed, killing it after `timeout`.
pub fn output_within(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let child = spawn_piped(&mut cmd)?;
    collect(child, timeout).with_context(|| format!("while running {cmd:?}"))
}

/// [`output_within`] with the default time limit.
pub fn output(cmd: Command) -> Result<Output> {
    output_within(cmd, TIMEOUT)
}

/// Runs a chapter binary to the end: `run("ch01-uts", &["--", "true"])`.
pub fn run(name: &str, args: &[&str]) -> Result<Output> {
    output(chapter(name, args))
}

/// Runs `cmd` as the unprivileged user `nobody` (uid and gid 65534).
///
/// The checkout may live where `nobody` cannot go: beneath a home directory
/// such as `/root` (mode 0700), where `execve(2)` fails with `EACCES` before
/// the program could say anything. So the program is copied first, with what
/// it reads, into a fresh directory `nobody` can enter, and run from there:
/// a chapter binary alone (it needs nothing of the checkout to find that it
/// is not root), a script with the whole `scripts/` directory beside it at
/// `<copy>/scripts/` (a script sources `scripts/lib.sh` and finds the
/// checkout as `scripts/..`, which is then the copy: what lies beyond its
/// root check, such as `build/rootfs`, is not there, as it is out of reach
/// for `nobody` in such a checkout anyway). Arguments, environment changes
/// and the working directory are kept (without one, the copy's directory).
/// The copy is removed afterwards.
pub fn as_nobody(cmd: Command) -> Result<Output> {
    let copy = NobodyCopy::of(Path::new(cmd.get_program()))?;
    let mut run = Command::new(&copy.program);
    run.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => run.env(key, value),
            None => run.env_remove(key),
        };
    }
    run.current_dir(cmd.get_current_dir().unwrap_or(copy.dir.path()));
    // std drops root's supplementary groups (setgroups) before setuid.
    run.uid(65534).gid(65534);
    output(run)
}

/// A copy of a program (and, for a script, of `scripts/`) in a temporary
/// directory of mode 0755 that `nobody` can reach; removed on drop.
struct NobodyCopy {
    dir: tempfile::TempDir,
    program: PathBuf,
}

impl NobodyCopy {
    fn of(program: &Path) -> Result<NobodyCopy> {
        let dir = tempfile::Builder::new()
            .prefix("cfs-nobody-")
            .tempdir()
            .context("failed to create a directory for a program run as nobody")?;
        reachable(dir.path())?;
        let scripts = paths::workspace().join("scripts");
        let copied = match program.strip_prefix(&scripts) {
            Ok(rest) => {
                copy_tree(&scripts, &dir.path().join("scripts"))?;
                dir.path().join("scripts").join(rest)
            }
            Err(_) => {
                let name = program
                    .file_name()
                    .with_context(|| format!("{} names no file", program.display()))?;
                let to = dir.path().join(name);
                fs::copy(program, &to).with_context(|| {
                    format!("failed to copy {} to {}", program.display(), to.display())
                })?;
                to
            }
        };
        Ok(NobodyCopy {
            dir,
            program: copied,
        })
    }
}

/// Makes `dir` and each of its ancestors reachable by anyone, or says why not.
fn reachable(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("failed to chmod 0755 {}", dir.display()))?;
    for ancestor in dir.ancestors().skip(1) {
        let mode = fs::metadata(ancestor)
            .with_context(|| format!("failed to stat {}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            bail!(
                "nobody cannot enter {} (mode {:o}): point TMPDIR at a directory anyone can reach",
                ancestor.display(),
                mode & 0o7777
            );
        }
    }
    Ok(())
}

/// Copies the files and directories beneath `from` to `to`, keeping modes.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("failed to create {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("failed to chmod 0755 {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("failed to read {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst).with_context(|| {
                format!("failed to copy {} to {}", src.display(), dst.display())
            })?;
        }
    }
    Ok(())
}

/// A command started in the background, killed (by its PID) if the test
/// drops it before it ends.
pub struct Background {
    child: Option<Child>,
}

impl Background {
    /// Starts `cmd` with piped output.
    pub fn start(mut cmd: Command) -> Result<Self> {
        Ok(Background {
            child: Some(spawn_piped(&mut cmd)?),
        })
    }

    /// The PID of the process we started.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0))
    }

    /// Sends `signal` to the process we started.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        kill(self.pid(), signal)
            .with_context(|| format!("failed to send {signal} to {}", self.pid()))
    }

    /// Waits up to `timeout` for the first child of the process we started
    /// (a runtime's container). When the process ends first, fails with its
    /// exit code and output, as [`Output::expect_code`] does.
    pub fn first_child(&mut self, timeout: Duration) -> Result<Pid> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = crate::kernel::children(self.pid()).first() {
                return Ok(*child);
            }
            let ended = match self.child.as_mut() {
                Some(child) => child.try_wait()?.is_some(),
                None => bail!("already finished"),
            };
            if ended {
                let child = self.child.take().context("already finished")?;
                let out = collect(child, timeout)?;
                bail!(
                    "it ended (exit code {}) before it started a child process\nstdout: {}\nstderr: {}",
                    out.code,
                    out.stdout,
                    out.stderr
                );
            }
            if Instant::now() > deadline {
                bail!("no child process within {timeout:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the end, with a time limit.
    pub fn finish(mut self, timeout: Duration) -> Result<Output> {
        let child = self.child.take().context("already finished")?;
        collect(child, timeout)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long the output of a process that ended is read on: what it left
/// running (a half-written runtime's container, say) may hold its stdout or
/// stderr open, and must not keep the test waiting for end-of-file.
const AFTER_EXIT: Duration = Duration::from_secs(2);

fn collect(mut child: Child, timeout: Duration) -> Result<Output> {
    let stdout = Reader::start(child.stdout.take());
    let stderr = Reader::start(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {timeout:?}; killed pid {}", child.id());
        }
        thread::sleep(Duration::from_millis(10));
    };
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1);
    let until = Instant::now() + AFTER_EXIT;
    let (stdout, stdout_done) = stdout.text(until);
    let (mut stderr, stderr_done) = stderr.text(until);
    if !(stdout_done && stderr_done) {
        stderr.push_str(&format!(
            "\n[test harness: pid {} exited, but a process it left running still holds its \
             output open; stopped reading after {AFTER_EXIT:?}]\n",
            child.id()
        ));
    }
    Ok(Output {
        code,
        stdout,
        stderr,
    })
}

/// A thread reading a stream to its end into a buffer that can be read
/// before the end.
struct Reader {
    text: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    thread: thread::JoinHandle<()>,
}

impl Reader {
    fn start<R: Read + Send + 'static>(stream: Option<R>) -> Reader {
        let text = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = text.clone();
        let thread = thread::spawn(move || {
            let Some(mut stream) = stream else { return };
            let mut chunk = [0u8; 8192];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Ok(mut text) = shared.lock() {
                            text.extend_from_slice(&chunk[..n]);
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Reader { text, thread }
    }

    /// What was read by `until` at the latest, and whether that is all.
    fn text(self, until: Instant) -> (String, bool) {
        while !self.thread.is_finished() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let done = self.thread.is_finished();
        let bytes = self.text.lock().map(|t| t.clone()).unwrap_or_default();
        (String::from_utf8_lossy(&bytes).into_owned(), done)
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("condition not met within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The arguments of a memory hog: busybox `dd` reads one block into one
/// buffer, so `bs=64M` makes it allocate and fill 64 MiB.
pub fn dd_argv(size: &str) -> Vec<String> {
    [
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        &format!("bs={size}"),
        "count=1",
    ]
    .map(String::from)
    .to_vec()
}
