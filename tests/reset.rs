//! The learner's environment, part 2: `scripts/reset` (part 1, doctor, is
//! tests/doctor.rs).
//!
//! Reset is shown cleaning a mess made on purpose (a chapter binary killed
//! with SIGKILL mid-run, a mounted overlay, stacked mounts, cgroups with live
//! processes, a network namespace, veths, a state file) and leaving alone what
//! is not the project's: a cgroup under another name, a process whose PID a
//! stale state file names; the mount table is as it was, and every cgroup at,
//! beneath and beside the test's own is still there. On this shared machine
//! every reset is narrowed to names and directories the test made
//! (`--prefix`, `--state-dir`, `--build-dir`).

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, SystemTime};

use cfs_tests::kernel::{
    assert_mounts_unchanged, cgroup_dirs_holding, cgroups_named, children, dirs_below, exists,
    mounts, state,
};
use cfs_tests::paths::{bin, rootfs, workspace};
use cfs_tests::run::{as_nobody, output, wait_for, Background, Output};
use cfs_tests::scripts::{path_str, script, sh, write};
use cfs_tests::{ensure, root, Context, Result};
use nix::unistd::Pid;

/// This process's own cgroups where a test may create children: the cgroup2
/// one and, on a v1 or hybrid machine, the pids one.
fn own_cgroups() -> Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    let unified = if exists("/sys/fs/cgroup/cgroup.controllers") {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    };
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            dirs.push(unified.join(rel));
        } else if controllers.split(',').any(|c| c == "pids") {
            dirs.push(Path::new("/sys/fs/cgroup/pids").join(rel));
        }
    }
    ensure!(!dirs.is_empty(), "no cgroup found in /proc/self/cgroup");
    Ok(dirs)
}

/// Every cgroup directory where the project may create its own: at and below
/// the test's own cgroup in each mounted hierarchy and, on cgroup2, beside it
/// (chapter 4 goes beside its cgroup when it cannot nest). Compared before and
/// after a reset: the host's cgroups there must be as they were.
fn cgroup_snapshot() -> Result<std::collections::BTreeSet<PathBuf>> {
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let mut found = std::collections::BTreeSet::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(point), Some(fstype), Some(options)) =
            (left.get(3), left.get(4), right.first(), right.get(2))
        else {
            continue;
        };
        let options: Vec<&str> = options.split(',').collect();
        // This hierarchy's line of /proc/self/cgroup: "0::path" for cgroup2,
        // "id:controllers:path" for a v1 hierarchy mounted with those options.
        let path = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let matches = match *fstype {
                "cgroup2" => controllers.is_empty(),
                "cgroup" => {
                    !controllers.is_empty() && controllers.split(',').all(|c| options.contains(&c))
                }
                _ => false,
            };
            matches.then_some(path)
        });
        let Some(path) = path else { continue };
        let Some(rel) = path.strip_prefix(root) else {
            continue;
        };
        let dir = Path::new(point).join(rel.trim_start_matches('/'));
        found.extend(dirs_below(&dir, 8));
        if *fstype == "cgroup2" && dir != Path::new(point) {
            if let Some(parent) = dir.parent() {
                found.insert(parent.to_path_buf());
                found.extend(dirs_below(parent, 1));
            }
        }
        found.insert(dir);
    }
    ensure!(
        !found.is_empty(),
        "no cgroup of this process found in mountinfo"
    );
    Ok(found)
}

