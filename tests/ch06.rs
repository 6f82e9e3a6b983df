//! Chapter 6: an OCI runtime. Each test writes a bundle (config.json made by
//! the runtime's own `spec`, then edited), drives the runtime with runc's
//! command line, and checks the result from outside (`/proc/<pid>/status`,
//! `/proc/<pid>/ns/*`, the cgroup files, the state directory, the mount
//! table) or from inside (busybox commands in the container).
//!
//! Each bundle gets a `cgroupsPath` of its own, relative (`cfs-test-<pid>-<n>`,
//! beneath the test's own cgroup), so that test runs of other people on the
//! same machine, whose containers have the same ids, never ask for the same
//! cgroup; the cgroup tests at the end also give absolute paths beneath it.
//!
//! The tests declared with `check` are also lab ch06's checks (`scripts/lab
//! check ch06`): each says what it verifies and gives a hint for when it fails.

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cfs_tests::bundle::Bundle;
use cfs_tests::kernel::{
    assert_mounts_unchanged, cgroup_procs, cgroups_named, children, cpu_ticks, last_cgroup_dir,
    mounts, ns_inode, remove_cgroups_named, state,
};
use cfs_tests::run::{chapter, dd_argv, output, output_within, wait_for, Background, Output};
use cfs_tests::{bail, check, ensure, paths, plain, root, Context, Result};
use ch04_cgroups::cgroups::{Hierarchies, Version};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::Pid;
use serde_json::{json, Value};

const BIN: &str = "ch06-full-runtime";

/// Fails unless `out` is a failure whose stderr says `text`.
fn fails_with(out: &Output, text: &str) -> Result<()> {
    ensure!(
        out.code != 0 && out.stderr.contains(text),
        "expected a failure saying {text:?}, got {out:?}"
    );
    Ok(())
}

/// A line of `/proc/<pid>/status`, e.g. `CapEff`.
fn status_field(pid: &str, field: &str) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The bit mask of a list of capability numbers, as `/proc/<pid>/status` shows it.
fn cap_mask(numbers: &[u32]) -> String {
    format!(
        "{:016x}",
        numbers.iter().fold(0u64, |mask, n| mask | (1u64 << n))
    )
}

/// Runs `script` in a container made from `edit`ed default config; returns stdout.
fn run_script(script: &str, edit: impl FnOnce(&mut Value)) -> Result<String> {
    let mut bundle = Bundle::new(&["sh", "-c", script])?;
    edit(&mut bundle.config);
    bundle.save()?;
    let out = bundle.run("c")?;
    out.expect_code(0)?;
    Ok(out.stdout)
}

fn lifecycle() -> Result<()> {
    let before = mounts()?;
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo started; while :; do sleep 0.1; done",
    ])?;
    b.create("life")?.expect_code(0)?;
    let state = b.state("life")?;
    ensure!(state["status"] == "created", "after create: {state}");
    let pid = state["pid"].to_string();
    // The process exists, set up, but has not executed the command yet: it is
    // still the runtime's binary (a copy no one can write), blocked on exec.fifo.
    let exe = fs::read_link(format!("/proc/{pid}/exe"))?;
    ensure!(
        exe.ends_with(BIN) && runs_from_a_protected_copy(&pid),
        "created process already runs {}",
        exe.display()
    );
    ensure!(b.container_stdout("life")?.is_empty(), "command ran early");
    ensure!(
        b.state.path().join("life/exec.fifo").exists(),
        "no exec.fifo"
    );
    // In its cgroup already, before it runs the command.
    let dirs = b.cgroup_dirs()?;
    ensure!(!dirs.is_empty(), "no cgroup {}", b.cgroup_name());
    for dir in &dirs {
        ensure!(
            cgroup_procs(dir)? == [Pid::from_raw(pid.parse()?)],
            "{}: {:?}",
            dir.display(),
            cgroup_procs(dir)?
        );
    }

    let started = b.rt(&["start", "life"])?;
    if started.code != 0 {
        // What the container's process said before it died (its stderr is
        // a file of the bundle) is what names the mistake.
        let said = fs::read_to_string(b.path().join("life.err")).unwrap_or_default();
        bail!(
            "start: expected exit code 0, got {}\nstderr: {}\nthe container's stderr: {said}",
            started.code,
            started.stderr
        );
    }
    ensure!(b.status("life")? == "running", "after start");
    wait_for(Duration::from_secs(5), || {
        b.container_stdout("life").ok().filter(|s| s == "started\n")
    })?;
    ensure!(
        !b.state.path().join("life/exec.fifo").exists(),
        "exec.fifo left after start"
    );
    fails_with(&b.rt(&["start", "life"])?, "it is running, not created")?;

    b.rt(&["kill", "life", "SIGTERM"])?.expect_code(0)?;
    wait_for(Duration::from_secs(5), || {
        (b.status("life").ok()? == "stopped").then_some(())
    })?;
    b.rt(&["delete", "life"])?.expect_code(0)?;

    // A created container whose process never answers on exec.fifo (stopped
    // here by SIGSTOP): start gives up after its 10 s, in one line, and
    // leaves it created.
    b.create("stalled")?.expect_code(0)?;
    let stalled_pid = b.pid("stalled")?;
    let stalled = Pid::from_raw(stalled_pid.parse()?);
    nix::sys::signal::kill(stalled, nix::sys::signal::Signal::SIGSTOP)?;
    // Stopped for real before start opens the fifo: a process that has not
    // yet run to take the SIGSTOP (a loaded machine) would see start's open
    // end its own open(O_WRONLY) first, then, continued after start gave up,
    // die of SIGPIPE on its write, and the container would be stopped.
    wait_for(Duration::from_secs(10), || {
        (cfs_tests::kernel::state(&stalled_pid) == Some('T')).then_some(())
    })
    .context("the container's process did not stop on SIGSTOP")?;
    let out = output_within(b.cmd(&["start", "stalled"]), Duration::from_secs(30));
    nix::sys::signal::kill(stalled, nix::sys::signal::Signal::SIGCONT)?;
    let out = out.context(
        "start of a created container whose process is stopped did not return within 30 s",
    )?;
    fails_with(&out, "did not answer on exec.fifo")?;
    ensure!(
        b.status("stalled")? == "created",
        "after a start that gave up: {}",
        b.status("stalled")?
    );
    b.rt(&["delete", "--force", "stalled"])?.expect_code(0)?;
    ensure!(
        b.leftovers()?.is_empty(),
        "state left: {:?}",
        b.leftovers()?
    );
    ensure!(
        b.cgroup_dirs()?.is_empty(),
        "cgroup left: {:?}",
        b.cgroup_dirs()?
    );
    let out = b.rt(&["state", "life"])?;
    fails_with(&out, "does not exist")?;
    assert_mounts_unchanged(&before)
}

fn signal_names() -> Result<()> {
    for signal in ["TERM", "SIGTERM", "15", "term"] {
        let b = Bundle::new(&[
            "sh",
            "-c",
            "trap 'exit 0' TERM; while :; do sleep 0.1; done",
        ])?;
        b.start("s")?;
        std::thread::sleep(Duration::from_millis(100));
        b.rt(&["kill", "s", signal])?.expect_code(0)?;
        wait_for(Duration::from_secs(5), || {
            (b.status("s").ok()? == "stopped").then_some(())
        })
        .with_context(|| format!("kill s {signal}"))?;
    }
    let b = Bundle::new(&["true"])?;
    let out = b.rt(&["kill", "nope", "NOSUCHSIG"])?;
    ensure!(out.code != 0, "{out:?}");
    Ok(())
}

fn kill_all_reaches_every_process() -> Result<()> {
    // PID 1 (sleep, no handler) ignores TERM; its sibling sleep does not.
    let b = Bundle::new(&["sh", "-c", "sleep 30 & exec sleep 31"])?;
    let pid1 = b.start("k")?;
    let sibling = wait_for(Duration::from_secs(5), || {
        let out = b.rt(&["ps", "--format", "json", "k"]).ok()?;
        let pids: Vec<i64> = serde_json::from_str(&out.stdout).ok()?;
        pids.into_iter().map(|p| p.to_string()).find(|p| *p != pid1)
    })?;
    // Dead means gone or a zombie (PID 1 here never reaps).
    let dead = |pid: &str| matches!(state(pid), None | Some('Z'));
    b.rt(&["kill", "k", "TERM"])?.expect_code(0)?;
    std::thread::sleep(Duration::from_millis(200));
    ensure!(!dead(&sibling), "TERM to PID 1 alone reached {sibling}");
    b.rt(&["kill", "--all", "k", "TERM"])?.expect_code(0)?;
    wait_for(Duration::from_secs(5), || dead(&sibling).then_some(()))
        .context("kill --all did not reach the second process")?;
    ensure!(!dead(&pid1), "PID 1 has no handler for TERM and lives on");
    Ok(())
}

fn stopped_on_its_own() -> Result<()> {
    // Long enough to be still running when `state` answers under qemu's TCG
    // (scripts/vm-test), where everything is about ten times slower.
    let b = Bundle::new(&["sh", "-c", "sleep 3"])?;
    b.start("own")?;
    ensure!(b.status("own")? == "running", "just started");
    wait_for(Duration::from_secs(20), || {
        (b.status("own").ok()? == "stopped").then_some(())
    })?;
    ensure!(
        b.state("own")?["pid"] == 0,
        "a stopped container has no pid"
    );
    b.rt(&["delete", "own"])?.expect_code(0)?;
    Ok(())
}

fn state_is_creating_during_create() -> Result<()> {
    // A createRuntime hook runs while create is under way: it asks the
    // runtime for the state of the very container being created.
    let mut b = Bundle::new(&["true"])?;
    let seen = b.path().join("seen");
    let state_cmd = format!(
        "{} --root {} state mid > {}",
        paths::bin(BIN).display(),
        b.state.path().display(),
        seen.display()
    );
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", state_cmd]}]});
    b.save()?;
    b.create("mid")?.expect_code(0)?;
    let during: Value = serde_json::from_str(&fs::read_to_string(&seen)?)?;
    ensure!(during["status"] == "creating", "during create: {during}");
    ensure!(b.status("mid")? == "created", "after create");
    Ok(())
}

fn delete_rules() -> Result<()> {
    let b = Bundle::new(&["sleep", "30"])?;
    let pid = b.start("d")?;
    fails_with(&b.rt(&["delete", "d"])?, "use --force")?;
    ensure!(
        b.status("d")? == "running",
        "a refused delete changed the container"
    );
    ensure!(Path::new(&format!("/proc/{pid}")).exists());
    b.rt(&["delete", "--force", "d"])?.expect_code(0)?;
    ensure!(
        matches!(state(&pid), None | Some('Z')),
        "process {pid} survived delete --force"
    );
    ensure!(b.leftovers()?.is_empty());
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    // Engines call it on ids that may be gone already.
    b.rt(&["delete", "--force", "never-existed"])?
        .expect_code(0)?;
    let out = b.rt(&["delete", "never-existed"])?;
    fails_with(&out, "does not exist")?;
    // A created container (its command never ran) may be deleted without force.
    b.create("c")?.expect_code(0)?;
    b.rt(&["delete", "c"])?.expect_code(0)?;
    ensure!(b.leftovers()?.is_empty());
    Ok(())
}

/// One step of [`kill_and_delete_answer_as_runc`]: its exit code and which
/// of the words engines match its stderr holds.
#[derive(Debug, PartialEq)]
struct Answer {
    step: String,
    code: i32,
    words: Vec<&'static str>,
}

