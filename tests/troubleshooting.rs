//! The errors of the book's troubleshooting appendix that are not console
//! sessions (their commands differ between a cgroup v1 or hybrid machine and
//! a cgroup v2 one): each one is made to happen, and its message checked.
//!
//! The suite runs on the hybrid development machine and again on a pure
//! cgroup v2 kernel (scripts/vm-test), so each test asserts what the layout
//! it runs on does; between the two runs every entry is reproduced.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use cfs_tests::kernel::{assert_mounts_unchanged, exists, mounts};
use cfs_tests::run::{output, wait_for, Background, Output};
use cfs_tests::{bail, ensure, root, Context, Result};

/// Whether /sys/fs/cgroup is a cgroup2 mount (a pure v2 machine, as the learners' VMs).
fn pure_v2() -> bool {
    exists("/sys/fs/cgroup/cgroup.controllers")
}

/// This process's cgroup in the cgroup2 hierarchy, and its path relative to the root.
fn own_v2() -> Result<(PathBuf, String)> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup2 line in /proc/self/cgroup")?
        .to_string();
    let root = if pure_v2() {
        "/sys/fs/cgroup"
    } else {
        "/sys/fs/cgroup/unified"
    };
    Ok((Path::new(root).join(rel.trim_start_matches('/')), rel))
}

/// This process's cgroup in the v1 hierarchy of `controller` (hybrid or v1 machines).
fn own_v1(controller: &str) -> Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then_some(path)
        })
        .with_context(|| format!("no {controller} line in /proc/self/cgroup"))?;
    Ok(Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel.trim_start_matches('/')))
}

/// A cgroup the test creates (named cfs-*) and removes when dropped.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(parent: &Path, tag: &str) -> Result<Self> {
        let dir = parent.join(format!("cfs-{tag}{}", std::process::id()));
        fs::create_dir(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        Ok(Cgroup(dir))
    }

    /// Starts `sleep` inside it.
    fn sleeper(&self) -> Result<Background> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ >"$1/cgroup.procs" && exec sleep 1000"#)
            .arg("sh")
            .arg(&self.0);
        let bg = Background::start(cmd)?;
        let procs = self.0.join("cgroup.procs");
        let pid = bg.pid().to_string();
        wait_for(Duration::from_secs(5), || {
            fs::read_to_string(&procs)
                .ok()
                .filter(|t| t.lines().any(|l| l == pid))
        })
        .with_context(|| format!("the sleep did not show up in {}", procs.display()))?;
        Ok(bg)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs a bash command line (bash, for the error messages learners see), in
/// a UTF-8 locale as on the VM (it decides the quotes coreutils prints).
fn bash(line: &str) -> Result<Output> {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(line).env("LC_ALL", "C.UTF-8");
    output(cmd)
}

fn failed_with(out: &Output, message: &str) -> Result<()> {
    ensure!(
        out.code != 0 && out.stderr.contains(message),
        "wanted a failure saying {message:?}, got exit {} and\n{}",
        out.code,
        out.stderr
    );
    Ok(())
}

/// `rmdir` of a cgroup that still has a process: EBUSY, on v1 and v2 alike.
fn rmdir_of_a_cgroup_with_a_process_is_ebusy() -> Result<()> {
    let mut parents = vec![own_v2()?.0];
    if !pure_v2() {
        parents.push(own_v1("pids")?);
    }
    for parent in parents {
        let cg = Cgroup::new(&parent, "tb")?;
        let sleeper = cg.sleeper()?;
        let out = bash(&format!("rmdir '{}'", cg.0.display()))?;
        ensure!(
            out.code == 1
                && out.stderr.trim()
                    == format!(
                        "rmdir: failed to remove '{}': Device or resource busy",
                        cg.0.display()
                    ),
            "rmdir printed {:?} (exit {})",
            out.stderr,
            out.code
        );
        // Once the process is gone, the same rmdir works.
        drop(sleeper);
        wait_for(Duration::from_secs(5), || fs::remove_dir(&cg.0).ok())?;
    }
    Ok(())
}