/// Creates cgroup `name` beneath each of `parents`.
fn make_cgroups(parents: &[PathBuf], name: &str) -> Result<Vec<PathBuf>> {
    parents
        .iter()
        .map(|p| {
            let dir = p.join(name);
            fs::create_dir(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
            Ok(dir)
        })
        .collect()
}

/// A command that runs `argv` inside `cgroups` (it moves itself in before exec).
fn in_cgroups(cgroups: &[PathBuf], argv: &[&str]) -> Command {
    let list: Vec<String> = cgroups.iter().map(|c| c.display().to_string()).collect();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"IFS=:; for d in $CGROUPS; do echo $$ >"$d/cgroup.procs" || exit 99; done; unset IFS; exec "$@""#)
        .arg("sh")
        .args(argv)
        .env("CGROUPS", list.join(":"));
    cmd
}

fn start_in(cgroups: &[PathBuf], argv: &[&str]) -> Result<Background> {
    Background::start(in_cgroups(cgroups, argv))
}

fn alive(pid: impl ToString) -> bool {
    matches!(state(&pid.to_string()), Some(s) if s != 'Z')
}

/// Names, directories and the made-up mess of one reset test; on drop, cleans
/// up whatever the test did not get to (with reset itself, narrowed to them).
struct Mess {
    prefix: String,
    /// Exact names of the project's things to clean as well (`--name`).
    names: Vec<String>,
    base: tempfile::TempDir,
    state: PathBuf,
    build: PathBuf,
    cleanup: Vec<String>,
}

impl Mess {
    fn new(tag: &str) -> Result<Self> {
        let prefix = format!("cfs-{tag}{}-", std::process::id());
        let base = tempfile::Builder::new().prefix("cfs-reset-").tempdir()?;
        let state = base.path().join("cfs-state");
        let build = base.path().join("cfs-build");
        fs::create_dir_all(&state)?;
        fs::create_dir_all(&build)?;
        Ok(Mess {
            prefix,
            names: Vec::new(),
            base,
            state,
            build,
            cleanup: Vec::new(),
        })
    }

    fn reset_args(&self) -> Vec<String> {
        let mut args = vec![
            "--prefix".into(),
            self.prefix.clone(),
            "--state-dir".into(),
            self.state.display().to_string(),
            "--build-dir".into(),
            self.build.display().to_string(),
        ];
        for name in &self.names {
            args.push("--name".into());
            args.push(name.clone());
        }
        args
    }

    fn reset(&self, extra: &[&str], netns: Option<&str>) -> Result<Output> {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg(workspace().join("scripts/reset"));
                c
            }
            None => script("reset"),
        };
        cmd.args(extra).args(self.reset_args());
        output(cmd)
    }

    /// Mounts an overlay at `<state>/overlay/merged`.
    fn overlay(&self) -> Result<PathBuf> {
        let o = self.state.join("overlay");
        for d in ["lower", "upper", "work", "merged"] {
            fs::create_dir_all(o.join(d))?;
        }
        fs::write(o.join("lower/motd"), "from the lower layer\n")?;
        let opts = format!(
            "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
            o.display()
        );
        sh(&format!(
            "mount -t overlay overlay -o '{opts}' '{}'",
            o.join("merged").display()
        ))?;
        Ok(o.join("merged"))
    }
}

impl Drop for Mess {
    fn drop(&mut self) {
        let _ = self.reset(&[], None);
        for cmd in &self.cleanup {
            let _ = Command::new("sh").arg("-c").arg(cmd).status();
        }
        let _ = self.base.path();
    }
}

fn is_mounted(path: &Path) -> Result<bool> {
    let p = path.display().to_string();
    Ok(mounts()?
        .iter()
        .any(|m| m.split(' ').next() == Some(p.as_str())))
}