/// The words containerd's shim and CRI-O look for in a runtime's errors.
const RUNC_WORDS: [&str; 3] = [
    "container not running",
    "does not exist",
    "that is not stopped",
];

/// Drives `runtime` (a command with its `--root`) through the kill and
/// delete cases on `b`'s bundle; returns each step's answer.
fn kill_delete_answers(b: &Bundle, runtime: &[String]) -> Result<Vec<Answer>> {
    let mut answers = Vec::new();
    let rt = |args: &[&str]| -> Result<Output> {
        let mut cmd = Command::new(&runtime[0]);
        cmd.args(&runtime[1..]).args(args).current_dir(b.path());
        cmd.stdin(Stdio::null());
        output(cmd)
    };
    let mut step = |args: &[&str]| -> Result<()> {
        let out = rt(args)?;
        answers.push(Answer {
            step: args.join(" "),
            code: out.code,
            words: RUNC_WORDS
                .into_iter()
                .filter(|w| out.stderr.contains(w))
                .collect(),
        });
        Ok(())
    };
    // The container's stdio on /dev/null: it must not hold a pipe we wait on.
    let create = |id: &str| -> Result<()> {
        let mut cmd = Command::new(&runtime[0]);
        cmd.args(&runtime[1..])
            .args(["create", "--bundle", "."])
            .arg(id);
        cmd.current_dir(b.path()).stdin(Stdio::null());
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        ensure!(cmd.status()?.success(), "{runtime:?} create {id} failed");
        Ok(())
    };
    let stopped = |id: &str| -> Result<()> {
        wait_for(Duration::from_secs(20), || {
            let out = rt(&["state", id]).ok()?;
            let state: Value = serde_json::from_str(&out.stdout).ok()?;
            (state["status"] == "stopped").then_some(())
        })
        .with_context(|| format!("{runtime:?}: {id} did not stop"))
    };
    for args in [
        &["kill", "h2-nope", "KILL"][..],
        &["kill", "--all", "h2-nope", "KILL"],
        &["delete", "h2-nope"],
        &["delete", "--force", "h2-nope"],
    ] {
        step(args)?;
    }
    // Created: signal 0 probes it; delete kills it (its command never ran).
    create("h2-c")?;
    step(&["kill", "h2-c", "0"])?;
    step(&["delete", "h2-c"])?;
    // Running, then stopped: what containerd's shim sends after an exit.
    create("h2-c")?;
    step(&["start", "h2-c"])?;
    step(&["delete", "h2-c"])?;
    step(&["kill", "h2-c", "KILL"])?;
    stopped("h2-c")?;
    step(&["kill", "h2-c", "KILL"])?;
    step(&["kill", "--all", "h2-c", "KILL"])?;
    step(&["delete", "h2-c"])?;
    // Running and paused, deleted with --force.
    create("h2-c")?;
    step(&["start", "h2-c"])?;
    step(&["delete", "--force", "h2-c"])?;
    create("h2-c")?;
    step(&["start", "h2-c"])?;
    step(&["pause", "h2-c"])?;
    step(&["delete", "h2-c"])?;
    step(&["delete", "--force", "h2-c"])?;
    // Killed before start.
    create("h2-c")?;
    step(&["kill", "h2-c", "KILL"])?;
    stopped("h2-c")?;
    step(&["kill", "h2-c", "KILL"])?;
    step(&["delete", "h2-c"])?;
    Ok(answers)
}

/// A runtime started inside the container's own cgroup (a misplaced shim,
/// say) must not freeze or kill itself with the container: it refuses, with
/// a message, instead of dying without a word or hanging.
fn runtime_never_signals_itself() -> Result<()> {
    let b = Bundle::new(&["sleep", "30"])?;
    b.start("self")?;
    let dirs = b.cgroup_dirs()?;
    ensure!(!dirs.is_empty(), "no cgroup for the container");
    // The shell joins every directory of the container's cgroup, then
    // becomes the runtime (same PID).
    let join: String = dirs
        .iter()
        .map(|d| format!("echo $$ > {}/cgroup.procs && ", d.display()))
        .collect();
    for args in ["kill --all self KILL", "delete --force self"] {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{join}exec \"$0\" --root \"$1\" {args}"))
            .arg(paths::bin(BIN))
            .arg(b.state.path());
        let out = cfs_tests::run::output_within(cmd, Duration::from_secs(20))?;
        fails_with(&out, "holds this runtime")?;
    }
    let status = b.status("self")?;
    ensure!(status == "running", "the container was harmed: {status}");
    Ok(())
}

/// runc itself, on the same bundle with a state root of the test's own, is
/// the reference: containerd's shim and CRI-O read exit codes and words.
fn kill_and_delete_answer_as_runc() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    // Relative: runc puts it beneath its own cgroup, never at a root. The
    // two runtimes run one after the other in it.
    let relative = b.cgroup_name();
    b.config["linux"]["cgroupsPath"] = json!(relative);
    b.save()?;
    let runc_root = tempfile::Builder::new().prefix("cfs-h2-runc").tempdir()?;
    let runc = vec![
        "runc".to_string(),
        "--root".to_string(),
        runc_root.path().to_string_lossy().into_owned(),
    ];
    let expected = kill_delete_answers(&b, &runc);
    // Whatever happened, runc's containers go.
    let _ = Command::new("runc")
        .args(&runc[1..])
        .args(["delete", "--force", "h2-c"])
        .output();
    let expected = expected?;
    let ours = vec![
        paths::bin(BIN).to_string_lossy().into_owned(),
        "--root".to_string(),
        b.state.path().to_string_lossy().into_owned(),
    ];
    b.ids.borrow_mut().push("h2-c".to_string());
    let got = kill_delete_answers(&b, &ours)?;
    for (want, have) in expected.iter().zip(&got) {
        ensure!(want == have, "runc answered {want:?}, chapter 6 {have:?}");
    }
    ensure!(expected.len() == got.len(), "{expected:?} vs {got:?}");
    // The case that blocked containerd's CRI: --all of a stopped container.
    ensure!(
        expected
            .iter()
            .any(|a| a.step == "kill --all h2-c KILL" && a.code == 0),
        "runc no longer accepts kill --all of a stopped container: {expected:?}"
    );
    Ok(())
}

/// Whether `/proc/<pid>/exe` is a file no one can write: a sealed memfd, or
/// a file on a read-only mount (chapter 6's `hardening`).
fn runs_from_a_protected_copy(pid: &str) -> bool {
    let exe = format!("/proc/{pid}/exe");
    let memfd = fs::read_link(&exe).is_ok_and(|p| p.to_string_lossy().starts_with("/memfd:"));
    let read_only = nix::sys::statvfs::statvfs(exe.as_str())
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    memfd || read_only
}

/// A host directory with a file `marker` in it: what a leaked descriptor
/// would let the container read.
fn host_dir() -> Result<(tempfile::TempDir, fs::File)> {
    let host = tempfile::Builder::new().prefix("cfs-h2-host").tempdir()?;
    fs::write(host.path().join("marker"), "host secret\n")?;
    let dir = fs::File::open(host.path())?;
    Ok((host, dir))
}

/// `cmd` with `dir` open as descriptor `fd` (inherited, as from a careless caller).
fn with_fd(mut cmd: Command, dir: &fs::File, fd: RawFd) -> Command {
    use std::os::unix::process::CommandExt;
    let raw = dir.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; it runs in the forked child only.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
            let rc = if raw == fd {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, fd)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// The descriptors a busybox `ls /proc/self/fd` lists, one per line.
fn fd_list(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// runc's CVE-2024-21626: a descriptor the runtime inherits must not reach
/// the container, neither as an open descriptor nor as its working directory.
fn no_descriptor_leaks_into_the_container() -> Result<()> {
    let (_host, dir) = host_dir()?;
    let probe =
        "ls /proc/self/fd; cat /proc/self/fd/7/marker; cd /proc/self/fd/7/.. && cat */marker; true";
    let b = Bundle::new(&["sh", "-c", probe])?;
    b.ids.borrow_mut().push("leak".into());
    let out = output(with_fd(b.cmd(&["run", "leak"]), &dir, 7))?;
    out.expect_code(0)?;
    ensure!(!out.stdout.contains("host secret"), "fd 7 leaked: {out:?}");
    ensure!(fd_list(&out.stdout) == ["0", "1", "2", "3"], "{out:?}");
    // The working directory through the leaked descriptor.
    let mut b = Bundle::new(&["cat", "marker"])?;
    b.config["process"]["cwd"] = json!("/proc/self/fd/7");
    b.save()?;
    b.ids.borrow_mut().push("cwd".into());
    let out = output(with_fd(b.cmd(&["run", "cwd"]), &dir, 7))?;
    fails_with(&out, "outside the container's root")?;
    ensure!(!out.stdout.contains("host secret"), "{out:?}");
    ensure!(b.leftovers()?.is_empty(), "{:?}", b.leftovers()?);
    // exec: the same for a process joining a running container.
    let b = Bundle::new(&["sleep", "30"])?;
    b.start("ex")?;
    let out = output(with_fd(
        b.cmd(&["exec", "ex", "ls", "/proc/self/fd"]),
        &dir,
        7,
    ))?;
    out.expect_code(0)?;
    ensure!(
        fd_list(&out.stdout) == ["0", "1", "2", "3"],
        "exec: {out:?}"
    );
    Ok(())
}

/// What the caller asks to pass does pass: `--preserve-fds N` and socket
/// activation's `LISTEN_FDS` (with `LISTEN_PID` the runtime's own PID).
fn preserved_and_listen_fds_pass() -> Result<()> {
    let (_host, dir) = host_dir()?;
    let b = Bundle::new(&["cat", "/proc/self/fd/7/marker"])?;
    b.ids.borrow_mut().push("keep".into());
    let out = output(with_fd(
        b.cmd(&["run", "--preserve-fds", "5", "keep"]),
        &dir,
        7,
    ))?;
    out.expect_code(0)?;
    ensure!(out.stdout == "host secret\n", "{out:?}");
    let b = Bundle::new(&[
        "sh",
        "-c",
        "echo $LISTEN_FDS $LISTEN_PID; cat /proc/self/fd/3/marker",
    ])?;
    b.ids.borrow_mut().push("listen".into());
    let bin = paths::bin(BIN);
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "LISTEN_FDS=1 LISTEN_PID=$$ exec \"$@\"", "sh"])
        .arg(&bin)
        .args(["--root", &b.state.path().to_string_lossy(), "run", "listen"])
        .current_dir(b.path());
    let out = output(with_fd(cmd, &dir, 3))?;
    out.expect_code(0)?;
    ensure!(out.stdout == "1 1\nhost secret\n", "{out:?}");
    Ok(())
}