/// Enabling a controller for the children of a cgroup that holds processes.
/// On cgroup v2 (the learners' VMs, and scripts/vm-test) the shell's own
/// cgroup, session-1.scope, holds processes: enabling a domain controller
/// such as memory there fails with EBUSY (the "no internal processes" rule).
/// On the hybrid development machine the controllers belong to the v1
/// hierarchies, so cgroup2 cannot enable them at all: ENOENT.
fn enabling_controllers_for_children() -> Result<()> {
    let (own, rel) = own_v2()?;
    if pure_v2() {
        if rel == "/" {
            bail!("this test runs in the root cgroup, which is exempt from the rule: run it from a login shell or in scripts/vm-test");
        }
        let available = fs::read_to_string(own.join("cgroup.controllers"))?;
        ensure!(
            available.split_whitespace().any(|c| c == "memory"),
            "memory is not available in {} (only {available:?})",
            own.display()
        );
        let file = own.join("cgroup.subtree_control");
        let before = fs::read_to_string(&file)?;
        // Only a domain controller: it is refused as a whole while processes
        // live here, so the write cannot change the cgroup we did not create.
        let out = bash(&format!("echo +memory > '{}'", file.display()))?;
        failed_with(&out, "echo: write error: Device or resource busy")?;
        ensure!(
            fs::read_to_string(&file)? == before,
            "{} changed",
            file.display()
        );
    } else {
        let cg = Cgroup::new(&own, "tc")?;
        let out = bash(&format!(
            "echo +memory > '{}'",
            cg.0.join("cgroup.subtree_control").display()
        ))?;
        failed_with(&out, "echo: write error: No such file or directory")?;
    }
    Ok(())
}

/// The threaded trap (cgroup v2): enabling only "threaded" controllers (cpu,
/// pids) in a cgroup that holds processes is allowed, and makes that cgroup a
/// threaded root; its new children are then "domain invalid" and refuse
/// processes with EOPNOTSUPP. Shown in cgroups of the test's own, beside its
/// cgroup as chapter 4 places them (where the controllers are available). On
/// the hybrid machine cgroup2 has no controllers to enable at all: ENOENT.
fn threaded_controllers_where_processes_live() -> Result<()> {
    let (own, rel) = own_v2()?;
    if !pure_v2() {
        let cg = Cgroup::new(&own, "tt")?;
        let out = bash(&format!(
            "echo +pids > '{}'",
            cg.0.join("cgroup.subtree_control").display()
        ))?;
        return failed_with(&out, "echo: write error: No such file or directory");
    }
    if rel == "/" {
        bail!("this test runs in the root cgroup: run it from a login shell or in scripts/vm-test");
    }
    let parent = own.parent().context("no parent cgroup")?;
    let available = fs::read_to_string(parent.join("cgroup.subtree_control"))?;
    ensure!(
        available.split_whitespace().any(|c| c == "pids"),
        "pids is not enabled for the children of {} ({available:?})",
        parent.display()
    );
    let busy = Cgroup::new(parent, "tt")?;
    let _sleeper = busy.sleeper()?;
    // Allowed, although the cgroup holds a process: pids is a threaded controller.
    let out = bash(&format!(
        "echo +pids > '{}'",
        busy.0.join("cgroup.subtree_control").display()
    ))?;
    out.expect_code(0)?;
    let kind = fs::read_to_string(busy.0.join("cgroup.type"))?;
    ensure!(kind.trim() == "domain threaded", "cgroup.type is {kind:?}");
    let child = Cgroup::new(&busy.0, "ttchild")?;
    let kind = fs::read_to_string(child.0.join("cgroup.type"))?;
    ensure!(
        kind.trim() == "domain invalid",
        "the child's cgroup.type is {kind:?}"
    );
    let out = bash(&format!(
        "echo $$ > '{}'",
        child.0.join("cgroup.procs").display()
    ))?;
    failed_with(&out, "echo: write error: Operation not supported")?;
    drop(child);
    Ok(())
}

