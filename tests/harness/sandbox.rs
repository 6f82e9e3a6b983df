//! A sandbox for container engines (Docker, podman, containerd): a set of
//! namespaces and cgroups the test creates, so that an engine started in it
//! touches nothing of the machine's.
//!
//! ```text
//! host                                 sandbox (what the engines see)
//! <own cgroup>/cfs-engines-h3-<pid>-<n>  = /           (cgroup namespace root)
//!   init/      PID 1 (cfs-pause), engines, clients     /init
//!   docker/<id>, default/<id>, ...                     /docker/<id>, ...
//! new network namespace: only lo (Docker's bridge, CNI's veths stay here)
//! new mount namespace, private: cgroupfs mounted again (rooted at the
//!   cgroup above), tmpfs on /run and on the engines' default state dirs
//! new PID namespace: killing its PID 1 ends every engine, shim, container
//! ```
//!
//! Engines create their cgroups at the root of the hierarchy they see
//! (`/docker/<id>`, containerd's `/<namespace>/<id>`, podman's
//! `/libpod_parent`). In the sandbox that root is the test's own cgroup, so
//! they land beneath it, never at the host's hierarchy roots. On cgroup v2
//! the root of a namespace is not exempt from the no-internal-process rule
//! as the real root is, so the sandbox's processes live in `/init`, a leaf.
//!
//! What it leaves out: a user namespace (engines run as real root here, as
//! on a server), seccomp or capability limits on the engines, and a network
//! reaching outside (the tests need none: images are imported offline).

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::kernel::{cgroup_procs, dirs_below};
use crate::paths;

/// One cgroup hierarchy as the host mounts it, and the sandbox's root in it.
#[derive(Debug, Clone)]
pub struct Tree {
    /// Where the host mounts it (the sandbox mounts it at the same place).
    pub mount: PathBuf,
    /// `cgroup2`, or `cgroup` with its options (`cpu`, `name=systemd`).
    pub fstype: String,
    pub options: String,
    /// The sandbox's root cgroup, a host path.
    pub root: PathBuf,
    /// Its path from the hierarchy's root, as `/proc/<pid>/cgroup` shows it
    /// to a reader on the host.
    pub root_path: String,
}

impl Tree {
    /// Whether this is the cgroup2 tree.
    pub fn v2(&self) -> bool {
        self.fstype == "cgroup2"
    }

    /// Whether this v1 hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        !self.v2() && self.options.split(',').any(|o| o == controller)
    }
}

/// The sandbox: its temp dir, its cgroups, its PID 1. Dropping it tears it
/// down (see [`Sandbox::stop`]).
pub struct Sandbox {
    /// The test's temp dir, the same path inside and outside.
    pub dir: PathBuf,
    pub trees: Vec<Tree>,
    /// `unshare`, whose child is the sandbox's PID 1.
    unshare: Option<Child>,
    /// The host PID of the sandbox's PID 1.
    pub init: Pid,
    name: String,
    torn_down: bool,
    /// The sandbox's mounts once it was set up, before any engine ran.
    pub mounts_at_start: std::collections::BTreeSet<String>,
}