/// runc's CVE-2019-5736: between `create` and `start`, the container's PID 1
/// runs the runtime's code. A process of the container opens it through
/// `/proc/1/exe`, waits until the runtime is gone (PID 1 runs the command),
/// then reopens it for writing through `/proc/self/fd/5`. It must be refused,
/// and the binary (a copy, so that a failure cannot spoil the build) unchanged.
fn runtime_binary_cannot_be_overwritten() -> Result<()> {
    // A ':' in the directory keeps it out of an overlayfs lowerdir list: this
    // test takes the other way, the sealed memfd (the book session, the first).
    let bin_dir = tempfile::Builder::new().prefix("cfs-h2-bin:").tempdir()?;
    let copy = bin_dir.path().join(BIN);
    fs::copy(paths::bin(BIN), &copy)?;
    let original = fs::read(&copy)?;
    let b = Bundle::new(&["sleep", "30"])?;
    let state_root = b.state.path().to_string_lossy().into_owned();
    let runtime = |args: &[&str]| {
        let mut cmd = Command::new(&copy);
        cmd.args(["--root", &state_root])
            .args(args)
            .current_dir(b.path());
        cmd
    };
    b.ids.borrow_mut().push("exe".into());
    let status = runtime(&["create", "exe"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "create failed");
    let probe = "first=$(readlink /proc/1/exe); echo \"pid 1 runs $first\"; \
        exec 5</proc/1/exe || exit; echo opened; \
        while [ \"$(readlink /proc/1/exe)\" = \"$first\" ]; do sleep 0.05; done; \
        if echo pwned >>/proc/self/fd/5; then echo wrote; else echo refused; fi";
    let report = b.path().join("probe.out");
    let status = runtime(&["exec", "--detach", "exe", "sh", "-c", probe])
        .stdin(Stdio::null())
        .stdout(fs::File::create(&report)?)
        .stderr(fs::File::create(b.path().join("probe.err"))?)
        .status()?;
    ensure!(status.success(), "exec failed");
    let read = || fs::read_to_string(&report).unwrap_or_default();
    wait_for(Duration::from_secs(20), || {
        read().contains("opened").then_some(())
    })
    .with_context(|| format!("the probe could not open /proc/1/exe: {}", read()))?;
    output(runtime(&["start", "exe"]))?.expect_code(0)?;
    wait_for(Duration::from_secs(20), || {
        let text = read();
        (text.contains("wrote") || text.contains("refused")).then_some(())
    })
    .with_context(|| format!("the probe did not finish: {}", read()))?;
    let text = read();
    ensure!(text.contains("pid 1 runs /memfd:"), "not the memfd: {text}");
    ensure!(
        !text.contains(&*copy.to_string_lossy()),
        "PID 1 ran the binary on disk: {text}"
    );
    ensure!(text.contains("refused"), "the probe wrote: {text}");
    ensure!(fs::read(&copy)? == original, "the runtime binary changed");
    // exec: the runtime that waits for its process runs from the sealed copy too.
    let bg = Background::start(runtime(&["exec", "exe", "sleep", "5"]))?;
    let pid = bg.pid();
    let exe = wait_for(Duration::from_secs(20), || {
        let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        runs_from_a_protected_copy(&pid.to_string()).then_some(exe)
    })
    .context("exec does not run from a protected copy")?;
    let write = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    ensure!(write.is_err(), "{exe:?} opened for writing");
    bg.signal(nix::sys::signal::Signal::SIGTERM)?;
    let _ = bg.finish(Duration::from_secs(20));
    ensure!(fs::read(&copy)? == original, "the runtime binary changed");
    Ok(())
}

fn run_returns_the_exit_code() -> Result<()> {
    let b = Bundle::new(&["sh", "-c", "echo out; exit 3"])?;
    let out = b.run("r")?;
    out.expect_code(3)?;
    ensure!(out.stdout == "out\n", "{out:?}");
    ensure!(b.leftovers()?.is_empty(), "run leaves no state");
    Ok(())
}

/// Spoils a bundle for one bad-bundle case.
type BreakBundle = Box<dyn Fn(&Bundle) -> Result<()>>;

fn bad_bundles() -> Result<()> {
    let before = mounts()?;
    let cases: Vec<(&str, BreakBundle, &str)> = vec![
        (
            "missing config.json",
            Box::new(|b| Ok(fs::remove_file(b.path().join("config.json"))?)),
            "config.json",
        ),
        (
            "bad JSON",
            Box::new(|b| Ok(fs::write(b.path().join("config.json"), "{ oops")?)),
            "not valid JSON",
        ),
        (
            "unsupported ociVersion",
            Box::new(|b| {
                let mut c = b.config.clone();
                c["ociVersion"] = json!("9.0.0");
                Ok(fs::write(b.path().join("config.json"), c.to_string())?)
            }),
            "ociVersion \"9.0.0\" is not supported",
        ),
        (
            "missing root",
            Box::new(|b| {
                let mut c = b.config.clone();
                c["root"]["path"] = json!("no-such-rootfs");
                Ok(fs::write(b.path().join("config.json"), c.to_string())?)
            }),
            "root.path",
        ),
        (
            "invalid capability",
            Box::new(|b| {
                let mut c = b.config.clone();
                c["process"]["capabilities"]["bounding"] = json!(["CAP_CHOWN", "CAP_FLY"]);
                Ok(fs::write(b.path().join("config.json"), c.to_string())?)
            }),
            "process.capabilities.bounding[1]",
        ),
        (
            "command not in the rootfs",
            Box::new(|b| {
                let mut c = b.config.clone();
                c["process"]["args"] = json!(["no-such-command"]);
                Ok(fs::write(b.path().join("config.json"), c.to_string())?)
            }),
            "command not found: no-such-command",
        ),
        (
            "a resource the host cannot apply",
            Box::new(|b| {
                let mut c = b.config.clone();
                // No such page size anywhere (and no hugetlb hierarchy on v1 here).
                c["linux"]["resources"]["hugepageLimits"] =
                    json!([{"pageSize": "3MB", "limit": 0}]);
                Ok(fs::write(b.path().join("config.json"), c.to_string())?)
            }),
            "linux.resources.hugepageLimits",
        ),
        (
            "memory limit below a page",
            Box::new(|b| {
                let mut c = b.config.clone();
                c["linux"]["resources"]["memory"] = json!({"limit": 100});
                Ok(fs::write(b.path().join("config.json"), c.to_string())?)
            }),
            "below one page",
        ),
    ];
    for (what, break_it, expected) in cases {
        let b = Bundle::new(&["true"])?;
        break_it(&b)?;
        let log = b.path().join("log.json");
        let out = output(b.cmd(&[
            "--log",
            &log.to_string_lossy(),
            "--log-format",
            "json",
            "create",
            "x",
        ]))?;
        ensure!(out.code != 0, "{what}: create succeeded");
        let lines: Vec<&str> = out.stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0].contains(expected),
            "{what}: expected one line with {expected:?}, got {:?}",
            out.stderr
        );
        ensure!(
            b.leftovers()?.is_empty(),
            "{what}: state left behind: {:?}",
            b.leftovers()?
        );
        ensure!(
            b.cgroup_dirs()?.is_empty(),
            "{what}: cgroup left behind: {:?}",
            b.cgroup_dirs()?
        );
        // The same error, as a JSON line where containerd's shim looks.
        let text = fs::read_to_string(&log)?;
        let last: Value = serde_json::from_str(text.lines().last().unwrap_or_default())?;
        ensure!(
            last["level"] == "error" && last["msg"].as_str().unwrap_or("").contains(expected),
            "{what}: log line {last}"
        );
    }
    assert_mounts_unchanged(&before)
}

fn cli_flags() -> Result<()> {
    let out = output(chapter(BIN, &["--version"]))?;
    out.expect_code(0)?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines.len() == 3 && lines[1].starts_with("commit: ") && lines[2].starts_with("spec: 1."),
        "{:?}",
        out.stdout
    );
    let out = output(chapter(BIN, &["--systemd-cgroup", "list"]))?;
    fails_with(&out, "--systemd-cgroup is not supported")?;
    // A misspelt format is refused, not printed as a table.
    for command in [
        &["ps", "--format", "jsn", "x"][..],
        &["list", "--format", "jsn"],
    ] {
        fails_with(&output(chapter(BIN, command))?, "invalid value 'jsn'")?;
    }
    // Engines put global flags first; they must parse with any command.
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_string_lossy().into_owned();
    let out = output(chapter(
        BIN,
        &[
            "--root",
            &root,
            "--log",
            &format!("{root}/log"),
            "--log-format",
            "json",
            "list",
        ],
    ))?;
    out.expect_code(0)?;
    ensure!(out.stdout.starts_with("ID "), "{out:?}");
    Ok(())
}

fn namespaces_new_and_joined() -> Result<()> {
    let b = Bundle::new(&["sleep", "30"])?;
    let pid = b.start("a")?;
    for kind in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        ensure!(
            ns_inode(&pid, kind)? != ns_inode("self", kind)?,
            "the container shares the host's {kind} namespace"
        );
    }
    ensure!(
        ns_inode(&pid, "user")? == ns_inode("self", "user")?,
        "no user namespace was asked for"
    );
    // A second container joins the first one's network namespace by path.
    let mut joiner = Bundle::new(&["sleep", "30"])?;
    for ns in joiner.config["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
    {
        if ns["type"] == "network" {
            ns["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
    }
    joiner.save()?;
    let other = joiner.start("b")?;
    ensure!(
        ns_inode(&other, "net")? == ns_inode(&pid, "net")?,
        "did not join the network namespace"
    );
    ensure!(
        ns_inode(&other, "uts")? != ns_inode(&pid, "uts")?,
        "only net was to be shared"
    );
    Ok(())
}

fn hostname_user_and_groups() -> Result<()> {
    let out = run_script("hostname; id", |c| {
        c["hostname"] = json!("box6");
        c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20]});
    })?;
    ensure!(out == "box6\nuid=1000 gid=1001 groups=10,20\n", "{out:?}");
    Ok(())
}

fn capabilities_all_five_sets() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    // CAP_CHOWN=0, CAP_KILL=5, CAP_NET_BIND_SERVICE=10, CAP_SYS_ADMIN=21
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    });
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.save()?;
    let pid = b.start("caps")?;
    // After execve as uid 1000: ambient caps become permitted and effective.
    for (field, expected) in [
        ("CapBnd", cap_mask(&[0, 5, 10])),
        ("CapInh", cap_mask(&[10])),
        ("CapAmb", cap_mask(&[10])),
        ("CapPrm", cap_mask(&[10])),
        ("CapEff", cap_mask(&[10])),
    ] {
        let actual = status_field(&pid, field)?;
        ensure!(actual == expected, "{field}: {actual}, expected {expected}");
    }
    // As root, the default config's bounding set is what the process gets.
    let out = run_script("grep -E '^Cap(Eff|Bnd)' /proc/self/status", |_| {})?;
    // Every capability this kernel knows: 0 to /proc/sys/kernel/cap_last_cap.
    let last: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")?
        .trim()
        .parse()?;
    let full = cap_mask(&(0..=last).collect::<Vec<_>>());
    ensure!(!out.contains(&full) && out.lines().count() == 2, "{out}");
    let sys_admin = 1u64 << 21;
    for line in out.lines() {
        let hex = line.split_whitespace().last().unwrap_or("0");
        let mask = u64::from_str_radix(hex, 16)?;
        ensure!(mask & sys_admin == 0, "CAP_SYS_ADMIN kept: {line}");
    }
    Ok(())
}

fn no_new_privileges_and_seccomp() -> Result<()> {
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x; echo rc=$?; sleep 30"])?;
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.save()?;
    let pid = b.start("sec")?;
    ensure!(status_field(&pid, "NoNewPrivs")? == "1", "NoNewPrivs");
    ensure!(status_field(&pid, "Seccomp")? == "2", "Seccomp mode");
    let out = wait_for(Duration::from_secs(5), || {
        b.container_stdout("sec").ok().filter(|s| s.contains("rc="))
    })?;
    ensure!(out.contains("rc=1"), "mkdir was not refused: {out:?}");
    let err = fs::read_to_string(b.path().join("sec.err"))?;
    ensure!(err.contains("Operation not permitted"), "{err:?}");

    // Without both: no filter, and no_new_privs off.
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.save()?;
    let pid = b.start("plain")?;
    ensure!(status_field(&pid, "NoNewPrivs")? == "0");
    ensure!(status_field(&pid, "Seccomp")? == "0");
    Ok(())
}