/// A chapter 4 run with only threaded limits (cpu, pids) must not fall into
/// the trap above with the cgroup it runs in: the runtime's own cgroup keeps
/// its type and its `cgroup.subtree_control`.
fn chapter_4_leaves_its_own_cgroup_as_it_was() -> Result<()> {
    let (own, _) = own_v2()?;
    let control = own.join("cgroup.subtree_control");
    let kind = own.join("cgroup.type");
    let before = (
        fs::read_to_string(&control)?,
        fs::read_to_string(&kind).ok(),
    );
    let root = cfs_tests::paths::rootfs()?;
    let mut cmd = Command::new(cfs_tests::paths::bin("ch04-cgroups"));
    cmd.arg("--rootfs")
        .arg(&root)
        .args(["--cpus", "0.5", "--pids", "16", "--", "true"]);
    output(cmd)?.expect_code(0)?;
    let after = (
        fs::read_to_string(&control)?,
        fs::read_to_string(&kind).ok(),
    );
    ensure!(
        before == after,
        "{} changed: {before:?} -> {after:?}",
        own.display()
    );
    Ok(())
}

/// cgroup v1 files on a v2 machine, and v2 files on a v1 hierarchy.
fn v1_and_v2_files_do_not_mix() -> Result<()> {
    if pure_v2() {
        // No per-controller directories: a v1 path does not exist ...
        ensure!(
            !exists("/sys/fs/cgroup/cpu"),
            "/sys/fs/cgroup/cpu exists on this v2 machine (a cgroup named cpu?)"
        );
        let out = bash("mkdir /sys/fs/cgroup/cpu/cfs-mismatch")?;
        failed_with(
            &out,
            "mkdir: cannot create directory ‘/sys/fs/cgroup/cpu/cfs-mismatch’: No such file or directory",
        )?;
        // ... and a v1 file cannot be created in a v2 cgroup.
        let cg = Cgroup::new(&own_v2()?.0, "td")?;
        let file = cg.0.join("cpu.cfs_quota_us");
        let out = bash(&format!("echo 20000 > '{}'", file.display()))?;
        failed_with(&out, &format!("{}: Permission denied", file.display()))?;
    } else {
        // A v1 cpu hierarchy has cpu.cfs_quota_us, not v2's cpu.max.
        let cg = Cgroup::new(&own_v1("cpu")?, "td")?;
        ensure!(
            exists(cg.0.join("cpu.cfs_quota_us")),
            "no cpu.cfs_quota_us in v1"
        );
        let file = cg.0.join("cpu.max");
        let out = bash(&format!("echo '20000 100000' > '{}'", file.display()))?;
        failed_with(&out, &format!("{}: Permission denied", file.display()))?;
    }
    Ok(())
}

