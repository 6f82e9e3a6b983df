//! Chapter 4: cgroups on v1 and v2: limits, membership, OOM, cleanup.
//!
//! The tests read the kernel's own files: `/proc/<pid>/cgroup`, each cgroup's
//! `cgroup.procs`, `cpuacct.usage` / `cpu.stat`, and look for leftover
//! directories by walking every mounted cgroup tree. They create cgroups only
//! beneath this process's own (named `cfs-*`) and remove them.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use cfs_tests::kernel::{cgroup_procs, cgroups_named};
use cfs_tests::run::wait_for;
use cfs_tests::{bail, ensure, root, Context, Result};
use ch04_cgroups::cgroups::{Cgroup, Cpus, Hierarchies, Layout, Limits, Version};
use nix::unistd::Pid;

/// A cgroup name no other test run uses at the same time.
fn unique(what: &str) -> String {
    format!("cfs-test-{what}-{}", std::process::id())
}

/// A process that the test starts, killed and reaped if the test fails early.
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Result<Sleeper> {
        Ok(Sleeper(
            Command::new("sleep")
                .arg("60")
                .spawn()
                .context("failed to start sleep")?,
        ))
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }

    /// Waits for it to end; the signal that killed it, if one did.
    fn wait_signal(&mut self) -> Result<Option<i32>> {
        Ok(self.0.wait().context("failed to wait for sleep")?.signal())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The paths of `pid`'s cgroups, from `/proc/<pid>/cgroup` (third field).
fn proc_cgroup_paths(pid: Pid) -> Result<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("failed to read /proc/{pid}/cgroup"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2).map(str::to_string))
        .collect())
}

fn read(path: &Path) -> Result<String> {
    Ok(fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?
        .trim()
        .to_string())
}

/// The limit files as the kernel reports them, whichever the version.
fn limit_values(dirs: &[PathBuf]) -> Result<Vec<String>> {
    let mut values = Vec::new();
    for dir in dirs {
        for file in [
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.max",
            "memory.limit_in_bytes",
            "memory.max",
            "pids.max",
        ] {
            let path = dir.join(file);
            if path.exists() {
                values.push(format!("{file}={}", read(&path)?));
            }
        }
    }
    values.sort();
    Ok(values)
}

fn lib_create_holds_the_process_and_remove_kills_and_cleans_up() -> Result<()> {
    let name = unique("lib");
    let limits = Limits {
        cpus: Some(Cpus::from_cpus(0.5)?),
        memory: Some(64 << 20),
        pids: Some(32),
    };
    let cgroup = Cgroup::create(&name, &limits)?;
    let mut dirs = cgroup.dirs();
    dirs.sort();
    ensure!(
        cgroups_named(&name)? == dirs,
        "found {:?} on disk, the library says {dirs:?}",
        cgroups_named(&name)?
    );
    let mut values = limit_values(&dirs)?;
    let expected: &[&str] = match cgroup.version() {
        Version::V1 => &[
            "cpu.cfs_period_us=100000",
            "cpu.cfs_quota_us=50000",
            "memory.limit_in_bytes=67108864",
            "pids.max=32",
        ],
        Version::V2 => &["cpu.max=50000 100000", "memory.max=67108864", "pids.max=32"],
    };
    // Files of other controllers report "unlimited"; keep the ones we set.
    values.retain(|v| !v.ends_with("=max") && !v.ends_with("=-1") && !v.contains("=9223372"));
    ensure!(values == expected, "limits in the kernel: {values:?}");

    let mut sleeper = Sleeper::start()?;
    cgroup.add(sleeper.pid())?;
    for dir in &dirs {
        ensure!(
            cgroup_procs(dir)? == [sleeper.pid()],
            "{} holds {:?}",
            dir.display(),
            cgroup_procs(dir)?
        );
    }
    let paths = proc_cgroup_paths(sleeper.pid())?;
    let inside = paths.iter().filter(|p| p.ends_with(&format!("/{name}"))).count();
    ensure!(inside == dirs.len(), "/proc/<pid>/cgroup: {paths:?}");

    // The sleeper is still running: remove() must kill it to empty the group.
    cgroup.remove()?;
    ensure!(
        sleeper.wait_signal()? == Some(libc::SIGKILL),
        "the process left inside was not killed"
    );
    ensure!(cgroups_named(&name)?.is_empty(), "left: {:?}", cgroups_named(&name)?);
    Ok(())
}

fn lib_drop_removes_the_cgroup() -> Result<()> {
    let name = unique("drop");
    {
        let cgroup = Cgroup::create(&name, &Limits::default())?;
        ensure!(!cgroup.dirs().is_empty(), "no directories");
        ensure!(cgroups_named(&name)?.len() == cgroup.dirs().len(), "not on disk");
    }
    ensure!(cgroups_named(&name)?.is_empty(), "left: {:?}", cgroups_named(&name)?);
    Ok(())
}

fn lib_keep_leaves_the_cgroup() -> Result<()> {
    let name = unique("keep");
    let mut kept = Cgroup::create(&name, &Limits::default())?.keep();
    kept.sort();
    let found = cgroups_named(&name)?;
    for dir in &kept {
        fs::remove_dir(dir).with_context(|| format!("failed to remove {}", dir.display()))?;
    }
    ensure!(found == kept && !kept.is_empty(), "kept {kept:?}, found {found:?}");
    Ok(())
}