fn masked_readonly_paths_and_readonly_root() -> Result<()> {
    let out = run_script(
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; \
         echo 1 > /proc/sys/kernel/domainname || echo ro-proc-sys; \
         touch /newfile || echo ro-root; touch /tmp/ok && echo tmp-rw",
        |c| {
            c["linux"]["maskedPaths"] = json!(["/proc/timer_list", "/sys/firmware"]);
            c["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
        },
    )?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines == ["0", "0", "ro-proc-sys", "ro-root", "tmp-rw"],
        "{out:?}"
    );
    Ok(())
}

fn mounts_in_order_with_options() -> Result<()> {
    let data = tempfile::tempdir()?;
    fs::write(data.path().join("marker"), "from the host\n")?;
    let host = data.path().to_string_lossy().into_owned();
    let out = run_script(
        "cat /mnt/data/marker; touch /mnt/data/x || echo ro-bind; \
         grep ' /mnt ' /proc/self/mountinfo | grep -o nosuid",
        move |c| {
            let mounts = c["mounts"].as_array_mut().expect("mounts");
            // The bind comes second: it lands inside the tmpfs of the first.
            // /mnt is in the shared rootfs already: the runtime creates a
            // missing destination in the rootfs (as runc does), which would
            // change it for every later test and session.
            mounts.push(
                json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid", "size=64k"]}),
            );
            mounts.push(
                json!({"destination": "/mnt/data", "type": "bind", "source": host,
                               "options": ["rbind", "ro"]}),
            );
        },
    )?;
    ensure!(out == "from the host\nro-bind\nnosuid\n", "{out:?}");
    ensure!(
        fs::read_dir(data.path())?.count() == 1,
        "the read-only bind was written"
    );
    Ok(())
}

fn rootfs_propagation() -> Result<()> {
    let root_line = "awk '$5 == \"/\"' /proc/self/mountinfo";
    let shared = run_script(root_line, |c| {
        c["linux"]["rootfsPropagation"] = json!("shared");
    })?;
    ensure!(shared.contains("shared:"), "{shared:?}");
    let private = run_script(root_line, |c| {
        c["linux"]["rootfsPropagation"] = json!("private");
    })?;
    ensure!(!private.contains("shared:"), "{private:?}");
    Ok(())
}

fn devices_default_and_listed() -> Result<()> {
    let out = run_script(
        "stat -c '%n %F %t:%T %a' /dev/null /dev/urandom /dev/mynull; echo x > /dev/null && echo null-ok",
        |c| {
            c["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1,
                                            "minor": 3, "fileMode": 384, "uid": 0, "gid": 0}]);
        },
    )?;
    ensure!(
        out == "/dev/null character special file 1:3 666\n\
                /dev/urandom character special file 1:9 666\n\
                /dev/mynull character special file 1:3 600\nnull-ok\n",
        "{out:?}"
    );
    Ok(())
}

fn sysctl_rlimits_oom_score() -> Result<()> {
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward")?;
    let out = run_script(
        "cat /proc/sys/net/ipv4/ip_forward; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj",
        |c| {
            c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}]);
            c["process"]["oomScoreAdj"] = json!(500);
        },
    )?;
    ensure!(out == "1\n123\n456\n500\n", "{out:?}");
    ensure!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward")? == host_forward,
        "the host's sysctl changed"
    );
    Ok(())
}

/// One row of `/proc/<pid>/limits` (or of such a file's text): soft and hard.
fn limit_row(limits: &str, name: &str) -> Result<(String, String)> {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .with_context(|| format!("no {name} in {limits}"))?;
    let mut fields = line[name.len()..].split_whitespace();
    let soft = fields.next().context("soft")?.to_string();
    let hard = fields.next().context("hard")?.to_string();
    Ok((soft, hard))
}

/// Each rlimit's soft and hard values, read from the kernel for the
/// container's process and for an exec'd one; and `--pid-file` relative to
/// the caller's working directory, there when `create` returns.
fn rlimits_and_pid_file() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
        {"type": "RLIMIT_STACK", "soft": 1048576, "hard": 8388608},
    ]);
    b.save()?;
    let caller = tempfile::Builder::new().prefix("cfs-h2-cwd").tempdir()?;
    b.ids.borrow_mut().push("rl".into());
    let bundle = b.path().to_string_lossy().into_owned();
    let mut cmd = b.cmd(&["create", "--bundle", &bundle, "--pid-file", "rel.pid", "rl"]);
    cmd.current_dir(caller.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    ensure!(cmd.status()?.success(), "create failed");
    let written = fs::read_to_string(caller.path().join("rel.pid"))
        .context("no pid file in the caller's directory when create returned")?;
    let pid = b.pid("rl")?;
    ensure!(written == pid, "pid file {written:?}, state {pid}");
    b.rt(&["start", "rl"])?.expect_code(0)?;
    let expected = [
        ("Max open files", ("123", "456")),
        ("Max core file size", ("0", "4096")),
        ("Max stack size", ("1048576", "8388608")),
    ];
    let limits = fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let exec = b.rt(&["exec", "rl", "cat", "/proc/self/limits"])?;
    exec.expect_code(0)?;
    for (text, who) in [(&limits, "init"), (&exec.stdout, "exec")] {
        for (name, (soft, hard)) in expected {
            let (s, h) = limit_row(text, name)?;
            ensure!(
                s == soft && h == hard,
                "{who}: {name}: {s} {h}, not {soft} {hard}"
            );
        }
    }
    Ok(())
}

fn user_namespace_maps() -> Result<()> {
    let mut b = Bundle::new(&["sh", "-c", "id -u; sleep 30"])?;
    // The container's root is host uid 100000: give it a rootfs it owns
    // (pivot_root needs to create a directory in it).
    let rootfs = b.path().join("rootfs");
    let status = Command::new("cp")
        .args([
            "-a",
            &paths::rootfs()?.to_string_lossy(),
            &rootfs.to_string_lossy(),
        ])
        .status()?;
    ensure!(status.success(), "cp -a rootfs");
    let status = Command::new("chown")
        .args(["-R", "100000:100000", &rootfs.to_string_lossy()])
        .status()?;
    ensure!(status.success(), "chown rootfs");
    b.config["root"]["path"] = json!("rootfs");
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.save()?;
    let pid = b.start("u")?;
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map"))?;
    ensure!(
        map.split_whitespace().collect::<Vec<_>>() == ["0", "100000", "65536"],
        "{map:?}"
    );
    let uid = status_field(&pid, "Uid")?;
    ensure!(uid.starts_with("100000"), "host sees uid {uid}");
    ensure!(ns_inode(&pid, "user")? != ns_inode("self", "user")?);
    let out = wait_for(Duration::from_secs(5), || {
        b.container_stdout("u").ok().filter(|s| !s.is_empty())
    })?;
    ensure!(out == "0\n", "inside, the process is root: {out:?}");
    // exec joins the user namespace too (its child does, before the others).
    let out = b.rt(&["exec", "u", "sh", "-c", "id -u; cat /proc/self/uid_map"])?;
    out.expect_code(0)?;
    ensure!(
        out.stdout.split_whitespace().collect::<Vec<_>>() == ["0", "0", "100000", "65536"],
        "exec in a user namespace: {out:?}"
    );
    // A bind mount from the bundle, a directory only the host's root may
    // enter: the runtime opens it, not the mapped root.
    b.rt(&["delete", "--force", "u"])?.expect_code(0)?;
    let data = b.path().join("private/data");
    fs::create_dir_all(&data)?;
    fs::write(data.join("file"), "from the bundle\n")?;
    fs::set_permissions(
        b.path().join("private"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    b.config["mounts"].as_array_mut().context("mounts")?.push(
        json!({"destination": "/data", "type": "bind", "source": "private/data", "options": ["rbind", "ro"]}),
    );
    b.config["process"]["args"] = json!(["cat", "/data/file"]);
    b.save()?;
    let out = b.run("bindns")?;
    out.expect_code(0)?;
    ensure!(out.stdout == "from the bundle\n", "{out:?}");
    // Asking for a user namespace without maps is refused up front.
    b.config["linux"]["uidMappings"] = json!(null);
    b.save()?;
    let out = b.create("nomaps")?;
    fails_with(&out, "uidMappings")?;
    Ok(())
}

fn hooks_get_the_state() -> Result<()> {
    let mut b = Bundle::new(&["true"])?;
    let out_dir = b.path().join("hooks");
    fs::create_dir(&out_dir)?;
    let host = out_dir.to_string_lossy().into_owned();
    let hook = |dir: &str, name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {dir}/{name}.json")]});
    b.config["hooks"] = json!({
        "prestart": [hook(&host, "prestart")],
        "createRuntime": [hook(&host, "createRuntime")],
        "createContainer": [hook(&host, "createContainer")],
        // Runs inside the container, after pivot_root: the bind mount below
        // (on /mnt, which the shared rootfs has: a missing destination would
        // be created in it).
        "startContainer": [hook("/mnt", "startContainer")],
        "poststart": [hook(&host, "poststart")],
        "poststop": [hook(&host, "poststop")],
    });
    b.config["mounts"]
        .as_array_mut()
        .context("mounts")?
        .push(json!({"destination": "/mnt", "type": "bind", "source": host, "options": ["rbind"]}));
    b.save()?;
    b.run("hooked")?.expect_code(0)?;
    for (name, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let text = fs::read_to_string(out_dir.join(format!("{name}.json")))
            .with_context(|| format!("hook {name} did not run"))?;
        let state: Value = serde_json::from_str(&text)?;
        ensure!(
            state["id"] == "hooked" && state["status"] == status,
            "{name}: {state}"
        );
        ensure!(
            state["bundle"].as_str() == Some(&*b.path().canonicalize()?.to_string_lossy()),
            "{name}: {state}"
        );
    }
    // A failing createRuntime hook undoes the create.
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    b.save()?;
    fails_with(
        &b.create("failing")?,
        "createRuntime hook 0 (/bin/false) failed",
    )?;
    ensure!(b.leftovers()?.is_empty(), "{:?}", b.leftovers()?);
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    Ok(())
}

/// The spec's rule per hook kind: before the command runs, a failure is an
/// error and the container goes; after it (poststart, poststop), a warning.
fn hook_failures_follow_the_spec() -> Result<()> {
    let failing = |kind: &str| json!({ kind: [{"path": "/bin/false"}] });
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut b = Bundle::new(&["true"])?;
        b.config["hooks"] = failing(kind);
        b.save()?;
        fails_with(
            &b.create("hk")?,
            &format!("{kind} hook 0 (/bin/false) failed"),
        )?;
        ensure!(b.leftovers()?.is_empty(), "{kind}: {:?}", b.leftovers()?);
        ensure!(
            b.cgroup_dirs()?.is_empty(),
            "{kind}: {:?}",
            b.cgroup_dirs()?
        );
    }
    // startContainer runs in the container after the go: `start` fails,
    // the command never runs, the container is stopped.
    let mut b = Bundle::new(&["echo", "ran"])?;
    b.config["hooks"] = failing("startContainer");
    b.save()?;
    b.create("hs")?.expect_code(0)?;
    fails_with(
        &b.rt(&["start", "hs"])?,
        "startContainer hook 0 (/bin/false) failed",
    )?;
    wait_for(Duration::from_secs(20), || {
        (b.status("hs").ok()? == "stopped").then_some(())
    })
    .context("a failed startContainer hook left the container running")?;
    ensure!(b.container_stdout("hs")?.is_empty(), "the command ran");
    b.rt(&["delete", "hs"])?.expect_code(0)?;
    for kind in ["poststart", "poststop"] {
        let mut b = Bundle::new(&["echo", "ran"])?;
        b.config["hooks"] = failing(kind);
        b.save()?;
        let out = b.run("hp")?;
        out.expect_code(0)?;
        ensure!(out.stdout == "ran\n", "{kind}: {out:?}");
        ensure!(
            out.stderr
                .contains(&format!("warning: {kind} hook 0 (/bin/false) failed")),
            "{kind}: {out:?}"
        );
        ensure!(b.leftovers()?.is_empty(), "{kind}: {:?}", b.leftovers()?);
    }
    Ok(())
}

/// A hostname with a UTS namespace joined by path (runc allows it): it is
/// set in that namespace, not on the host.
fn hostname_in_a_joined_uts_namespace() -> Result<()> {
    let host = nix::unistd::gethostname()?;
    let holder = Background::start({
        let mut cmd = Command::new("unshare");
        cmd.args(["--uts", "sleep", "30"]);
        cmd
    })?;
    let pid = holder.pid();
    let path = format!("/proc/{pid}/ns/uts");
    wait_for(Duration::from_secs(10), || {
        let theirs = ns_inode(&pid.to_string(), "uts").ok()?;
        (theirs != ns_inode("self", "uts").ok()?).then_some(())
    })
    .context("unshare --uts did not start")?;
    let out = run_script("hostname", |c| {
        c["hostname"] = json!("cfs-h2-joined");
        for ns in c["linux"]["namespaces"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if ns["type"] == "uts" {
                ns["path"] = json!(path);
            }
        }
    })?;
    ensure!(out == "cfs-h2-joined\n", "{out:?}");
    let seen = output({
        let mut cmd = Command::new("nsenter");
        cmd.args(["--uts", &format!("--target={pid}"), "hostname"]);
        cmd
    })?;
    ensure!(seen.stdout == "cfs-h2-joined\n", "{seen:?}");
    ensure!(
        nix::unistd::gethostname()? == host,
        "the host's hostname changed"
    );
    drop(holder);
    Ok(())
}

fn exec_ps_and_list() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["hostname"] = json!("execbox");
    b.save()?;
    let pid = b.start("e")?;
    let out = b.rt(&[
        "exec",
        "e",
        "sh",
        "-c",
        "echo $$; hostname; cat /proc/1/comm",
    ])?;
    out.expect_code(0)?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines.len() == 3 && lines[0] != "1" && lines[1] == "execbox" && lines[2] == "sleep",
        "{out:?}"
    );
    let out = b.rt(&["exec", "e", "sh", "-c", "exit 7"])?;
    out.expect_code(7)?;
    let process = b.path().join("process.json");
    fs::write(
        &process,
        json!({"args": ["sh", "-c", "id -u"], "cwd": "/", "user": {"uid": 4, "gid": 4},
               "env": ["PATH=/bin"]})
        .to_string(),
    )?;
    let out = b.rt(&["exec", "--process", &process.to_string_lossy(), "e"])?;
    out.expect_code(0)?;
    ensure!(out.stdout == "4\n", "{out:?}");

    let out = b.rt(&["ps", "--format", "json", "e"])?;
    out.expect_code(0)?;
    let pids: Vec<i64> = serde_json::from_str(&out.stdout)?;
    ensure!(pids == [pid.parse::<i64>()?], "{pids:?}");

    // Detached, as containerd's shim runs it: the pid file (on the host, not
    // in the container) names a process in the container's namespaces.
    let pid_file = b.path().join("exec.pid");
    let status = b
        .cmd(&[
            "exec",
            "--detach",
            "--pid-file",
            &pid_file.to_string_lossy(),
            "e",
            "sleep",
            "5",
        ])
        // Not pipes: the detached process keeps its stdio open.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "exec --detach: {status}");
    let exec_pid = fs::read_to_string(&pid_file)?;
    for kind in ["pid", "mnt", "net", "uts"] {
        ensure!(
            ns_inode(&exec_pid, kind)? == ns_inode(&pid, kind)?,
            "exec'd process not in the container's {kind} namespace"
        );
    }
    let out = b.rt(&["ps", "--format", "json", "e"])?;
    let pids: Vec<i64> = serde_json::from_str(&out.stdout)?;
    ensure!(pids.len() == 2, "ps after exec --detach: {pids:?}");
    let out = b.rt(&["list"])?;
    out.expect_code(0)?;
    ensure!(
        out.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("e ") && l.contains("running")),
        "{out:?}"
    );
    Ok(())
}