/// An overlay whose upper directory is on another overlay (as when the state
/// directory is inside a Docker container) is refused: mount(8) prints its
/// generic message, the kernel log says why.
fn overlay_upper_on_an_overlay_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let upper = d.join("outer/merged/upper");
    let before = mounts()?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"cd "$1" && mkdir -p outer/lower outer/upper outer/work outer/merged &&
               mount -t overlay overlay -o lowerdir=outer/lower,upperdir=outer/upper,workdir=outer/work outer/merged &&
               mkdir outer/merged/lower outer/merged/upper outer/merged/work outer/merged/merged &&
               exec mount -t overlay overlay -o "lowerdir=$1/outer/merged/lower,upperdir=$1/outer/merged/upper,workdir=$1/outer/merged/work" outer/merged/merged"#,
        )
        .arg("sh")
        .arg(d);
    let out = output(cmd)?;
    ensure!(out.code == 32, "mount exited {}: {}", out.code, out.stderr);
    failed_with(&out, "wrong fs type, bad option, bad superblock on overlay")?;
    let log = output(Command::new("dmesg"))?;
    let upper = upper.display().to_string();
    ensure!(
        log.stdout
            .lines()
            .any(|l| l.contains(&upper) && l.contains("not supported as upperdir")),
        "no kernel message about {upper}"
    );

    // Chapter 5 with its store on an overlay: the import works, the run cannot.
    let tar = d.join("base.tar");
    let out = bash(&format!(
        "tar -C '{}' -cf '{}' .",
        cfs_tests::paths::rootfs()?.display(),
        tar.display()
    ))?;
    out.expect_code(0)?;
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"cd "$1" && mkdir -p o/lower o/upper o/work o/merged &&
               mount -t overlay overlay -o lowerdir=o/lower,upperdir=o/upper,workdir=o/work o/merged &&
               "$2" --root "$1/o/merged/store" import base base.tar >/dev/null &&
               exec "$2" --root "$1/o/merged/store" run base -- true"#,
        )
        .arg("sh")
        .arg(d)
        .arg(cfs_tests::paths::bin("ch05-overlay"));
    let out = output(cmd)?;
    ensure!(
        out.code == 1
            && out.stderr.starts_with(&format!(
                "ch05-overlay: failed to mount an overlay at {}/o/merged/store/containers/",
                d.display()
            ))
            && out
                .stderr
                .trim_end()
                .ends_with("/merged: EINVAL: Invalid argument"),
        "ch05-overlay printed {:?} (exit {})",
        out.stderr,
        out.code
    );
    assert_mounts_unchanged(&before)
}

/// Chapter 4 on cgroup v2, started from a cgroup with processes (the session
/// scope): it says why its cgroup goes beside its own. On the hybrid machine
/// it uses the v1 hierarchies and says so.
fn chapter_4_says_where_its_cgroup_goes() -> Result<()> {
    let (own, rel) = own_v2()?;
    let mut cmd = Command::new(cfs_tests::paths::bin("ch04-cgroups"));
    cmd.arg("-v")
        .arg("--rootfs")
        .arg(cfs_tests::paths::rootfs()?)
        .args(["--memory", "64M", "--", "true"]);
    let out = output(cmd)?;
    out.expect_code(0)?;
    let wanted = if !pure_v2() {
        "[runtime] cgroup layout: hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified): using cgroup v1"
            .to_string()
    } else if rel == "/" {
        bail!("this test runs in the root cgroup: run it from a login shell or in scripts/vm-test");
    } else {
        let parent = own.parent().context("no parent cgroup")?;
        format!(
            "[runtime] EBUSY: {} has processes, so it may not enable controllers for a child \
             (no internal processes); the cgroup goes beside it, beneath {}, as runc does",
            own.display(),
            parent.display()
        )
    };
    ensure!(
        out.stderr.lines().any(|l| l == wanted),
        "no line {wanted:?} in\n{}",
        out.stderr
    );
    Ok(())
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        root(
            "rmdir_of_a_cgroup_with_a_process_is_ebusy",
            rmdir_of_a_cgroup_with_a_process_is_ebusy,
        ),
        root(
            "enabling_controllers_for_children",
            enabling_controllers_for_children,
        ),
        root(
            "threaded_controllers_where_processes_live",
            threaded_controllers_where_processes_live,
        ),
        root(
            "chapter_4_says_where_its_cgroup_goes",
            chapter_4_says_where_its_cgroup_goes,
        ),
        root(
            "chapter_4_leaves_its_own_cgroup_as_it_was",
            chapter_4_leaves_its_own_cgroup_as_it_was,
        ),
        root("v1_and_v2_files_do_not_mix", v1_and_v2_files_do_not_mix),
        root(
            "overlay_upper_on_an_overlay_is_refused",
            overlay_upper_on_an_overlay_is_refused,
        ),
    ])
}