fn reset_cleans_a_mess_and_nothing_else() -> Result<()> {
    let mut mess = Mess::new("r")?;
    let p = mess.prefix.clone();
    let own = own_cgroups()?;

    // A network namespace of the test's own to run reset in, so that its
    // veths never touch the host's network; made before the snapshot.
    let outer = format!("cfs-o{}n", std::process::id());
    // The first `ip netns add` on a machine mounts /run/netns (a bind mount
    // of itself, so that the namespaces' mounts can propagate); undo that too.
    let netns_dir_mounted = is_mounted(Path::new("/run/netns"))?;
    sh(&format!("ip netns add {outer}"))?;
    mess.cleanup.push(format!("ip netns delete {outer}"));
    if !netns_dir_mounted {
        mess.cleanup
            .push("[ -z \"$(ls -A /run/netns)\" ] && umount /run/netns".to_string());
    }
    // Not the project's (another name): must survive.
    let other = make_cgroups(&own, &format!("cfs-o{}", std::process::id()))?;
    for dir in &other {
        mess.cleanup.push(format!("rmdir '{}'", dir.display()));
    }
    let innocent = start_in(&other, &["sleep", "1000"])?;

    let before = mounts()?;
    let cgroups_before = cgroup_snapshot()?;

    // 1. Chapter binaries stopped mid-run. Chapter 4's runtime, killed with
    //    SIGKILL, cannot remove its cgroup cfs-<its pid>. No pipes: a
    //    container that outlived its runtime would hold them open.
    let mut runtime = Command::new(bin("ch04-cgroups"))
        .args(["--rootfs", path_str(&rootfs()?)?, "--pids", "16", "--"])
        .args(["sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start ch04-cgroups")?;
    let runtime_pid = Pid::from_raw(runtime.id() as i32);
    let runtime_cgroup = format!("cfs-{runtime_pid}");
    mess.names.push(runtime_cgroup.clone());
    let container = wait_for(Duration::from_secs(20), || {
        children(runtime_pid).first().copied()
    })?;
    wait_for(Duration::from_secs(20), || {
        cgroup_dirs_holding(&runtime_cgroup, container)
    })
    .context("the container never joined its cgroup")?;
    runtime.kill().context("failed to SIGKILL ch04-cgroups")?;
    let status = runtime.wait()?;
    ensure!(
        status.signal() == Some(9),
        "ch04-cgroups ended with {status}"
    );
    ensure!(
        !cgroups_named(&runtime_cgroup)?.is_empty(),
        "no cgroup {runtime_cgroup} was left behind"
    );
    //    Chapter 6's `create` leaves a container waiting for `start`, found
    //    through its state.json.
    let bundle = mess.base.path().join("bundle");
    fs::create_dir_all(&bundle)?;
    output({
        let mut c = Command::new(bin("ch06-full-runtime"));
        c.args(["spec", "--bundle", path_str(&bundle)?]);
        c
    })?
    .expect_code(0)?;
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config_path)?)?;
    config["root"] = serde_json::json!({ "path": rootfs()?, "readonly": true });
    config["process"]["terminal"] = serde_json::json!(false);
    config["process"]["args"] = serde_json::json!(["sleep", "1000"]);
    fs::write(&config_path, config.to_string())?;
    let id = format!("{p}c");
    // Its cgroup is cfs-<id> beneath the runtime's own (the default
    // cgroupsPath of `spec`), so not named with the prefix: named for reset.
    let ch06_cgroup = format!("cfs-{id}");
    mess.names.push(ch06_cgroup.clone());
    let ch06_root = mess.state.join("ch06");
    let status = Command::new(bin("ch06-full-runtime"))
        .args(["--root", path_str(&ch06_root)?, "create", &id])
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(
        status.success(),
        "ch06-full-runtime create failed: {status}"
    );
    let state_json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(ch06_root.join(&id).join("state.json"))?)?;
    let created = state_json["pid"]
        .as_i64()
        .context("no pid in ch06's state.json")?;
    ensure!(
        alive(created),
        "the created container {created} is not running"
    );

    // 2. A cgroup with a live process, and one nested beneath it.
    let busy_cg = make_cgroups(&own, &format!("{p}b"))?;
    let nested_cg = make_cgroups(&busy_cg, "inner")?;
    let busy = start_in(&busy_cg, &["sleep", "1000"])?;
    let nested = start_in(&nested_cg, &["sleep", "1000"])?;

    // 3. A mounted overlay under the state directory; under the build
    //    directory a tmpfs, and two tmpfs stacked on one point.
    let merged = mess.overlay()?;
    let scratch = mess.build.join("scratch");
    let stacked = mess.build.join("stacked");
    fs::create_dir_all(&scratch)?;
    fs::create_dir_all(&stacked)?;
    write(mess.build.join("keep.txt"), "a build product\n")?;
    // 3b. In a rootfs of the build directory, the empty put_old directory a
    //     runtime killed during pivot_root leaves, and one with a file in it
    //     (not a put_old of the project's: kept).
    let put_old = mess.build.join("rootfs/.oldroot-AbC123");
    let full = mess.build.join("rootfs/.oldroot-full");
    fs::create_dir_all(&put_old)?;
    fs::create_dir_all(&full)?;
    write(full.join("file"), "keep\n")?;
    sh(&format!(
        "mount -t tmpfs cfs-test '{0}' && mount -t tmpfs cfs-test '{1}' && mount -t tmpfs cfs-test '{1}'",
        scratch.display(),
        stacked.display()
    ))?;

    // 4. State files: one names a live container process; the other is stale
    //    and names a PID that started after it was written (a reused PID).
    let recorded = Background::start({
        let mut c = Command::new("sleep");
        c.arg("1000");
        c
    })?;
    write(
        mess.state.join("c1/state.json"),
        &format!(
            "{{\"ociVersion\": \"1.0.2\", \"id\": \"c1\", \"pid\": {}}}",
            recorded.pid()
        ),
    )?;
    let stale = mess.state.join("c2/state.json");
    write(&stale, "{}")?;
    let reused = Background::start({
        let mut c = Command::new("sleep");
        c.arg("1000");
        c
    })?;
    write(&stale, &format!("{{\"pid\": {}}}", reused.pid()))?;
    fs::File::options()
        .write(true)
        .open(&stale)?
        .set_modified(SystemTime::now() - Duration::from_secs(60))?;
    // Chapter 5's record of a container, with the start time of the process.
    let ch05_recorded = Background::start({
        let mut c = Command::new("sleep");
        c.arg("1000");
        c
    })?;
    let start_time = ch01_uts::process::start_time(ch05_recorded.pid().as_raw())
        .context("no start time in /proc/PID/stat")?;
    write(
        mess.state.join("ch05/containers/c4/container.json"),
        &format!(
            "{{\"id\": \"c4\", \"pid\": {}, \"start_time\": {start_time}}}",
            ch05_recorded.pid()
        ),
    )?;
    // A state file with a start time (as ch06 writes) that is not this process's.
    write(
        mess.state.join("c3/state.json"),
        &format!("{{\"pid\": {}, \"start_time\": 1}}", innocent.pid()),
    )?;

    // 5. A network namespace, and a veth pair in the namespace reset runs in.
    sh(&format!("ip netns add {p}ns"))?;
    sh(&format!(
        "ip -n {outer} link add {p}v0 type veth peer name {p}v1"
    ))?;

    ensure!(is_mounted(&merged)?, "the overlay is not mounted");
    let out = mess.reset(&[], Some(&outer))?;
    out.expect_code(0)?;
    for line in [
        // Found through its cgroup (cfs-<id>, chapter 6's name for it) or its state.json.
        format!("reset: kill pid {created} ("),
        "reset: remove cgroup ".to_string(),
        format!("/{runtime_cgroup}\n"),
        format!("/{ch06_cgroup}\n"),
        format!(
            "reset: leaving pid {} alone: it is not the process",
            innocent.pid()
        ),
        format!("reset: kill pid {} (sleep 1000; in cgroup", busy.pid()),
        format!("reset: kill pid {} (sleep 1000; in cgroup", nested.pid()),
        format!(
            "reset: kill pid {} (sleep 1000; recorded in",
            recorded.pid()
        ),
        format!(
            "reset: leaving pid {} alone: it started after",
            reused.pid()
        ),
        format!(
            "reset: kill pid {} (sleep 1000; recorded in {}",
            ch05_recorded.pid(),
            mess.state
                .join("ch05/containers/c4/container.json")
                .display()
        ),
        format!("reset: unmount {}", merged.display()),
        format!("reset: unmount {}", scratch.display()),
        format!("reset: delete network namespace {p}ns"),
        format!("reset: delete veth {p}v"),
        format!("reset: remove {}", mess.state.display()),
    ] {
        ensure!(out.stdout.contains(&line), "no {line:?} in\n{}", out.stdout);
    }

    // Nothing of the mess is left ...
    assert_mounts_unchanged(&before)?;
    // Every cgroup that was there before is still there, and none of the
    // test's names was added. (Others may come and go meanwhile: the
    // project's cfs-* groups of other runs, a systemd scope.)
    let cgroups_after = cgroup_snapshot()?;
    let ours = |dir: &&PathBuf| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .is_some_and(|n| n.starts_with(&p) || mess.names.contains(&n))
    };
    let added: Vec<_> = cgroups_after
        .difference(&cgroups_before)
        .filter(ours)
        .collect();
    let removed: Vec<_> = cgroups_before
        .difference(&cgroups_after)
        .filter(|dir| {
            !dir.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cfs-"))
                || other.contains(dir)
        })
        .collect();
    ensure!(
        added.is_empty() && removed.is_empty(),
        "the cgroups around the test's own changed: added {added:?}, removed {removed:?}"
    );
    ensure!(
        cgroups_named(&runtime_cgroup)?.is_empty(),
        "cgroup {runtime_cgroup} is left"
    );
    for pid in [
        container,
        Pid::from_raw(created as i32),
        busy.pid(),
        nested.pid(),
        recorded.pid(),
        ch05_recorded.pid(),
    ] {
        wait_for(Duration::from_secs(5), || (!alive(pid)).then_some(()))
            .with_context(|| format!("pid {pid} is still alive"))?;
    }
    for dir in own.iter() {
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            ensure!(
                !name.starts_with(&p),
                "cgroup {name} is left in {}",
                dir.display()
            );
        }
    }
    let netns =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output()?.stdout)
            .into_owned();
    ensure!(!netns.contains(&format!("{p}ns")), "netns left: {netns}");
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-n", &outer, "-o", "link", "show", "type", "veth"])
            .output()?
            .stdout,
    )
    .into_owned();
    ensure!(links.trim().is_empty(), "veths left: {links}");
    ensure!(!exists(&mess.state), "the state directory is left");
    // ... and what was not the project's is untouched.
    ensure!(
        exists(mess.build.join("keep.txt")),
        "reset deleted a build product"
    );
    ensure!(
        !exists(&put_old)
            && out
                .stdout
                .contains(&format!("reset: remove {}\n", put_old.display())),
        "reset did not remove the empty put_old directory {}:\n{}",
        put_old.display(),
        out.stdout
    );
    ensure!(
        exists(full.join("file"))
            && out.stderr.contains(&format!(
                "reset: leaving {}: it is not empty",
                full.display()
            )),
        "reset removed, or did not name, the .oldroot-* with a file in it:\n{}",
        out.stderr
    );
    ensure!(
        alive(innocent.pid()),
        "reset killed a process in another cgroup"
    );
    ensure!(
        alive(reused.pid()),
        "reset killed a process a stale state file names"
    );
    for dir in &other {
        ensure!(dir.is_dir(), "reset removed {}", dir.display());
    }

    // Run again: nothing left to do.
    let again = mess.reset(&[], None)?;
    again.expect_code(0)?;
    ensure!(
        again
            .stdout
            .contains("reset: nothing of the project's was left"),
        "{}",
        again.stdout
    );
    drop(innocent);
    drop(reused);
    drop(recorded);
    drop(ch05_recorded);
    drop(busy);
    drop(nested);
    Ok(())
}