fn containerd_drives_the_runtime() -> Result<()> {
    let before = mounts()?;
    let mut cmd = Command::new(paths::workspace().join("scripts/containerd-hello"));
    cmd.env("RUNTIME", paths::bin(BIN))
        .env("ROOTFS", paths::rootfs()?)
        .args([
            "sh",
            "-c",
            "echo hello; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup",
        ]);
    let out = cfs_tests::run::output_within(cmd, Duration::from_secs(120))?;
    out.expect_code(0)?;
    let mut lines = out.stdout.lines();
    ensure!(lines.next() == Some("hello"), "{out:?}");
    // The container's PID 1 is the command: our runtime exec'd it for the shim.
    ensure!(
        lines.next() == Some("sh -c echo hello; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup "),
        "{out:?}"
    );
    // The cgroupsPath ctr was given, cfs-hello-<pid> (relative: beneath the
    // shim's cgroup, the test's own), names the group (the config has no
    // cgroup namespace: the host's paths show).
    let groups = lines.filter(|l| l.contains("/cfs-hello-")).count();
    let hierarchies = Hierarchies::detect()?;
    let expected = match cgroup_version()? {
        // Those with cpu, cpuacct, devices, freezer, memory or pids: six here.
        Version::V1 => hierarchies
            .v1
            .iter()
            .filter(|h| {
                h.controllers.iter().any(|c| {
                    ["cpu", "cpuacct", "devices", "freezer", "memory", "pids"].contains(&c.as_str())
                })
            })
            .count(),
        Version::V2 => 1,
    };
    ensure!(
        groups == expected,
        "{groups} groups named after cgroupsPath: {out:?}"
    );
    assert_mounts_unchanged(&before)
}

/// Accepts one connection on `listener` and takes the fd sent with SCM_RIGHTS.
fn receive_fd(listener: UnixListener) -> Result<OwnedFd> {
    let (stream, _) = listener.accept()?;
    let mut buf = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    bail!("no descriptor in the console socket message")
}

fn terminal_through_console_socket() -> Result<()> {
    let mut b = Bundle::new(&["sh", "-c", "test -t 0 && test -t 1 && echo tty-ok"])?;
    b.config["process"]["terminal"] = json!(true);
    b.save()?;
    let out = b.create("noconsole")?;
    fails_with(&out, "--console-socket")?;
    ensure!(b.leftovers()?.is_empty());
    let socket = b.path().join("console.sock");
    let listener = UnixListener::bind(&socket)?;
    let receiver = std::thread::spawn(move || receive_fd(listener));
    b.create_with("tty", &["--console-socket", &socket.to_string_lossy()])?
        .expect_code(0)?;
    let master = receiver
        .join()
        .map_err(|_| cfs_tests::anyhow!("receiver panicked"))??;
    b.rt(&["start", "tty"])?.expect_code(0)?;
    // The container's output arrives on the pty master (with \r\n line ends);
    // reading fails with EIO once the container has closed the other side.
    let mut text = Vec::new();
    let _ = std::io::Read::read_to_end(&mut fs::File::from(master), &mut text);
    let text = String::from_utf8_lossy(&text);
    ensure!(text == "tty-ok\r\n", "{text:?}");
    Ok(())
}

fn veth_network_from_a_hook() -> Result<()> {
    let ns = format!("cfs-net-{}", std::process::id());
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    ensure!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()?
            .success(),
        "ip netns add"
    );
    let _guard = Netns(ns.clone());
    let hook = paths::workspace().join("chapters/ch06-full-runtime/hooks/veth.sh");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "ip -4 -o addr show eth0 | awk '{print $4}'; sleep 30",
    ])?;
    b.config["hooks"] = json!({"createRuntime": [{"path": hook,
        "args": ["veth.sh", ns, "10.200.0.1/24", "10.200.0.2/24"]}]});
    b.save()?;
    b.start("net")?;
    let out = wait_for(Duration::from_secs(5), || {
        b.container_stdout("net").ok().filter(|s| !s.is_empty())
    })?;
    ensure!(out == "10.200.0.2/24\n", "inside: {out:?}");
    // From the test's own namespace, across the veth pair, into the container.
    let ping = |address: &str| {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns", "exec", &ns, "busybox", "ping", "-c", "1", "-W", "1",
        ]);
        cmd.arg(address);
        output(cmd)
    };
    ping("10.200.0.2")?.expect_code(0)?;
    // An address nobody has does not answer: the check above can fail.
    ensure!(ping("10.200.0.3")?.code != 0, "10.200.0.3 answered");
    b.rt(&["delete", "--force", "net"])?.expect_code(0)?;
    Ok(())
}

/// The layout's version here: which files the kernel shows.
fn cgroup_version() -> Result<Version> {
    Ok(Hierarchies::detect()?.layout()?.version())
}

/// A file of the container's cgroup, from whichever directory has it.
fn cgroup_file(dirs: &[PathBuf], file: &str) -> Result<Option<String>> {
    for dir in dirs {
        let path = dir.join(file);
        if path.exists() {
            return Ok(Some(fs::read_to_string(&path)?.trim().to_string()));
        }
    }
    Ok(None)
}

/// A counter in a `key value` cgroup file (`oom_kill` in memory.events).
fn cgroup_counter(dirs: &[PathBuf], file: &str, key: &str) -> Result<Option<u64>> {
    Ok(cgroup_file(dirs, file)?.and_then(|text| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.parse().ok()).flatten()
        })
    }))
}

/// linux.resources lands in the cgroup's files, read from outside; the
/// container's process is in every directory, and `/proc/<pid>/cgroup`
/// names them; after delete they are gone.
fn resources_are_written_to_the_cgroup() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["linux"]["resources"] = json!({
        "cpu": {"quota": 20000, "period": 100000, "shares": 512},
        "memory": {"limit": 33554432, "swap": 50331648},
        "pids": {"limit": 16},
    });
    b.save()?;
    let pid = b.start("res")?;
    let dirs = b.cgroup_dirs()?;
    let (expected, swap): (&[(&str, &str)], (&str, &str)) = match cgroup_version()? {
        Version::V1 => (
            &[
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "20000"),
                ("cpu.shares", "512"),
                ("memory.limit_in_bytes", "33554432"),
                ("pids.max", "16"),
            ],
            ("memory.memsw.limit_in_bytes", "50331648"),
        ),
        Version::V2 => (
            &[
                ("cpu.max", "20000 100000"),
                ("cpu.weight", "20"),
                ("memory.max", "33554432"),
                ("pids.max", "16"),
            ],
            // v2 counts swap apart: 48M - 32M.
            ("memory.swap.max", "16777216"),
        ),
    };
    for (file, value) in expected {
        let actual = cgroup_file(&dirs, file)?;
        ensure!(
            actual.as_deref() == Some(*value),
            "{file}: {actual:?} in {dirs:?}"
        );
    }
    // Only where the kernel accounts swap.
    if let Some(actual) = cgroup_file(&dirs, swap.0)? {
        ensure!(actual == swap.1, "{}: {actual}", swap.0);
    }
    for dir in &dirs {
        ensure!(
            cgroup_procs(dir)? == [Pid::from_raw(pid.parse()?)],
            "{} holds {:?}",
            dir.display(),
            cgroup_procs(dir)?
        );
    }
    let name = b.cgroup_name();
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let inside = own
        .lines()
        .filter(|l| l.ends_with(&format!("/{name}")))
        .count();
    ensure!(inside == dirs.len(), "/proc/{pid}/cgroup: {own}");
    b.rt(&["delete", "--force", "res"])?.expect_code(0)?;
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    Ok(())
}

