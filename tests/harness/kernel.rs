//! Reading kernel state from `/proc`: namespaces, process trees, states, mounts.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use nix::unistd::Pid;

/// The inode number of a namespace, from the `/proc/<pid>/ns/<kind>` link
/// (`uts:[4026531838]`). Two processes share a namespace exactly when these
/// numbers match.
pub fn ns_inode(pid: &str, kind: &str) -> Result<u64> {
    let link = format!("/proc/{pid}/ns/{kind}");
    let target = fs::read_link(&link).with_context(|| format!("failed to read {link}"))?;
    let text = target.to_string_lossy();
    text.split(['[', ']'])
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected namespace link {text}"))
}

/// The children of a process, from `/proc/<pid>/task/<pid>/children`.
pub fn children(pid: Pid) -> Vec<Pid> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Whether `pid` or a process below it runs `command` (its `comm`): once
/// the container's command runs, the runtime's set-up (pivot_root and the
/// removal of its put_old directory) is over. A test that kills a container
/// waits for this first, or its kill lands mid-set-up and leaves what a
/// finished set-up would have removed.
pub fn runs_command(pid: Pid, command: &str) -> bool {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim_end() == command || children(pid).into_iter().any(|c| runs_command(c, command))
}

/// The state letter of a process (`R`, `S`, `Z`, ...) from `/proc/<pid>/stat`.
pub fn state(pid: &str) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: skip past it.
    let after = stat.rsplit_once(')')?.1;
    after.trim_start().chars().next()
}

/// PIDs (host numbering) of all processes whose `kind` namespace has `inode`.
pub fn processes_in_ns(kind: &str, inode: u64) -> Vec<String> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| ns_inode(pid, kind).ok() == Some(inode))
        .collect()
}

/// The mount table as a set of `mount point + fs type + source` lines, which
/// stay the same when nothing was mounted or unmounted (mount IDs may not).
pub fn mounts() -> Result<BTreeSet<String>> {
    Ok(mount_entries()?
        .into_iter()
        .map(|[point, fstype, source]| format!("{point} {fstype} {source}"))
        .collect())
}

/// Each mount's point, filesystem type and source, from `/proc/self/mountinfo`.
fn mount_entries() -> Result<Vec<[String; 3]>> {
    let text = fs::read_to_string("/proc/self/mountinfo").context("failed to read mountinfo")?;
    Ok(entries_of(&text))
}

/// The mounts of a mountinfo text, as [`mounts`] lists them.
pub fn parse_mounts(text: &str) -> BTreeSet<String> {
    entries_of(text)
        .into_iter()
        .map(|[point, fstype, source]| format!("{point} {fstype} {source}"))
        .collect()
}

fn entries_of(text: &str) -> Vec<[String; 3]> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(
                [fields.get(4)?, fields.get(dash + 1)?, fields.get(dash + 2)?]
                    .map(|f| f.to_string()),
            )
        })
        .collect()
}

/// Fails if the mount table differs from `before`, naming the differences.
pub fn assert_mounts_unchanged(before: &BTreeSet<String>) -> Result<()> {
    let after = mounts()?;
    let added: Vec<_> = after.difference(before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    anyhow::ensure!(
        added.is_empty() && removed.is_empty(),
        "mount table changed: added {added:?}, removed {removed:?}"
    );
    Ok(())
}

/// The host's hostname, from the kernel.
pub fn hostname() -> Result<String> {
    Ok(nix::unistd::gethostname()
        .context("failed to read hostname")?
        .to_string_lossy()
        .into_owned())
}

/// True when the file exists (for readable assertions).
pub fn exists(path: impl AsRef<Path>) -> bool {
    path.as_ref().symlink_metadata().is_ok()
}

/// Where cgroup trees are mounted (v1 hierarchies and cgroup2), from mountinfo.
pub fn cgroup_mounts() -> Result<Vec<std::path::PathBuf>> {
    Ok(mount_entries()?
        .into_iter()
        .filter(|[_, fstype, _]| fstype == "cgroup" || fstype == "cgroup2")
        .map(|[point, _, _]| point.into())
        .collect())
}

/// Every directory from 1 to `levels` levels below `dir` (none if it cannot
/// be read), in the order a walk finds them.
pub fn dirs_below(dir: &Path, levels: usize) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, levels: usize, found: &mut Vec<std::path::PathBuf>) {
        if levels == 0 {
            return;
        }
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                walk(&path, levels - 1, found);
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, levels, &mut found);
    found
}