/// A cgroup that cannot be created in full is not left half-made: on v1 the
/// name is taken in the last hierarchy only, so the others were already
/// created when the error came, and must be removed again.
fn lib_a_failed_create_leaves_nothing_behind() -> Result<()> {
    let name = unique("clash");
    let hierarchies = Hierarchies::detect()?;
    let version = hierarchies.layout()?.version();
    let blocker = match version {
        Version::V1 => hierarchies
            .v1
            .last()
            .context("no v1 hierarchy")?
            .own
            .join(&name),
        Version::V2 => hierarchies.v2.as_ref().context("no cgroup2")?.own.join(&name),
    };
    fs::create_dir(&blocker).with_context(|| format!("failed to create {}", blocker.display()))?;
    let result = Cgroup::create(&name, &Limits::default());
    let left = cgroups_named(&name)?;
    fs::remove_dir(&blocker).with_context(|| format!("failed to remove {}", blocker.display()))?;
    let Err(err) = result else {
        bail!("creating over an existing cgroup succeeded");
    };
    ensure!(
        err.to_string().contains("already exists"),
        "unexpected error: {err:#}"
    );
    ensure!(left == [blocker.clone()], "left besides {}: {left:?}", blocker.display());
    Ok(())
}

/// The v2 backend against the real cgroup2 tree, whatever the layout: on a
/// hybrid machine that is /sys/fs/cgroup/unified, which carries (almost) no
/// controllers, but still groups processes, lists them and kills them.
fn v2_backend_on_the_real_cgroup2_tree() -> Result<()> {
    let hierarchies = Hierarchies::detect()?;
    let tree = hierarchies.v2.clone().context("no cgroup2 tree is mounted")?;
    let name = unique("v2");
    let cgroup = Cgroup::create_in(&hierarchies, Version::V2, &name, &Limits::default())?;
    let dir = tree.own.join(&name);
    ensure!(cgroup.dirs() == [dir.clone()], "dirs {:?}", cgroup.dirs());
    ensure!(dir.join("cgroup.events").exists(), "no cgroup.events in {}", dir.display());
    let mut sleeper = Sleeper::start()?;
    cgroup.add(sleeper.pid())?;
    ensure!(cgroup_procs(&dir)? == [sleeper.pid()], "cgroup.procs");
    ensure!(
        read(&dir.join("cgroup.events"))?.contains("populated 1"),
        "not populated"
    );
    let relative = dir.strip_prefix(&tree.mount)?.to_string_lossy().into_owned();
    let paths = proc_cgroup_paths(sleeper.pid())?;
    ensure!(
        paths.iter().any(|p| p == &format!("/{relative}")),
        "/proc/<pid>/cgroup {paths:?} lacks /{relative}"
    );
    // cgroup.kill (Linux 5.14+) kills every process in the group at once.
    ensure!(dir.join("cgroup.kill").exists(), "no cgroup.kill on this kernel");
    cgroup.kill()?;
    ensure!(sleeper.wait_signal()? == Some(libc::SIGKILL), "not killed");
    wait_for(Duration::from_secs(2), || {
        read(&dir.join("cgroup.events"))
            .ok()
            .filter(|e| e.contains("populated 0"))
    })?;
    cgroup.remove()?;
    ensure!(!dir.exists(), "{} is left", dir.display());
    Ok(())
}

/// The v2 backend asks for controllers the tree may not offer: on a hybrid
/// machine the v1 hierarchies hold cpu, and the error says so and leaves
/// nothing; on a v2 machine the limit lands in cpu.max.
fn v2_backend_limits_need_the_controllers() -> Result<()> {
    let hierarchies = Hierarchies::detect()?;
    let tree = hierarchies.v2.clone().context("no cgroup2 tree is mounted")?;
    let name = unique("v2cpu");
    let limits = Limits {
        cpus: Some(Cpus::from_cpus(0.2)?),
        ..Limits::default()
    };
    let offered = read(&tree.mount.join("cgroup.controllers"))?;
    let result = Cgroup::create_in(&hierarchies, Version::V2, &name, &limits);
    if offered.split_whitespace().any(|c| c == "cpu") {
        let cgroup = result?;
        let values = limit_values(&cgroup.dirs())?;
        cgroup.remove()?;
        ensure!(values.contains(&"cpu.max=20000 100000".to_string()), "{values:?}");
    } else {
        ensure!(
            hierarchies.layout()? == Layout::Hybrid,
            "a v2 machine whose cgroup2 root lacks cpu: {offered:?}"
        );
        let Err(err) = result else {
            bail!("the v2 backend created a cpu limit without the cpu controller");
        };
        ensure!(
            err.to_string().contains("cpu controller is not available"),
            "unexpected error: {err:#}"
        );
    }
    ensure!(cgroups_named(&name)?.is_empty(), "left: {:?}", cgroups_named(&name)?);
    Ok(())
}

fn main() -> std::process::ExitCode {
    cfs_tests::main(vec![
        root(
            "lib_create_holds_the_process_and_remove_kills_and_cleans_up",
            lib_create_holds_the_process_and_remove_kills_and_cleans_up,
        ),
        root("lib_drop_removes_the_cgroup", lib_drop_removes_the_cgroup),
        root("lib_keep_leaves_the_cgroup", lib_keep_leaves_the_cgroup),
        root(
            "lib_a_failed_create_leaves_nothing_behind",
            lib_a_failed_create_leaves_nothing_behind,
        ),
        root(
            "v2_backend_on_the_real_cgroup2_tree",
            v2_backend_on_the_real_cgroup2_tree,
        ),
        root(
            "v2_backend_limits_need_the_controllers",
            v2_backend_limits_need_the_controllers,
        ),
    ])
}