/// Without cgroupsPath the cgroup is named after the container id.
fn cgroup_named_after_the_id_without_cgroups_path() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["linux"]["cgroupsPath"] = json!(null);
    b.save()?;
    let id = format!("noid-{}", std::process::id());
    b.start(&id)?;
    let name = format!("cfs-{id}");
    ensure!(!cgroups_named(&name)?.is_empty(), "no cgroup {name}");
    b.rt(&["delete", "--force", &id])?.expect_code(0)?;
    ensure!(cgroups_named(&name)?.is_empty(), "{name} left");
    Ok(())
}

/// dd with a 64 MiB buffer under a 32 MiB limit: the kernel's OOM killer
/// kills it (137 from `run`), and the cgroup's own counter says so; an 8 MiB
/// buffer fits.
fn memory_limit_oom_kills() -> Result<()> {
    let mut b = Bundle::new(&["true"])?;
    b.config["process"]["args"] = json!(dd_argv("64M"));
    b.config["linux"]["resources"] = json!({"memory": {"limit": 33554432}});
    b.save()?;
    b.start("oom")?;
    wait_for(Duration::from_secs(10), || {
        (b.status("oom").ok()? == "stopped").then_some(())
    })?;
    let dirs = b.cgroup_dirs()?;
    let kills = match cgroup_counter(&dirs, "memory.oom_control", "oom_kill")? {
        Some(n) => n,
        None => cgroup_counter(&dirs, "memory.events", "oom_kill")?.context("no OOM counter")?,
    };
    ensure!(kills == 1, "the kernel counted {kills} OOM kills");
    b.rt(&["delete", "oom"])?.expect_code(0)?;
    b.run("oom-run")?.expect_code(137)?;
    b.config["process"]["args"] = json!(dd_argv("8M"));
    b.save()?;
    b.run("fits")?.expect_code(0)?;
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    Ok(())
}

/// The freezer as the kernel shows it: v1 freezer.state, v2 cgroup.events.
fn frozen(dirs: &[PathBuf]) -> Result<bool> {
    if let Some(state) = cgroup_file(dirs, "freezer.state")? {
        return Ok(state == "FROZEN");
    }
    Ok(cgroup_counter(dirs, "cgroup.events", "frozen")?.context("no freezer")? == 1)
}

/// pause freezes the cgroup: state says paused, the freezer says frozen, the
/// busy loop gets no CPU time (and v1 shows it in state D); exec and a second
/// pause are refused. resume undoes it all. A paused container is killed by
/// KILL, and deleted with --force.
fn pause_and_resume() -> Result<()> {
    let b = Bundle::new(&["sh", "-c", "while :; do :; done"])?;
    let pid = b.start("p")?;
    let dirs = b.cgroup_dirs()?;
    ensure!(!frozen(&dirs)?, "frozen from the start");
    b.rt(&["pause", "p"])?.expect_code(0)?;
    ensure!(
        b.status("p")? == "paused",
        "after pause: {}",
        b.status("p")?
    );
    ensure!(frozen(&dirs)?, "the freezer says thawed");
    if cgroup_version()? == Version::V1 {
        ensure!(state(&pid) == Some('D'), "state {:?}", state(&pid));
    }
    let before = cpu_ticks(&pid)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(cpu_ticks(&pid)? == before, "a paused loop used CPU time");
    fails_with(&b.rt(&["pause", "p"])?, "it is paused")?;
    fails_with(&b.rt(&["exec", "p", "true"])?, "it is paused")?;
    fails_with(&b.rt(&["delete", "p"])?, "use --force")?;

    b.rt(&["resume", "p"])?.expect_code(0)?;
    ensure!(b.status("p")? == "running", "after resume");
    ensure!(!frozen(&dirs)?, "still frozen");
    let before = cpu_ticks(&pid)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(cpu_ticks(&pid)? > before, "a resumed loop got no CPU time");
    fails_with(&b.rt(&["resume", "p"])?, "it is running")?;

    // KILL reaches a paused container (the runtime thaws it for that).
    b.rt(&["pause", "p"])?.expect_code(0)?;
    b.rt(&["kill", "p", "KILL"])?.expect_code(0)?;
    wait_for(Duration::from_secs(5), || {
        (b.status("p").ok()? == "stopped").then_some(())
    })?;
    b.rt(&["delete", "p"])?.expect_code(0)?;

    let pid = b.start("q")?;
    b.rt(&["pause", "q"])?.expect_code(0)?;
    b.rt(&["delete", "--force", "q"])?.expect_code(0)?;
    ensure!(matches!(state(&pid), None | Some('Z')), "{pid} survived");
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    Ok(())
}

/// exec'd processes join the container's cgroup (detached or not); the
/// runtime process that waits for a non-detached one stays outside.
fn exec_joins_the_cgroup() -> Result<()> {
    let b = Bundle::new(&["sleep", "30"])?;
    let pid: i32 = b.start("x")?.parse()?;
    let dirs = b.cgroup_dirs()?;
    let runtime = Background::start(b.cmd(&["exec", "x", "sleep", "3"]))?;
    let exec_pid = wait_for(Duration::from_secs(5), || {
        children(runtime.pid()).first().copied()
    })?;
    for dir in &dirs {
        let procs = wait_for(Duration::from_secs(5), || {
            cgroup_procs(dir).ok().filter(|p| p.contains(&exec_pid))
        })?;
        ensure!(procs.contains(&Pid::from_raw(pid)), "{procs:?}");
        ensure!(
            !procs.contains(&runtime.pid()),
            "the runtime joined {}",
            dir.display()
        );
    }
    let out = b.rt(&["ps", "--format", "json", "x"])?;
    let listed: Vec<i32> = serde_json::from_str(&out.stdout)?;
    let mut expected = vec![pid, exec_pid.as_raw()];
    expected.sort();
    ensure!(listed == expected, "ps: {listed:?}, expected {expected:?}");
    runtime.finish(Duration::from_secs(10))?.expect_code(0)?;
    Ok(())
}

/// A container without a PID namespace of its own leaves its children
/// behind when its first process exits; they are still in its cgroup, `ps`
/// lists them, and `delete` kills them with the cgroup.
fn delete_kills_what_is_left_in_the_cgroup() -> Result<()> {
    let mut b = Bundle::new(&["sh", "-c", "sleep 60 & echo $!"])?;
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .context("namespaces")?
        .retain(|ns| ns["type"] != "pid");
    b.save()?;
    b.start("left")?;
    wait_for(Duration::from_secs(5), || {
        (b.status("left").ok()? == "stopped").then_some(())
    })?;
    let sleeper = b.container_stdout("left")?.trim().to_string();
    ensure!(
        state(&sleeper).is_some(),
        "sleep {sleeper:?} is not running"
    );
    let out = b.rt(&["ps", "--format", "json", "left"])?;
    let listed: Vec<i64> = serde_json::from_str(&out.stdout)?;
    ensure!(listed == [sleeper.parse::<i64>()?], "ps: {listed:?}");
    b.rt(&["delete", "left"])?.expect_code(0)?;
    ensure!(
        matches!(state(&sleeper), None | Some('Z')),
        "{sleeper} survived delete"
    );
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    Ok(())
}

/// A cgroup that cannot be created in full (its name is taken in the last
/// directory to be made) fails the create, and what was made is removed.
fn failed_cgroup_create_leaves_nothing() -> Result<()> {
    let b = Bundle::new(&["true"])?;
    let blocker = last_cgroup_dir(&b.cgroup_name())?;
    fs::create_dir(&blocker)?;
    let out = b.create("clash");
    let left = b.cgroup_dirs();
    fs::remove_dir(&blocker)?;
    fails_with(&out?, "already exists")?;
    ensure!(
        left? == [blocker.clone()],
        "left besides {}",
        blocker.display()
    );
    ensure!(b.leftovers()?.is_empty(), "{:?}", b.leftovers()?);
    Ok(())
}

/// The config's cgroup mount shows the container its own cgroup, read-only.
fn cgroup_mount_shows_its_own_cgroup() -> Result<()> {
    let out = run_script(
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         cat /sys/fs/cgroup/pids/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/cgroup.procs; \
         (echo 1 > /sys/fs/cgroup/pids/pids.max || echo 1 > /sys/fs/cgroup/pids.max) 2>/dev/null \
         || echo read-only",
        |c| {
            c["linux"]["resources"]["pids"] = json!({"limit": 9});
        },
    )?;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.first() == Some(&"9") && lines.contains(&"1") && lines.last() == Some(&"read-only"),
        "{out:?}"
    );
    Ok(())
}

/// Device rules from inside: the host's /dev/net/tun, bind-mounted in,
/// opens without rules, is refused after "deny all", and opens again when a
/// rule allows it; on v1 the cgroup's devices.list shows that rule.
fn device_rules() -> Result<()> {
    let open = "head -c 0 /dev/tunx && echo tun-open || echo tun-denied";
    let with = |rules: Value| {
        move |c: &mut Value| {
            c["mounts"].as_array_mut().expect("mounts").push(
                json!({"destination": "/dev/tunx", "type": "bind", "source": "/dev/net/tun",
                       "options": ["bind"]}),
            );
            c["linux"]["resources"]["devices"] = rules;
        }
    };
    ensure!(run_script(open, with(json!([])))? == "tun-open\n");
    let deny = json!([{"allow": false, "access": "rwm"}]);
    ensure!(run_script(open, with(deny))? == "tun-denied\n");
    let allow = json!([{"allow": false, "access": "rwm"},
                       {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "r"}]);
    ensure!(run_script(open, with(allow.clone()))? == "tun-open\n");
    let mut b = Bundle::new(&["sleep", "30"])?;
    with(allow)(&mut b.config);
    b.save()?;
    b.start("dev")?;
    if let Some(list) = cgroup_file(&b.cgroup_dirs()?, "devices.list")? {
        ensure!(
            list.lines().any(|l| l == "c 10:200 r") && list.lines().any(|l| l == "c 1:3 rwm"),
            "devices.list: {list}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// cgroupsPath and every field of linux.resources (helper h1's block).
// ---------------------------------------------------------------------------

/// A cgroup path, from the root of the hierarchies, that lies beneath this
/// test's own cgroup in every one of them: on v1 the deepest of its own
/// paths (the others must be its prefixes: `/` here, where only memory's is
/// deeper); on v2 the parent of its own (which holds the test itself, so it
/// could not hand controllers down: the no-internal-process rule).
fn own_base() -> Result<String> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    let mut paths: Vec<&str> = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(list), Some(path)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if cgroup_version()? == Version::V2 && id == "0" {
            let parent = Path::new(path).parent().unwrap_or(Path::new("/"));
            return Ok(parent.to_string_lossy().trim_end_matches('/').to_string());
        }
        if !list.is_empty() && !list.starts_with("name=") {
            paths.push(path);
        }
    }
    paths.sort_by_key(|p| p.len());
    let deepest = *paths
        .last()
        .context("no v1 hierarchy in /proc/self/cgroup")?;
    for p in &paths {
        ensure!(
            Path::new(deepest).starts_with(p),
            "own cgroups {paths:?} do not nest: no path lies beneath all of them"
        );
    }
    Ok(deepest.trim_end_matches('/').to_string())
}

/// Names unique to this test run: `cfs-h1-<what>-<pid>-<n>`.
fn h1_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("cfs-h1-{what}-{}-{n}", std::process::id())
}