fn reset_dry_run_changes_nothing() -> Result<()> {
    let mess = Mess::new("d")?;
    let own = own_cgroups()?;
    let cg = make_cgroups(&own, &format!("{}x", mess.prefix))?;
    let busy = start_in(&cg, &["sleep", "1000"])?;
    // A program of a student's lab copy (made by scripts/lab start: it has
    // .lab/chapter), here sleep under a chapter binary's name, in a cgroup.
    let copy = mess.base.path().join("lab-ch04");
    fs::create_dir_all(copy.join(".lab"))?;
    fs::create_dir_all(copy.join("target/debug"))?;
    fs::write(copy.join(".lab/chapter"), "ch04\n")?;
    let student = copy.join("target/debug/ch04-cgroups");
    fs::copy("/bin/sleep", &student)?;
    let cg2 = make_cgroups(&own, &format!("{}y", mess.prefix))?;
    let from_copy = start_in(&cg2, &[path_str(&student)?, "1000"])?;
    let merged = mess.overlay()?;
    wait_for(Duration::from_secs(5), || {
        fs::read_link(format!("/proc/{}/exe", from_copy.pid()))
            .is_ok_and(|exe| exe == student)
            .then_some(())
    })?;

    let out = mess.reset(&["--dry-run"], None)?;
    out.expect_code(0)?;
    for line in [
        format!(
            "reset: would kill pid {} (sleep 1000; in cgroup",
            busy.pid()
        ),
        format!("reset: would unmount {}", merged.display()),
        format!("reset: would remove cgroup {}", cg[0].display()),
        format!("reset: would remove {}", mess.state.display()),
        "reset: dry run: ".to_string(),
    ] {
        ensure!(out.stdout.contains(&line), "no {line:?} in\n{}", out.stdout);
    }
    // Each item says who made it and how long ago.
    let line_of = |needle: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    let age = regex::Regex::new(r"\d+ (s|min|h|days) ago\]$")?;
    for (needle, who) in [
        (
            format!("would kill pid {} (", busy.pid()),
            "[runs /usr/bin/sleep, started ".to_string(),
        ),
        (
            format!("would kill pid {} (", from_copy.pid()),
            format!(
                "[ch04 of the lab copy {} (lab ch04), started ",
                copy.display()
            ),
        ),
        (
            format!("would remove cgroup {}", cg[0].display()),
            ", made ".to_string(),
        ),
        (
            format!("would unmount {}", merged.display()),
            "mounted at an unknown time".to_string(),
        ),
        (
            format!("would remove {}", mess.state.display()),
            "[a state directory of a test, last changed ".to_string(),
        ),
    ] {
        let line = line_of(&needle);
        ensure!(
            line.contains(&who) && (age.is_match(&line) || who.contains("unknown time")),
            "the dry run does not say who made it and when ({who:?}): {line:?} in\n{}",
            out.stdout
        );
    }
    drop(from_copy);
    ensure!(alive(busy.pid()), "the dry run killed pid {}", busy.pid());
    ensure!(
        is_mounted(&merged)?,
        "the dry run unmounted {}",
        merged.display()
    );
    for dir in &cg {
        ensure!(dir.is_dir(), "the dry run removed {}", dir.display());
    }

    // A chapter binary of this checkout still running: chapters 1 to 3 keep
    // no state, so reset finds it by its path under target/, and its
    // container as its child; only when reset is not narrowed to some names
    // (another run's binaries are not among them).
    let ch02 = bin("ch02-pid");
    let mut runtime = Command::new(&ch02)
        .args(["--", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start ch02-pid")?;
    let runtime_pid = Pid::from_raw(runtime.id() as i32);
    // Its child, once it has exec'd the command (before, it runs ch02-pid too).
    let found = wait_for(Duration::from_secs(10), || {
        children(runtime_pid).first().copied().filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.ends_with("sleep"))
        })
    })
    .context("ch02-pid started no container running sleep");
    let outcome = found.and_then(|pid1| {
        let narrowed = mess.reset(&["--dry-run"], None)?;
        ensure!(
            !narrowed.stdout.contains(&format!("pid {runtime_pid} ")),
            "a narrowed reset would kill the chapter binary:\n{}",
            narrowed.stdout
        );
        let mut cmd = script("reset");
        cmd.args(["--dry-run", "--state-dir"])
            .arg(&mess.state)
            .arg("--build-dir")
            .arg(&mess.build);
        let all = output(cmd)?;
        all.expect_code(0)?;
        // reset shows the command line cut to 60 characters: match the rest.
        ensure!(
            all.stdout.lines().any(|l| {
                l.starts_with(&format!("reset: would kill pid {runtime_pid} ("))
                    && l.contains(&format!(
                        "; runs {}) [ch02 of this checkout, started ",
                        ch02.display()
                    ))
            }),
            "no line killing {runtime_pid}, which runs {}, in\n{}",
            ch02.display(),
            all.stdout
        );
        let line = format!("reset: would kill pid {pid1} (sleep 1000; child of {runtime_pid}) [");
        ensure!(all.stdout.contains(&line), "no {line:?} in\n{}", all.stdout);
        ensure!(alive(runtime_pid), "the dry run killed pid {runtime_pid}");
        Ok(pid1)
    });
    // Its children first (the container, PID 1 of its namespace, whether or
    // not the test got that far), then the runtime, which reaps them.
    for child in children(runtime_pid) {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = runtime.kill();
    let _ = runtime.wait();
    outcome?;

    let out = mess.reset(&[], None)?;
    out.expect_code(0)?;
    ensure!(
        !is_mounted(&merged)? && !alive(busy.pid()),
        "{}",
        out.stdout
    );
    Ok(())
}