/// The sandbox's PID 1: mounts cgroupfs again (the namespace's view), tmpfs
/// over the places engines keep state by default (so a default that a flag
/// missed still lands in the sandbox), brings up `lo`, joins `/init` and
/// becomes the pause program. `$1` is the temp dir, `$2` the pause program,
/// then triples: mount point, type, options.
const SETUP: &str = r#"set -eu
dir=$1 pause=$2; shift 2
mount -t sysfs sysfs /sys
if [ "$2" != cgroup2 ] || [ "$1" != /sys/fs/cgroup ]; then
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
fi
points=
while [ $# -ge 3 ]; do
    mkdir -p "$1"
    mount -t "$2" -o "${3:-rw}" cgroup "$1"
    points="$points $1"
    shift 3
done
for p in $points; do echo $$ >"$p/init/cgroup.procs"; done
mount -t tmpfs -o mode=755 run /run
for d in /var/lib/docker /var/lib/containerd /var/lib/containers /var/lib/cni /etc/cni /etc/containers /etc/docker; do
    if [ -d "$d" ]; then mount -t tmpfs -o mode=755 state "$d"; fi
done
mkdir -p /run/netns /run/containerd /run/docker
ip link set lo up
echo ready >"$dir/ready"
exec "$pause"
"#;

impl Sandbox {
    /// Creates the cgroups and namespaces and starts PID 1; `tag` goes into
    /// every name (`cfs-engines-<tag>-<pid>-<n>`).
    pub fn start(tag: &str) -> Result<Sandbox> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "cfs-engines-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let pause = paths::static_dir().join("cfs-pause");
        ensure!(
            pause.exists(),
            "no {}: build the static helpers with scripts/build",
            pause.display()
        );
        let dir = std::env::temp_dir().join(&name);
        fs::create_dir(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let mut sandbox = Sandbox {
            dir,
            trees: Vec::new(),
            unshare: None,
            init: Pid::from_raw(0),
            name,
            torn_down: false,
            mounts_at_start: Default::default(),
        };
        sandbox.make_cgroups()?;
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--cgroup",
            "--mount",
            "--net",
            "--pid",
            "--uts",
            "--ipc",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "sh",
            "-c",
            SETUP,
            "setup",
        ])
        .arg(&sandbox.dir)
        .arg(&pause);
        for tree in &sandbox.trees {
            cmd.arg(&tree.mount).arg(&tree.fstype).arg(&tree.options);
        }
        let log = fs::File::create(sandbox.dir.join("sandbox.log"))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        join_on_exec(&mut cmd, sandbox.trees.iter().map(|t| t.root.clone()))?;
        // If the test dies before its teardown, unshare dies with it and
        // (--kill-child) takes PID 1 and the whole sandbox along.
        // SAFETY: prctl is a plain system call.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        sandbox.unshare = Some(cmd.spawn().context("failed to start unshare")?);
        let ready = sandbox.dir.join("ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            let ended = sandbox
                .unshare
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if ended.is_some() || Instant::now() > deadline {
                bail!(
                    "the sandbox did not start ({}): {}",
                    ended.map_or("timed out".to_string(), |s| s.to_string()),
                    fs::read_to_string(sandbox.dir.join("sandbox.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let unshare = Pid::from_raw(sandbox.unshare.as_ref().map_or(0, |c| c.id() as i32));
        sandbox.init = *crate::kernel::children(unshare)
            .first()
            .context("the sandbox's unshare has no child")?;
        // unshare itself is still in the root: move it to `init` too, so that
        // the root holds no process and, on v2, may hand its controllers
        // down (no internal processes; a namespace's root is no exception).
        for tree in &sandbox.trees {
            let procs = tree.root.join("init/cgroup.procs");
            fs::write(&procs, unshare.to_string())
                .with_context(|| format!("failed to move unshare to {}", procs.display()))?;
            if tree.v2() {
                enable_all(&tree.mount, &tree.root)?;
            }
        }
        sandbox.mounts_at_start = sandbox.mounts()?;
        Ok(sandbox)
    }

    /// The sandbox's root cgroup in each hierarchy the host mounts (named
    /// ones too: runc joins `name=systemd`), made beneath our own cgroup, or
    /// on cgroup v2 beside it when ours holds processes (as ch04 does), with
    /// its `init` child.
    /// Each tree goes into `self.trees` as soon as its root exists, so that
    /// a failure half-way leaves nothing the teardown does not find.
    fn make_cgroups(&mut self) -> Result<()> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
        let own = fs::read_to_string("/proc/self/cgroup")?;
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(id), Some(list), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let mount = mountinfo.lines().find_map(|m| {
                let fields: Vec<&str> = m.split(' ').collect();
                let dash = fields.iter().position(|x| *x == "-")?;
                let (fstype, options) = (fields.get(dash + 1)?, fields.get(dash + 3)?);
                let matches = if id == "0" && list.is_empty() {
                    *fstype == "cgroup2"
                } else {
                    *fstype == "cgroup"
                        && list.split(',').all(|c| options.split(',').any(|o| o == c))
                };
                (matches && fields[3] == "/").then(|| {
                    let opts: Vec<&str> = options.split(',').filter(|o| *o != "rw").collect();
                    (PathBuf::from(fields[4]), fstype.to_string(), opts.join(","))
                })
            });
            let Some((mount, fstype, options)) = mount else {
                continue;
            };
            let mut base = PathBuf::from(path);
            let v2 = fstype == "cgroup2";
            if v2 && path != "/" && !cgroup_procs(&mount.join(&path[1..]))?.is_empty() {
                base = base.parent().unwrap_or(Path::new("/")).to_path_buf();
            }
            let root_path = base.join(&self.name).to_string_lossy().into_owned();
            let root = mount.join(&root_path[1..]);
            let options = if v2 { String::new() } else { options };
            let tree = Tree {
                mount,
                fstype,
                options,
                root,
                root_path,
            };
            if v2 {
                enable_all(&tree.mount, tree.root.parent().context("no parent")?)?;
            }
            for dir in [tree.root.clone(), tree.root.join("init")] {
                fs::create_dir(&dir)
                    .with_context(|| format!("failed to create cgroup {}", dir.display()))?;
                if dir == tree.root {
                    self.trees.push(tree.clone());
                }
                if tree.has("cpuset") {
                    // A new cpuset group has no CPUs and no memory nodes:
                    // nothing could join it. Copy the parent's.
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let parent = dir.parent().context("no parent")?.join(file);
                        fs::write(dir.join(file), fs::read_to_string(&parent)?).with_context(
                            || format!("failed to write {file} of {}", dir.display()),
                        )?;
                    }
                }
            }
        }
        ensure!(
            !self.trees.is_empty(),
            "no cgroup hierarchy found in /proc/self/cgroup"
        );
        Ok(())
    }

    /// A command run inside the sandbox: in its `/init` cgroup, then through
    /// `nsenter` in all its namespaces.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.init.to_string())
            .args([
                "--cgroup", "--mount", "--net", "--pid", "--uts", "--ipc", "--",
            ])
            .arg(program);
        // Only fails on a path with a NUL, which ours have not.
        let _ = join_on_exec(&mut cmd, self.trees.iter().map(|t| t.root.join("init")));
        cmd
    }

    /// The sandbox's mount table, one `mount point, type, source` line each
    /// (from `/proc/<PID 1>/mountinfo`, as the host reads it).
    pub fn mounts(&self) -> Result<std::collections::BTreeSet<String>> {
        let path = format!("/proc/{}/mountinfo", self.init);
        let text = fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let dash = fields.iter().position(|f| *f == "-")?;
                Some(format!(
                    "{} {} {}",
                    fields.get(4)?,
                    fields.get(dash + 1)?,
                    fields.get(dash + 2)?
                ))
            })
            .collect())
    }

    /// The sandbox's cgroup tree with `controller` (v1), or the cgroup2 tree.
    pub fn tree(&self, controller: &str) -> Result<&Tree> {
        let v1 = self.trees.iter().find(|t| t.has(controller));
        v1.or_else(|| self.trees.iter().find(|t| t.v2()))
            .with_context(|| format!("no cgroup tree with {controller} in the sandbox"))
    }

    /// Every cgroup below the sandbox's root in any tree, as paths relative
    /// to it (`/docker/<id>`), sorted and without duplicates.
    pub fn cgroups(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .trees
            .iter()
            .flat_map(|t| {
                dirs_below(&t.root, 8).into_iter().filter_map(move |d| {
                    d.strip_prefix(&t.root)
                        .ok()
                        .map(|r| format!("/{}", r.display()))
                })
            })
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// The host PIDs of every process in the sandbox's PID namespace or in
    /// one nested in it (a container's): those in the namespace, and every
    /// descendant of theirs.
    pub fn processes(&self) -> Vec<Pid> {
        let Ok(ns) = crate::kernel::ns_inode(&self.init.to_string(), "pid") else {
            return Vec::new();
        };
        let mut inside: std::collections::BTreeSet<i32> = crate::kernel::processes_in_ns("pid", ns)
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        let parents: Vec<(i32, i32)> = fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                    .filter_map(|p| {
                        let status = fs::read_to_string(format!("/proc/{p}/status")).ok()?;
                        let ppid = status.lines().find(|l| l.starts_with("PPid:"))?;
                        Some((p, ppid.split_whitespace().nth(1)?.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Parents first is not guaranteed: repeat until nothing is added.
        loop {
            let before = inside.len();
            for (pid, ppid) in &parents {
                if inside.contains(ppid) {
                    inside.insert(*pid);
                }
            }
            if inside.len() == before {
                break;
            }
        }
        inside.into_iter().map(Pid::from_raw).collect()
    }

    /// The host PID of the process that is `pid` in the sandbox's PID
    /// namespace (as an engine reports it), from `NSpid` in
    /// `/proc/<pid>/status`.
    pub fn host_pid(&self, pid: i32) -> Option<Pid> {
        self.processes().into_iter().find(|p| {
            fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("NSpid:"))?.to_string();
                    line.split_whitespace().nth(2).map(|n| n == pid.to_string())
                })
                .unwrap_or(false)
        })
    }

    /// The command lines of the sandbox's processes, for error messages.
    pub fn ps(&self) -> String {
        self.processes()
            .iter()
            .map(|p| {
                let cmd = fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!("{p}: {}", cmd.replace('\0', " ").trim_end())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Checks from the host that `pid` (a host PID) is in cgroup `path`
    /// (as the sandbox sees it: `/docker/<id>`) in every tree, that is, in
    /// `<sandbox root><path>` as the host's `/proc/<pid>/cgroup` says.
    pub fn check_cgroup_of(&self, pid: Pid, path: &str) -> Result<()> {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .with_context(|| format!("failed to read /proc/{pid}/cgroup"))?;
        for tree in &self.trees {
            if tree.options.starts_with("name=") {
                continue;
            }
            let want = format!("{}{path}", tree.root_path);
            let line = text
                .lines()
                .find(|l| {
                    let mut f = l.splitn(3, ':');
                    let (id, list) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
                    if tree.v2() {
                        id == "0" && list.is_empty()
                    } else {
                        !list.is_empty()
                            && list
                                .split(',')
                                .all(|c| tree.options.split(',').any(|o| o == c))
                    }
                })
                .with_context(|| {
                    format!("no line for {} in /proc/{pid}/cgroup", tree.mount.display())
                })?;
            ensure!(
                line.ends_with(&format!(":{want}")),
                "process {pid} is in {line}, not in {want} ({}): {text}",
                tree.mount.display()
            );
        }
        Ok(())
    }

    /// Tears the sandbox down: thaws what is frozen, kills PID 1 (and with
    /// it the whole PID namespace), waits for every process to end, removes
    /// the cgroups bottom-up and the temp dir. Fails when anything stays.
    pub fn stop(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        // A frozen process does not die of SIGKILL until it is thawed.
        for tree in &self.trees {
            for dir in dirs_below(&tree.root, 8) {
                for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                    if dir.join(file).exists() {
                        let _ = fs::write(dir.join(file), thawed);
                    }
                }
            }
        }
        if let Some(mut unshare) = self.unshare.take() {
            if self.init.as_raw() > 0 {
                let _ = kill(self.init, Signal::SIGKILL);
            }
            // unshare reaps PID 1 and ends; PID 1 ends only once every
            // process of its namespace is reaped, also those this process
            // adopted as a subreaper (a lab check's: an nsenter that ended
            // before its child in the sandbox). Reap those as they die.
            let wait_reaping = |unshare: &mut std::process::Child, seconds| {
                let deadline = Instant::now() + Duration::from_secs(seconds);
                while unshare.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    reap_adopted_zombies();
                    std::thread::sleep(Duration::from_millis(10));
                }
            };
            wait_reaping(&mut unshare, 10);
            let _ = unshare.kill();
            wait_reaping(&mut unshare, 10);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut errors = Vec::new();
        for tree in &self.trees {
            let mut dirs = dirs_below(&tree.root, 8);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            dirs.push(tree.root.clone());
            for dir in dirs {
                while let Err(err) = fs::remove_dir(&dir) {
                    if !dir.exists() {
                        break;
                    }
                    if Instant::now() > deadline {
                        errors.push(format!(
                            "failed to remove cgroup {}: {err} (holds {:?})",
                            dir.display(),
                            cgroup_procs(&dir).unwrap_or_default()
                        ));
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        // The mounts made in the sandbox went with its mount namespace.
        while let Err(err) = fs::remove_dir_all(&self.dir) {
            if !self.dir.exists() {
                break;
            }
            if Instant::now() > deadline {
                errors.push(format!("failed to remove {}: {err}", self.dir.display()));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        ensure!(errors.is_empty(), "{}", errors.join("; "));
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Err(err) = self.teardown() {
            eprintln!("sandbox {}: {err:#}", self.name);
        }
    }
}

/// Reaps the zombies among this process's children that lived in a nested
/// PID namespace (`NSpid` has more than one number): processes of a
/// sandbox that this process adopted as a subreaper. Nothing else waits
/// for them, and their namespace's PID 1 cannot end before they are gone.
fn reap_adopted_zombies() {
    let me = std::process::id().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let nested = field("NSpid:").split_whitespace().count() > 1;
        if field("PPid:") == me && field("State:").starts_with('Z') && nested {
            let _ = nix::sys::wait::waitpid(
                Pid::from_raw(pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// Enables in `dir`'s `cgroup.subtree_control` every controller it has
/// (cgroup v2), its ancestors first, below the tree's root, which is left as
/// it is: a controller the root does not hand down is not ours to enable.
fn enable_all(mount: &Path, dir: &Path) -> Result<()> {
    if dir == mount {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        enable_all(mount, parent)?;
    }
    let available = fs::read_to_string(dir.join("cgroup.controllers"))?;
    let enabled = fs::read_to_string(dir.join("cgroup.subtree_control"))?;
    for c in available.split_whitespace() {
        if !enabled.split_whitespace().any(|e| e == c) {
            fs::write(dir.join("cgroup.subtree_control"), format!("+{c}")).with_context(|| {
                format!(
                    "failed to enable {c} in {}/cgroup.subtree_control",
                    dir.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Makes `cmd` move itself into each of `dirs` (writing 0, "this process",
/// to their `cgroup.procs`) just before it runs its program. The strings are
/// made here: after `fork` only plain system calls are safe.
fn join_on_exec(cmd: &mut Command, dirs: impl Iterator<Item = PathBuf>) -> Result<()> {
    let files: Vec<CString> = dirs
        .map(|d| CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()))
        .collect::<Result<_, _>>()
        .context("a cgroup path holds a NUL byte")?;
    // SAFETY: the closure makes only open, write and close calls.
    unsafe {
        cmd.pre_exec(move || {
            for file in &files {
                let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let ok = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if ok < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}