/// Removes what a failed test left: the groups named `names` (the
/// container's and its parent), then the directories between each
/// hierarchy's own cgroup and `base` that did not exist before.
struct Tidy {
    names: Vec<String>,
    made: Vec<PathBuf>,
}

impl Tidy {
    fn new(base: &str, names: &[&str]) -> Result<Tidy> {
        let h = Hierarchies::detect()?;
        let mounts: Vec<PathBuf> = match h.layout()?.version() {
            Version::V1 => h.v1.iter().map(|h| h.mount.clone()).collect(),
            Version::V2 => h.v2.iter().map(|h| h.mount.clone()).collect(),
        };
        let mut made = Vec::new();
        for mount in mounts {
            let dir = mount.join(base.trim_start_matches('/'));
            for d in dir.ancestors().take_while(|d| *d != mount) {
                if !d.exists() {
                    made.push(d.to_path_buf());
                }
            }
        }
        made.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        Ok(Tidy {
            names: names.iter().map(|n| n.to_string()).collect(),
            made,
        })
    }
}

impl Drop for Tidy {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = remove_cgroups_named(name);
        }
        for dir in &self.made {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// The hierarchies a container's process is in, from `/proc/<pid>/cgroup`:
/// the path of each resource line.
fn cgroup_paths_of(pid: &str) -> Result<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let v2 = cgroup_version()? == Version::V2;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, list, path) = (f.next()?, f.next()?, f.next()?);
            let wanted = if v2 {
                list.is_empty()
            } else {
                !list.is_empty() && !list.starts_with("name=")
            };
            wanted.then(|| path.to_string())
        })
        .collect())
}

/// An absolute cgroupsPath lands from the root of each hierarchy: the
/// container's `/proc/<pid>/cgroup` names exactly that path in each
/// hierarchy it joined, the directories exist there, `pause`, `resume` and
/// `ps` find them again, and `delete` removes the group and the parent the
/// runtime made (chapter 6 before this change
/// flattened it into `cfs-<path>` beneath its own cgroup: this fails there).
fn absolute_cgroups_path_lands_from_the_root() -> Result<()> {
    let base = own_base()?;
    let (parent, leaf) = (h1_name("abs"), h1_name("ctr"));
    let _tidy = Tidy::new(&base, &[&parent, &leaf])?;
    let path = format!("{base}/{parent}/{leaf}");
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["linux"]["cgroupsPath"] = json!(path);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 20}});
    b.save()?;
    let pid = b.start("abs")?;
    let paths = cgroup_paths_of(&pid)?;
    let inside = paths.iter().filter(|p| **p == path).count();
    let dirs = cgroups_named(&leaf)?;
    ensure!(
        inside >= 1 && inside == dirs.len(),
        "{inside} hierarchies show {path} in /proc/{pid}/cgroup ({paths:?}); dirs {dirs:?}"
    );
    for dir in &dirs {
        ensure!(
            dir.to_string_lossy().ends_with(&path),
            "{} is not at {path}",
            dir.display()
        );
    }
    ensure!(
        cgroup_file(&dirs, "pids.max")?.as_deref() == Some("20"),
        "pids.max in {dirs:?}"
    );
    // Later runs find the group from the saved placement.
    b.rt(&["pause", "abs"])?.expect_code(0)?;
    ensure!(frozen(&dirs)?, "pause did not freeze {dirs:?}");
    b.rt(&["resume", "abs"])?.expect_code(0)?;
    ensure!(!frozen(&dirs)?, "resume did not thaw {dirs:?}");
    let out = b.rt(&["ps", "--format", "json", "abs"])?;
    let listed: Vec<i64> = serde_json::from_str(&out.stdout)?;
    ensure!(listed == [pid.parse::<i64>()?], "ps: {listed:?}");
    b.rt(&["delete", "--force", "abs"])?.expect_code(0)?;
    ensure!(cgroups_named(&leaf)?.is_empty(), "{leaf} left");
    ensure!(
        cgroups_named(&parent)?.is_empty(),
        "the runtime's {parent} left"
    );
    Ok(())
}

/// A relative cgroupsPath of two components lands beneath the runtime's own
/// cgroup in each v1 hierarchy (on v2, beneath it or beside it).
fn relative_cgroups_path_lands_beneath_its_own() -> Result<()> {
    let (parent, leaf) = (h1_name("rel"), h1_name("ctr"));
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["linux"]["cgroupsPath"] = json!(format!("{parent}/{leaf}"));
    b.save()?;
    let _tidy = Tidy::new("/", &[&parent, &leaf])?;
    let pid = b.start("rel")?;
    let h = Hierarchies::detect()?;
    let dirs = cgroups_named(&leaf)?;
    ensure!(!dirs.is_empty(), "no {leaf}");
    for dir in &dirs {
        let beneath_own =
            h.v1.iter()
                .map(|h| &h.own)
                .chain(h.v2.iter().map(|v| &v.own))
                .any(|own| dir == &own.join(&parent).join(&leaf));
        let beside_own =
            h.v2.iter()
                .filter_map(|v| v.own.parent())
                .any(|p| dir == &p.join(&parent).join(&leaf));
        ensure!(
            beneath_own || beside_own,
            "{} is not beneath our own cgroup",
            dir.display()
        );
    }
    let paths = cgroup_paths_of(&pid)?;
    ensure!(
        paths
            .iter()
            .filter(|p| p.ends_with(&format!("/{parent}/{leaf}")))
            .count()
            == dirs.len(),
        "{paths:?}"
    );
    b.rt(&["delete", "--force", "rel"])?.expect_code(0)?;
    ensure!(cgroups_named(&parent)?.is_empty(), "{parent} left");
    Ok(())
}

/// A memory limit on a parent the test made (as an engine makes a pod's
/// cgroup) applies to the container beneath it: a 64 MiB dd, with no limit
/// of its own, is OOM-killed by the parent's 32 MiB; and `delete` leaves
/// the parent, which the runtime did not make. With cgroupsPath flattened
/// into one name (the old code) the container is not beneath the parent and
/// dd succeeds.
fn a_parents_limit_applies_beneath_it() -> Result<()> {
    let base = own_base()?;
    let (parent, leaf) = (h1_name("pod"), h1_name("ctr"));
    let _tidy = Tidy::new(&base, &[&parent, &leaf])?;
    let h = Hierarchies::detect()?;
    let (dir, limit_file) = match cgroup_version()? {
        Version::V1 => {
            let memory = h.v1_with("memory").context("no memory hierarchy")?;
            (
                memory
                    .mount
                    .join(base.trim_start_matches('/'))
                    .join(&parent),
                "memory.limit_in_bytes",
            )
        }
        Version::V2 => {
            let tree = h.v2.as_ref().context("no cgroup2 tree")?;
            let above = tree.mount.join(base.trim_start_matches('/'));
            fs::write(above.join("cgroup.subtree_control"), "+memory")
                .with_context(|| format!("enabling memory in {}", above.display()))?;
            (above.join(&parent), "memory.max")
        }
    };
    fs::create_dir(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    fs::write(dir.join(limit_file), "33554432")?;
    let swap = ["memory.memsw.limit_in_bytes", "memory.swap.max"];
    for (file, value) in swap.iter().zip(["33554432", "0"]) {
        if dir.join(file).exists() {
            fs::write(dir.join(file), value)?;
        }
    }
    let mut b = Bundle::new(&["true"])?;
    b.config["process"]["args"] = json!(dd_argv("64M"));
    b.config["linux"]["cgroupsPath"] = json!(format!("{base}/{parent}/{leaf}"));
    b.save()?;
    let out = b.run("hog");
    let kept = dir.exists();
    let _ = fs::remove_dir(&dir);
    out?.expect_code(137)?;
    ensure!(
        kept,
        "delete removed {}, which the test made",
        dir.display()
    );
    ensure!(cgroups_named(&leaf)?.is_empty(), "{leaf} left");
    Ok(())
}

/// The first block device that is a disk (not a loop or zram device), as
/// `major:minor`.
fn a_disk() -> Option<(i64, i64)> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram"))
        .collect();
    names.sort();
    let dev = fs::read_to_string(format!("/sys/block/{}/dev", names.first()?)).ok()?;
    let (major, minor) = dev.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Whether the v2 tree offers `controller` (on v1: whether a hierarchy has it).
fn has_controller(controller: &str) -> Result<bool> {
    let h = Hierarchies::detect()?;
    Ok(match cgroup_version()? {
        Version::V1 => h.v1_with(controller).is_some(),
        Version::V2 => {
            let mount = &h.v2.as_ref().context("no cgroup2 tree")?.mount;
            fs::read_to_string(mount.join("cgroup.controllers"))?
                .split_whitespace()
                .any(|c| c == controller)
        }
    })
}

/// The fields engines send beyond chapter 4's limits land in their files,
/// read back from the container's cgroup: block I/O throttles (and Docker's
/// zero weight sets nothing), cpusets, real-time CPU time (v1), idle,
/// burst, memory reservation, swappiness and the OOM killer switch (v1).
fn every_resource_lands_in_its_file() -> Result<()> {
    let v1 = cgroup_version()? == Version::V1;
    let mut b = Bundle::new(&["sleep", "30"])?;
    let mut resources = json!({
        "cpu": {"idle": 0, "burst": 1000, "quota": 50000, "period": 100000},
        "memory": {"limit": 67108864, "reservation": 33554432, "kernel": 0},
        "blockIO": {"weight": 0},
    });
    let disk =
        a_disk().filter(|_| has_controller(if v1 { "blkio" } else { "io" }).unwrap_or(false));
    if let Some((major, minor)) = disk {
        resources["blockIO"]["throttleReadBpsDevice"] =
            json!([{"major": major, "minor": minor, "rate": 1048576}]);
        resources["blockIO"]["throttleWriteIOPSDevice"] =
            json!([{"major": major, "minor": minor, "rate": 100}]);
    }
    let cpuset = has_controller("cpuset")?;
    if cpuset {
        resources["cpu"]["cpus"] = json!("0");
        resources["cpu"]["mems"] = json!("0");
    }
    if v1 {
        resources["cpu"]["realtimePeriod"] = json!(1000000);
        resources["cpu"]["realtimeRuntime"] = json!(10000);
        resources["memory"]["swappiness"] = json!(7);
        resources["memory"]["disableOOMKiller"] = json!(true);
    }
    b.config["linux"]["resources"] = resources;
    b.save()?;
    b.start("all")?;
    let dirs = b.cgroup_dirs()?;
    let mut expected: Vec<(&str, String)> = Vec::new();
    if v1 {
        expected.extend([
            ("cpu.idle", "0".to_string()),
            ("cpu.cfs_burst_us", "1000".to_string()),
            ("cpu.rt_period_us", "1000000".to_string()),
            ("cpu.rt_runtime_us", "10000".to_string()),
            ("memory.soft_limit_in_bytes", "33554432".to_string()),
            ("memory.swappiness", "7".to_string()),
        ]);
        let oom = cgroup_file(&dirs, "memory.oom_control")?.context("no memory.oom_control")?;
        ensure!(
            oom.contains("oom_kill_disable 1"),
            "memory.oom_control: {oom}"
        );
        if let Some((major, minor)) = disk {
            expected.push((
                "blkio.throttle.read_bps_device",
                format!("{major}:{minor} 1048576"),
            ));
            expected.push((
                "blkio.throttle.write_iops_device",
                format!("{major}:{minor} 100"),
            ));
        }
        if cpuset {
            expected.push(("cpuset.cpus", "0".to_string()));
            expected.push(("cpuset.mems", "0".to_string()));
        }
    } else {
        expected.extend([
            ("cpu.idle", "0".to_string()),
            ("cpu.max.burst", "1000".to_string()),
            ("memory.low", "33554432".to_string()),
        ]);
        if let Some((major, minor)) = disk {
            let io = cgroup_file(&dirs, "io.max")?.context("no io.max")?;
            ensure!(
                io.contains(&format!(
                    "{major}:{minor} rbps=1048576 wbps=max riops=max wiops=100"
                )),
                "io.max: {io}"
            );
        }
        if cpuset {
            expected.push(("cpuset.cpus", "0".to_string()));
            expected.push(("cpuset.mems", "0".to_string()));
        }
    }
    for (file, value) in &expected {
        let actual = cgroup_file(&dirs, file)?;
        ensure!(
            actual.as_deref() == Some(value.as_str()),
            "{file}: {actual:?} in {dirs:?}"
        );
    }
    b.rt(&["delete", "--force", "all"])?.expect_code(0)?;
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    Ok(())
}

/// A field whose controller the machine lacks is one clear error naming
/// both, and nothing is left behind: hugepage limits without hugetlb (not
/// mounted on the v1 development machine). Where hugetlb is there (the v2
/// VM), the limit lands in hugetlb.2MB.max instead.
fn a_missing_controller_is_named() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["linux"]["resources"] = json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]});
    b.save()?;
    if has_controller("hugetlb")? {
        b.start("huge")?;
        let dirs = b.cgroup_dirs()?;
        let file = if cgroup_version()? == Version::V1 {
            "hugetlb.2MB.limit_in_bytes"
        } else {
            "hugetlb.2MB.max"
        };
        let actual = cgroup_file(&dirs, file)?;
        ensure!(actual.as_deref() == Some("0"), "{file}: {actual:?}");
        b.rt(&["delete", "--force", "huge"])?.expect_code(0)?;
    } else {
        let out = b.create("huge")?;
        fails_with(
            &out,
            "linux.resources.hugepageLimits needs the hugetlb controller",
        )?;
        ensure!(out.stderr.trim().lines().count() == 1, "{out:?}");
        ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
        ensure!(b.leftovers()?.is_empty(), "{:?}", b.leftovers()?);
    }
    Ok(())
}