fn reset_refuses_what_is_not_the_projects() -> Result<()> {
    let before = mounts()?;
    for (args, message) in [
        (
            vec!["--prefix", "system-"],
            "reset: --prefix must start with cfs-, not system-",
        ),
        (
            vec!["--state-dir", "/etc"],
            "reset: --state-dir /etc: not one of the project's directories (named containers-from-scratch or cfs-*, or this checkout's build/)",
        ),
        (
            vec!["--build-dir", "/"],
            "reset: --build-dir /: not one of the project's directories (named containers-from-scratch or cfs-*, or this checkout's build/)",
        ),
    ] {
        let mut cmd = script("reset");
        cmd.args(&args);
        let out = output(cmd)?;
        out.expect_code(2)?;
        ensure!(out.stderr.trim() == message, "{args:?}: {:?}", out.stderr);
        ensure!(out.stdout.is_empty(), "{args:?} did something: {}", out.stdout);
    }
    let out = as_nobody(script("reset"))?;
    out.expect_code(1)?;
    ensure!(
        out.stderr.trim() == "reset: run as root: sudo scripts/reset",
        "{:?}",
        out.stderr
    );
    assert_mounts_unchanged(&before)
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        root(
            "reset_cleans_a_mess_and_nothing_else",
            reset_cleans_a_mess_and_nothing_else,
        ),
        root(
            "reset_dry_run_changes_nothing",
            reset_dry_run_changes_nothing,
        ),
        root(
            "reset_refuses_what_is_not_the_projects",
            reset_refuses_what_is_not_the_projects,
        ),
    ])
}