/// Every cgroup directory called `name` in any mounted tree (at most 8 levels
/// down), found by walking the trees: what a user would see with `find`.
pub fn cgroups_named(name: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut found = Vec::new();
    for mount in cgroup_mounts()? {
        found.extend(
            dirs_below(&mount, 9)
                .into_iter()
                .filter(|dir| dir.file_name().is_some_and(|n| n == name)),
        );
    }
    found.sort();
    Ok(found)
}

/// Removes every cgroup directory called `name` (see [`cgroups_named`]): a
/// test's own groups, which the code under test should have removed and did
/// not (a lab's half-written runtime, say). Each is thawed, what is still in
/// it is killed by PID, and once it is empty it is removed, deepest first.
/// Returns the directories it found; call it only with a name the test made
/// unique to itself.
pub fn remove_cgroups_named(name: &str) -> Result<Vec<std::path::PathBuf>> {
    let mut found = cgroups_named(name)?;
    found.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
    for dir in &found {
        for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
            if dir.join(file).exists() {
                let _ = fs::write(dir.join(file), thawed);
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left = cgroup_procs(dir).unwrap_or_default();
            if left.is_empty() {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "cgroup {} still holds {left:?} after SIGKILL",
                dir.display()
            );
            for pid in left {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Err(err) = fs::remove_dir(dir) {
            if !dir.exists() {
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(err).with_context(|| format!("failed to remove {}", dir.display()));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    Ok(found)
}

/// The directories of cgroup `name` (see [`cgroups_named`]) once each of them
/// lists `pid` in its `cgroup.procs`; `None` until then (for `wait_for`).
pub fn cgroup_dirs_holding(name: &str, pid: Pid) -> Option<Vec<std::path::PathBuf>> {
    let dirs = cgroups_named(name).ok()?;
    let all_hold_it = dirs
        .iter()
        .all(|dir| cgroup_procs(dir).is_ok_and(|procs| procs.contains(&pid)));
    (!dirs.is_empty() && all_hold_it).then_some(dirs)
}

/// The PIDs listed in a cgroup's `cgroup.procs`.
pub fn cgroup_procs(dir: &Path) -> Result<Vec<Pid>> {
    let path = dir.join("cgroup.procs");
    let text =
        fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    Ok(text
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(Pid::from_raw)
        .collect())
}

/// The CPU time a process has used, in clock ticks: `utime` + `stime` of
/// `/proc/<pid>/stat`. It stands still while the process is frozen.
pub fn cpu_ticks(pid: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .with_context(|| format!("unexpected {path}"))?
        .1
        .split_whitespace()
        .collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("no field {} in {path}", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// Where a cgroup `name`, made beneath our own, gets its last directory: on
/// v1 in the pids hierarchy (the last, by mount point, of those a container
/// joins), on v2 its one directory. A directory put there first makes the
/// creation fail half-way, after the others were made.
pub fn last_cgroup_dir(name: &str) -> Result<std::path::PathBuf> {
    use ch04_cgroups::cgroups::{Hierarchies, Version};
    let hierarchies = Hierarchies::detect()?;
    let own = match hierarchies.layout()?.version() {
        Version::V1 => hierarchies
            .v1_with("pids")
            .context("no pids hierarchy")?
            .own
            .clone(),
        Version::V2 => hierarchies.v2.context("no cgroup2 tree")?.own,
    };
    Ok(own.join(name))
}