/// `unified` is written as given on v2 and refused on v1 with one line; a
/// systemd `slice:prefix:name` path is refused, pointing at cgroupfs.
fn unified_and_systemd_paths() -> Result<()> {
    let mut b = Bundle::new(&["sleep", "30"])?;
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864},
                                             "unified": {"memory.high": "50331648"}});
    b.save()?;
    if cgroup_version()? == Version::V1 {
        fails_with(
            &b.create("uni")?,
            "linux.resources.unified holds cgroup v2 files",
        )?;
    } else {
        b.start("uni")?;
        let high = cgroup_file(&b.cgroup_dirs()?, "memory.high")?;
        ensure!(high.as_deref() == Some("50331648"), "memory.high: {high:?}");
        b.rt(&["delete", "--force", "uni"])?.expect_code(0)?;
    }
    ensure!(b.cgroup_dirs()?.is_empty(), "{:?}", b.cgroup_dirs()?);
    b.config["linux"]["resources"] = json!({});
    b.config["linux"]["cgroupsPath"] = json!("system.slice:cfs-h1:x");
    b.save()?;
    fails_with(&b.create("sd")?, "configure the engine for cgroupfs")?;
    ensure!(b.leftovers()?.is_empty(), "{:?}", b.leftovers()?);
    Ok(())
}
// End of helper h1's block.

/// Hints that follow the failure (see `cfs_tests::lab::hints`).
const HINTS: &[(&str, &str)] = &[
    (
        r"exec\.fifo.*(EBADF|Bad file descriptor)",
        "the byte went to a descriptor that cannot be written (EBADF): the O_PATH descriptor \
         of exec.fifo only names it; wait_for_start must reopen it O_WRONLY through \
         /proc/self/fd/N and write on what that open(2) returned",
    ),
    (
        r"process is stopped did not return within",
        "start waited for ever on a container that never answers: it must poll(2) exec.fifo \
         for the container's byte, checking alive() and its 10 s deadline between polls, \
         before it removes the fifo",
    ),
];

fn main() -> ExitCode {
    cfs_tests::lab::hints(HINTS);
    cfs_tests::main(vec![
        plain("cli_version_and_global_flags", cli_flags),
        check(
            "lifecycle_create_start_kill_delete",
            "after create the process is set up but still runs the runtime's binary \
             (/proc/<pid>/exe), sits in its cgroup, has printed nothing, and state says created \
             with exec.fifo present; after start, state says running, the fifo is gone and the \
             command prints; kill TERM makes it stopped; start of a container whose process is \
             stopped (SIGSTOP) gives up after 10 s and leaves it created; delete leaves no state, \
             cgroup or mount",
            "the child blocks in wait_for_start, opening exec.fifo for writing through \
             /proc/self/fd, until start opens it for reading and reads its byte; start then \
             removes the fifo, and status tells created from running by it",
            lifecycle,
        ),
        root("kill_takes_signal_names_and_numbers", signal_names),
        root(
            "kill_all_reaches_every_process",
            kill_all_reaches_every_process,
        ),
        check(
            "state_is_stopped_after_the_process_exits",
            "a container whose command ends after 0.3 s is running just after start and then \
             stopped, with pid 0, though no runtime process ran meanwhile to record it",
            "status derives stopped from the kernel: a process that is gone, a zombie, or another \
             process with the same PID (another start time) is not alive()",
            stopped_on_its_own,
        ),
        check(
            "state_is_creating_during_create",
            "a createRuntime hook that runs `state` on the container being created reads \
             creating; once create returned, state says created",
            "status returns the stored creating before it looks at the process: create saves \
             creating first, and created only once the process reported ready",
            state_is_creating_during_create,
        ),
        check(
            "delete_needs_force_for_a_running_container",
            "delete of a running container fails saying use --force and changes nothing; delete \
             --force kills it (its PID is gone or a zombie) and leaves no state and no cgroup; a \
             created container goes without --force",
            "delete decides by status(): stopped and created may go, running and paused need \
             --force",
            delete_rules,
        ),
        check(
            "run_returns_the_exit_code",
            "run is create, start and wait: the command's output and its exit code 3 come back \
             through the runtime, and no state is left",
            "start must release the container (the byte on exec.fifo) and return, so that run can \
             wait for it",
            run_returns_the_exit_code,
        ),
        root("bad_bundles_fail_cleanly", bad_bundles),
        root(
            "kill_and_delete_answer_as_runc",
            kill_and_delete_answer_as_runc,
        ),
        root("runtime_never_signals_itself", runtime_never_signals_itself),
        root(
            "no_descriptor_leaks_into_the_container",
            no_descriptor_leaks_into_the_container,
        ),
        root(
            "preserved_and_listen_fds_pass",
            preserved_and_listen_fds_pass,
        ),
        root(
            "runtime_binary_cannot_be_overwritten",
            runtime_binary_cannot_be_overwritten,
        ),
        root(
            "namespaces_new_and_joined_by_path",
            namespaces_new_and_joined,
        ),
        root("hostname_user_and_groups", hostname_user_and_groups),
        check(
            "capabilities_all_five_sets",
            "as uid 1000 with bounding {CHOWN, KILL, NET_BIND_SERVICE} and the other sets {KILL, \
             NET_BIND_SERVICE} or {NET_BIND_SERVICE}, /proc/<pid>/status shows CapBnd, CapInh, \
             CapAmb, CapPrm and CapEff as exactly those masks after execve(2); the default \
             config's root has no CAP_SYS_ADMIN",
            "apply sets effective, inheritable and permitted (caps::set, in that order), then \
             clears ambient and raises each ambient capability that is also in permitted and \
             inheritable",
            capabilities_all_five_sets,
        ),
        root(
            "no_new_privileges_and_seccomp",
            no_new_privileges_and_seccomp,
        ),
        root(
            "masked_and_readonly_paths",
            masked_readonly_paths_and_readonly_root,
        ),
        root("mounts_in_order_with_options", mounts_in_order_with_options),
        root("rootfs_propagation", rootfs_propagation),
        root("devices_default_and_listed", devices_default_and_listed),
        root("sysctl_rlimits_oom_score_adj", sysctl_rlimits_oom_score),
        check(
            "user_namespace_maps",
            "with a user namespace mapping 0 to host uid 100000 (65536 ids), /proc/<pid>/uid_map \
             shows that line, the host sees uid 100000, id -u inside prints 0, and exec joins the \
             same namespace",
            "write_maps runs in the runtime while the child waits on the sync pipe: one write(2) \
             of containerID hostID size lines to /proc/<pid>/uid_map, then gid_map",
            user_namespace_maps,
        ),
        root("hooks_get_the_state_on_stdin", hooks_get_the_state),
        root(
            "hook_failures_follow_the_spec",
            hook_failures_follow_the_spec,
        ),
        root("rlimits_and_pid_file", rlimits_and_pid_file),
        root(
            "hostname_in_a_joined_uts_namespace",
            hostname_in_a_joined_uts_namespace,
        ),
        root("exec_ps_and_list", exec_ps_and_list),
        root(
            "containerd_runs_a_container_on_it",
            containerd_drives_the_runtime,
        ),
        root(
            "terminal_through_console_socket",
            terminal_through_console_socket,
        ),
        root("veth_network_from_a_hook", veth_network_from_a_hook),
        root(
            "resources_are_written_to_the_cgroup",
            resources_are_written_to_the_cgroup,
        ),
        root(
            "cgroup_named_after_the_id_without_cgroups_path",
            cgroup_named_after_the_id_without_cgroups_path,
        ),
        root("memory_limit_oom_kills", memory_limit_oom_kills),
        root("pause_and_resume", pause_and_resume),
        root("exec_joins_the_cgroup", exec_joins_the_cgroup),
        root(
            "delete_kills_what_is_left_in_the_cgroup",
            delete_kills_what_is_left_in_the_cgroup,
        ),
        root(
            "failed_cgroup_create_leaves_nothing",
            failed_cgroup_create_leaves_nothing,
        ),
        root(
            "cgroup_mount_shows_its_own_cgroup",
            cgroup_mount_shows_its_own_cgroup,
        ),
        root("device_rules", device_rules),
        // cgroupsPath and linux.resources (helper h1's block).
        root(
            "cgroup_absolute_path_lands_from_the_root",
            absolute_cgroups_path_lands_from_the_root,
        ),
        root(
            "cgroup_relative_path_lands_beneath_its_own",
            relative_cgroups_path_lands_beneath_its_own,
        ),
        root(
            "cgroup_parents_limit_applies_beneath_it",
            a_parents_limit_applies_beneath_it,
        ),
        root(
            "cgroup_every_resource_lands_in_its_file",
            every_resource_lands_in_its_file,
        ),
        root(
            "cgroup_missing_controller_is_named",
            a_missing_controller_is_named,
        ),
        root(
            "cgroup_unified_and_systemd_paths",
            unified_and_systemd_paths,
        ),
    ])
}
