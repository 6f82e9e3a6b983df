//! What only an OCI runtime needs from cgroups (chapter 6 teaches it; a
//! chapter 4 learner can skip this module).
//!
//! Chapter 4's runtime picks its cgroup's place itself: `cfs-<name>` beneath
//! the cgroup it runs in. An OCI runtime is told: `linux.cgroupsPath` in
//! `config.json` ([`CgroupsPath`]), as runc's cgroupfs driver reads it:
//!
//! - **absolute** (`/docker/<id>`, containerd's `/<namespace>/<id>`, the
//!   kubelet's `/kubepods/burstable/pod<uid>/<id>`): from the root of each
//!   hierarchy, as this process sees it: the cgroup mount's mount point,
//!   less the mount's root (`/proc/self/mountinfo`). In a cgroup namespace
//!   with cgroupfs mounted inside it, that root is the namespace's root.
//! - **relative** (`app/ctr`): beneath the runtime's own cgroup (per v1
//!   hierarchy, from `/proc/self/cgroup`). On v2 runc always goes one
//!   level up, beneath the *parent* of its own cgroup, because its own
//!   usually holds processes (the no-internal-process rule, see [`super::v2`]);
//!   this runtime goes there only when its own cgroup cannot hand the
//!   controllers down, as chapter 4 does.
//! - **missing**: `cfs-<id>` beneath the runtime's own cgroup (runc uses
//!   the bare id the same way); the `cfs-` prefix lets `scripts/doctor`,
//!   `scripts/reset` and the tests' leftover check find it.
//!
//! The directories on the way are created as needed (and remembered in the
//! [`super::Placement`], so that `delete` removes them again when nothing
//! else is in them, never a parent the engine made): on v2 each hands the
//! controllers down in `cgroup.subtree_control`, on v1 the `cpuset`
//! hierarchy copies `cpuset.cpus` and `cpuset.mems` down (a v1 cpuset
//! group starts empty and no process may join it until both are set).
//!
//! The rest of `linux.resources` (block I/O, cpusets, real-time CPU time,
//! hugepages, network classes, RDMA, raw v2 files, memory reservations) is
//! in [`resources`]. Placement across runs ([`super::Placement`],
//! [`super::Cgroup::open`]), the freezer and the device rules
//! ([`super::devices`]) are the runtime's too; they stay beside the
//! backends they use.
//!
//! What it leaves out: the systemd driver (`slice:prefix:name` paths),
//! through which runc asks systemd over D-Bus for a scope; runc also joins
//! every v1 hierarchy and enables every available v2 controller, where this
//! runtime joins and enables those the limits need.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use ch01_uts::say;

use super::{mkdir, read, v1, v2, write, Backend, Cgroup, Files, Hierarchies, Limits, Version};

pub mod devices;
pub mod freezer;
pub mod placement;
#[cfg(test)]
mod plans;
pub mod resources;

pub use resources::{BlockIo, Rdma, Resources, ThrottleDevice, WeightDevice};

// ANCHOR: cgroups_path
/// Where `linux.cgroupsPath` puts the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupsPath {
    /// From the root of each hierarchy (the path without its leading `/`).
    Absolute(PathBuf),
    /// Beneath the runtime's own cgroup.
    Relative(PathBuf),
}

impl CgroupsPath {
    /// Reads `cgroupsPath` (`None`: not given) for container `id`.
    pub fn parse(path: Option<&str>, id: &str) -> Result<CgroupsPath> {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return Ok(CgroupsPath::Relative(PathBuf::from(format!("cfs-{id}"))));
        };
        // systemd's form: `system.slice:docker:<id>`.
        if path.split(':').count() == 3 && !path.contains('/') {
            bail!(
                "linux.cgroupsPath {path:?} is a systemd slice:prefix:name: this runtime has \
                 only the cgroupfs driver; configure the engine for cgroupfs (Docker: \
                 \"exec-opts\": [\"native.cgroupdriver=cgroupfs\"])"
            );
        }
        let mut clean = PathBuf::new();
        for part in Path::new(path).components() {
            match part {
                Component::Normal(part) => clean.push(part),
                Component::RootDir | Component::CurDir => {}
                _ => bail!("linux.cgroupsPath {path:?}: `..` is not allowed"),
            }
        }
        ensure!(
            clean.components().next().is_some(),
            "linux.cgroupsPath {path:?} names the root cgroup: give a group beneath it"
        );
        ensure!(
            clean.iter().all(|p| p.len() <= 255),
            "linux.cgroupsPath {path:?} has a name longer than 255 bytes"
        );
        Ok(if path.starts_with('/') {
            CgroupsPath::Absolute(clean)
        } else {
            CgroupsPath::Relative(clean)
        })
    }

    /// The path below the root (absolute) or below our own cgroup.
    pub fn inner(&self) -> &Path {
        match self {
            CgroupsPath::Absolute(p) | CgroupsPath::Relative(p) => p,
        }
    }

    /// The container's own directory name: the last component.
    fn leaf(&self) -> Result<String> {
        self.inner()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("an empty cgroupsPath")
    }

    /// Where the path lies in a tree mounted at `mount`, showing the cgroup
    /// `root` of its hierarchy, for a runtime whose own cgroup is `base`.
    fn dir(&self, mount: &Path, root: &Path, base: &Path) -> Result<PathBuf> {
        match self {
            CgroupsPath::Relative(inner) => Ok(base.join(inner)),
            CgroupsPath::Absolute(inner) => {
                let root = root.strip_prefix("/").unwrap_or(root);
                let inside = inner.strip_prefix(root).with_context(|| {
                    format!(
                        "linux.cgroupsPath /{} is outside the part of the hierarchy mounted at \
                         {} (cgroup /{}): run the runtime where that cgroup is in reach",
                        inner.display(),
                        mount.display(),
                        root.display()
                    )
                })?;
                Ok(mount.join(inside))
            }
        }
    }
}
// ANCHOR_END: cgroups_path

impl std::fmt::Display for CgroupsPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CgroupsPath::Absolute(p) => write!(f, "/{}", p.display()),
            CgroupsPath::Relative(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Cgroup {
    /// Creates the cgroup an OCI config's `linux.cgroupsPath` names, with
    /// `limits`: see this module (chapter 6).
    pub fn create_at(path: &CgroupsPath, limits: &Limits) -> Result<Cgroup> {
        let hierarchies = Hierarchies::detect()?;
        let version = hierarchies.layout()?.version();
        say!(
            "cgroup layout: {}: using cgroup {version}",
            hierarchies.layout()?
        );
        create(&super::KERNEL, &hierarchies, version, path, limits)
    }
}

/// Creates the cgroup at `path` with `limits`, on `version`, creating the
/// directories on the way (see the module's comment).
pub(crate) fn create(
    files: &'static dyn Files,
    hierarchies: &Hierarchies,
    version: Version,
    path: &CgroupsPath,
    limits: &Limits,
) -> Result<Cgroup> {
    limits.check()?;
    limits.resources.check(version)?;
    let leaf = path.leaf()?;
    let mut created = Vec::new();
    let backend = match version {
        Version::V1 => {
            let joined = v1::joined(limits);
            let mut beneath = Vec::new();
            for h in &hierarchies.v1 {
                if !h.controllers.iter().any(|c| joined.contains(&c.as_str())) {
                    continue;
                }
                let dir = path.dir(&h.mount, &h.root, &h.own)?;
                let parent = dir.parent().context("a cgroup without a parent")?;
                let has = |c: &str| h.controllers.iter().any(|x| x == c);
                let copy = Copy {
                    cpuset: has("cpuset"),
                    rt_runtime: limits.resources.rt_runtime_us.filter(|_| has("cpu")),
                };
                let made = make_parents(files, &h.mount, parent, copy, &mut created);
                if let Err(err) = made {
                    remove_created(files, &mut created)?;
                    return Err(err);
                }
                beneath.push(super::V1Hierarchy {
                    own: parent.to_path_buf(),
                    ..h.clone()
                });
            }
            v1::Cgroup::create(files, &beneath, &leaf, limits).map(Backend::V1)
        }
        Version::V2 => {
            let tree = hierarchies
                .v2
                .as_ref()
                .context("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)")?;
            let needed = v2::needed(limits);
            check_v2_controllers(files, tree, limits)?;
            let base = match path {
                // Beneath our own cgroup, or beside it when it holds processes.
                CgroupsPath::Relative(_) => v2::place(files, tree, &needed)?,
                CgroupsPath::Absolute(_) => tree.own.clone(),
            };
            let dir = path.dir(&tree.mount, &tree.root, &base)?;
            let parent = dir.parent().context("a cgroup without a parent")?;
            let made = make_parents(files, &tree.mount, parent, Copy::default(), &mut created)
                .and_then(|()| enable_in(files, tree, parent, &needed));
            if let Err(err) = made {
                remove_created(files, &mut created)?;
                return Err(err);
            }
            let tree = super::V2Hierarchy {
                own: parent.to_path_buf(),
                ..tree.clone()
            };
            v2::Cgroup::create(files, &tree, &leaf, limits).map(Backend::V2)
        }
    };
    match backend {
        Ok(backend) => Ok(Cgroup {
            backend,
            armed: true,
            created,
            files,
        }),
        Err(err) => {
            remove_created(files, &mut created)?;
            Err(err)
        }
    }
}

/// What a new v1 parent must be given before the container's group can
/// have it: the cpuset's CPUs and memory nodes (a new group has none), and
/// real-time CPU time (a group's runtime must fit in its parent's).
#[derive(Debug, Clone, Copy, Default)]
struct Copy {
    cpuset: bool,
    rt_runtime: Option<i64>,
}

/// Creates the missing directories from `mount` down to `dir`, outermost
/// first, adding each to `created`, and gives each what [`Copy`] says.
fn make_parents(
    files: &dyn Files,
    mount: &Path,
    dir: &Path,
    copy: Copy,
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| {
            d.starts_with(mount) && *d != mount && !files.exists(&d.join("cgroup.procs"))
        })
        .collect();
    for d in missing.into_iter().rev() {
        mkdir(files, d)?;
        created.push(d.to_path_buf());
        if copy.cpuset {
            copy_cpuset(files, d)?;
        }
        if let Some(runtime) = copy.rt_runtime {
            write(files, &d.join("cpu.rt_runtime_us"), &runtime.to_string())?;
        }
    }
    Ok(())
}

/// Writes the parent's `cpuset.cpus` and `cpuset.mems` to a new v1 group.
pub(crate) fn copy_cpuset(files: &dyn Files, dir: &Path) -> Result<()> {
    let parent = dir.parent().context("a cgroup without a parent")?;
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let value = read(files, &parent.join(name))?;
        write(files, &dir.join(name), value.trim())?;
    }
    Ok(())
}

/// Makes the controllers available to `dir`'s children, as the cgroup goes
/// there whether or not `dir` holds processes (unlike chapter 4's place).
fn enable_in(
    files: &dyn Files,
    tree: &super::V2Hierarchy,
    dir: &Path,
    needed: &[&str],
) -> Result<()> {
    if needed.is_empty() {
        return Ok(());
    }
    match v2::enable(files, tree, dir, needed)? {
        v2::Enable::Done => Ok(()),
        v2::Enable::Busy => bail!(
            "cannot enable {} in {} for the container's cgroup: it holds processes of its own \
             (EBUSY, the no-internal-process rule); choose a cgroupsPath whose parent holds none",
            needed.join(", "),
            dir.display()
        ),
    }
}

/// On v2, a resource whose controller the tree does not offer at all is
/// named here, before anything is created.
fn check_v2_controllers(
    files: &dyn Files,
    tree: &super::V2Hierarchy,
    limits: &Limits,
) -> Result<()> {
    let available = read(files, &tree.mount.join("cgroup.controllers"))?;
    for (field, controller) in limits.resources.needs(Version::V2) {
        ensure!(
            available.split_whitespace().any(|c| c == controller),
            "linux.resources.{field} needs the {controller} controller, and the cgroup2 tree at \
             {} does not offer it (its cgroup.controllers lists {:?}): remove the field",
            tree.mount.display(),
            available.trim()
        );
    }
    Ok(())
}

/// Removes the parents the runtime created, innermost first, as long as
/// nothing else is in them (another container's group, say): those are
/// left, and forgotten.
pub(crate) fn remove_created(files: &dyn Files, created: &mut Vec<PathBuf>) -> Result<()> {
    while let Some(dir) = created.pop() {
        match files.rmdir(&dir) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
                say!("{} is still in use: left in place", dir.display());
            }
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to remove cgroup {}", dir.display()))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::files::fake::Fake;
    use crate::cgroups::{Placement, V1Hierarchy, V2Hierarchy};

    const SCOPE: &str = "/cg/user.slice/session-1.scope";

    /// A v2 machine whose root offers every controller and whose runtime
    /// runs in a session scope that holds processes.
    fn v2_machine() -> (&'static Fake, Hierarchies) {
        let files = Fake {
            v2_root: Some((
                PathBuf::from("/cg"),
                ["cpu", "cpuset", "io", "memory", "pids", "hugetlb"]
                    .map(String::from)
                    .to_vec(),
            )),
            busy: [PathBuf::from(SCOPE)].into(),
            ..Fake::default()
        }
        .with_dir(SCOPE)
        .leak();
        let h = Hierarchies {
            v1: Vec::new(),
            v2: Some(V2Hierarchy {
                mount: PathBuf::from("/cg"),
                root: PathBuf::from("/"),
                own: PathBuf::from(SCOPE),
            }),
        };
        (files, h)
    }

    fn kubelet_resources() -> Resources {
        Resources {
            block_io: BlockIo {
                weight: Some(500),
                read_bps: vec![ThrottleDevice {
                    major: 8,
                    minor: 0,
                    rate: 1 << 20,
                }],
                ..BlockIo::default()
            },
            cpus: Some("0-1".into()),
            hugepages: vec![("2MB".into(), 0)],
            memory_reservation: Some(16 << 20),
            swappiness: Some(10),
            unified: vec![("memory.high".into(), "50331648".into())],
            ..Resources::default()
        }
    }

    // ANCHOR: plan_v2
    /// The kubelet's absolute path on v2: the pod's directories are made and
    /// hand the controllers down, the resources land in the container's
    /// files, and removing the container removes what was made for it.
    #[test]
    fn an_absolute_path_on_v2() -> Result<()> {
        let (files, h) = v2_machine();
        let limits = Limits {
            memory: Some(64 << 20),
            resources: kubelet_resources(),
            ..Limits::default()
        };
        let path = CgroupsPath::parse(Some("/kubepods/pod1/ctr"), "ctr")?;
        let cgroup = create(files, &h, Version::V2, &path, &limits)?;
        let placement = cgroup.placement();
        assert_eq!(
            placement.created,
            [Path::new("/cg/kubepods"), Path::new("/cg/kubepods/pod1")]
        );
        // A later run (delete) opens it from the saved placement.
        drop(cgroup.keep());
        let text = serde_json::to_string(&placement)?;
        Cgroup::open_with(files, &serde_json::from_str::<Placement>(&text)?).remove()?;
        assert_eq!(
            files.log(),
            [
                "mkdir /cg/kubepods",
                "mkdir /cg/kubepods/pod1",
                r#"write /cg/cgroup.subtree_control "+memory +io +cpuset +hugetlb""#,
                r#"write /cg/kubepods/cgroup.subtree_control "+memory +io +cpuset +hugetlb""#,
                r#"write /cg/kubepods/pod1/cgroup.subtree_control "+memory +io +cpuset +hugetlb""#,
                "mkdir /cg/kubepods/pod1/ctr",
                r#"write /cg/kubepods/pod1/ctr/memory.max "67108864""#,
                r#"write /cg/kubepods/pod1/ctr/memory.swap.max "0""#,
                r#"write /cg/kubepods/pod1/ctr/cpuset.cpus "0-1""#,
                // No BFQ: v1's weight 500 on io.weight's scale.
                r#"write /cg/kubepods/pod1/ctr/io.weight "4950""#,
                r#"write /cg/kubepods/pod1/ctr/io.max "8:0 rbps=1048576""#,
                r#"write /cg/kubepods/pod1/ctr/hugetlb.2MB.max "0""#,
                r#"write /cg/kubepods/pod1/ctr/memory.low "16777216""#,
                r#"write /cg/kubepods/pod1/ctr/memory.high "50331648""#,
                "rmdir /cg/kubepods/pod1/ctr",
                "rmdir /cg/kubepods/pod1",
                "rmdir /cg/kubepods",
            ]
        );
        Ok(())
    }
    // ANCHOR_END: plan_v2

    /// A relative path on v2 goes beside the busy scope (as runc always
    /// does); a parent the engine made is never removed, and one still
    /// holding another container's group is left.
    #[test]
    fn a_relative_path_and_shared_parents() -> Result<()> {
        let (files, h) = v2_machine();
        let limits = Limits {
            pids: Some(8),
            ..Limits::default()
        };
        let a = CgroupsPath::parse(Some("pod/a"), "a")?;
        let b = CgroupsPath::parse(Some("pod/b"), "b")?;
        let first = create(files, &h, Version::V2, &a, &limits)?;
        let second = create(files, &h, Version::V2, &b, &limits)?;
        assert_eq!(first.dirs(), [Path::new("/cg/user.slice/pod/a")]);
        assert_eq!(second.placement().created, Vec::<PathBuf>::new());
        first.remove()?;
        assert!(files.exists(Path::new("/cg/user.slice/pod/cgroup.procs")));
        second.remove()?;
        assert!(files.exists(Path::new("/cg/user.slice/pod/cgroup.procs")));
        Ok(())
    }

    #[test]
    fn refusals_come_before_any_mkdir() {
        let (files, h) = v2_machine();
        let err = |path: &str, resources: Resources| {
            let limits = Limits {
                resources,
                ..Limits::default()
            };
            CgroupsPath::parse(Some(path), "x")
                .and_then(|p| create(files, &h, Version::V2, &p, &limits).map(|_| ()))
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default()
        };
        let rdma = Resources {
            rdma: vec![Rdma {
                device: "mlx5_0".into(),
                hca_handles: Some(2),
                hca_objects: None,
            }],
            ..Resources::default()
        };
        assert!(err("/a/x", rdma).contains("linux.resources.rdma needs the rdma controller"));
        let rt = Resources {
            rt_runtime_us: Some(1000),
            ..Resources::default()
        };
        assert!(err("/a/x", rt).contains("no real-time group scheduling"));
        // The scope holds processes: nothing may go beneath it with a limit.
        let scope = format!("{}/x", SCOPE.trim_start_matches("/cg"));
        assert!(err(&scope, kubelet_resources()).contains("EBUSY"));
        assert!(err("/a/../x", Resources::default()).contains("`..`"));
        assert!(err("user.slice:cfs:x", Resources::default()).contains("cgroupfs"));
        assert_eq!(
            files.log(),
            [
                // Only the busy case got as far as its parent's controllers,
                // where the kernel said EBUSY.
                r#"write /cg/cgroup.subtree_control "+io +cpuset +hugetlb +memory""#,
                r#"write /cg/user.slice/cgroup.subtree_control "+io +cpuset +hugetlb +memory""#,
                format!(r#"write {SCOPE}/cgroup.subtree_control "+io +cpuset +hugetlb +memory""#)
                    .as_str(),
            ]
        );
    }

    fn v1_machine(controllers: &[&str]) -> (&'static Fake, Hierarchies) {
        let files = Fake {
            v1: controllers
                .iter()
                .map(|c| (PathBuf::from(format!("/cg/{c}")), vec![c.to_string()]))
                .collect(),
            ..Fake::default()
        }
        .with_dir("/cg/memory/app")
        .with_value("/cg/cpuset/cpuset.cpus", "0-3")
        .with_value("/cg/cpuset/cpuset.mems", "0")
        .leak();
        let h = Hierarchies {
            v1: controllers
                .iter()
                .map(|c| V1Hierarchy {
                    controllers: vec![c.to_string()],
                    mount: PathBuf::from(format!("/cg/{c}")),
                    root: PathBuf::from("/"),
                    own: PathBuf::from(if *c == "memory" {
                        "/cg/memory/app"
                    } else {
                        "/cg"
                    })
                    .join(if *c == "memory" { "" } else { c }),
                })
                .collect(),
            v2: None,
        };
        (files, h)
    }

    /// On v1 each hierarchy gets the path from its root; a new cpuset
    /// parent copies its parent's CPUs and nodes, a new cpu parent gets the
    /// real-time budget the container asks for.
    #[test]
    fn an_absolute_path_on_v1() -> Result<()> {
        let (files, h) = v1_machine(&["blkio", "cpu", "cpuset", "memory"]);
        let limits = Limits {
            resources: Resources {
                mems: Some("0".into()),
                rt_runtime_us: Some(10_000),
                memory_reservation: Some(1 << 20),
                disable_oom_killer: true,
                block_io: BlockIo {
                    write_iops: vec![ThrottleDevice {
                        major: 254,
                        minor: 0,
                        rate: 100,
                    }],
                    ..BlockIo::default()
                },
                ..Resources::default()
            },
            ..Limits::default()
        };
        let path = CgroupsPath::parse(Some("/app/ctr"), "ctr")?;
        let cgroup = create(files, &h, Version::V1, &path, &limits)?;
        cgroup.remove()?;
        assert_eq!(
            files.log(),
            [
                "mkdir /cg/blkio/app",
                "mkdir /cg/cpu/app",
                r#"write /cg/cpu/app/cpu.rt_runtime_us "10000""#,
                "mkdir /cg/cpuset/app",
                r#"write /cg/cpuset/app/cpuset.cpus "0-3""#,
                r#"write /cg/cpuset/app/cpuset.mems "0""#,
                "mkdir /cg/blkio/app/ctr",
                "mkdir /cg/cpu/app/ctr",
                "mkdir /cg/cpuset/app/ctr",
                "mkdir /cg/memory/app/ctr",
                r#"write /cg/cpu/app/ctr/cpu.rt_runtime_us "10000""#,
                r#"write /cg/cpuset/app/ctr/cpuset.cpus "0-3""#,
                r#"write /cg/cpuset/app/ctr/cpuset.mems "0""#,
                r#"write /cg/blkio/app/ctr/blkio.throttle.write_iops_device "254:0 100""#,
                r#"write /cg/memory/app/ctr/memory.soft_limit_in_bytes "1048576""#,
                r#"write /cg/memory/app/ctr/memory.oom_control "1""#,
                "rmdir /cg/memory/app/ctr",
                "rmdir /cg/cpuset/app/ctr",
                "rmdir /cg/cpu/app/ctr",
                "rmdir /cg/blkio/app/ctr",
                "rmdir /cg/cpuset/app",
                "rmdir /cg/cpu/app",
                "rmdir /cg/blkio/app",
            ]
        );
        Ok(())
    }

    /// Each memory knob of v1 is written also when it is the only one asked
    /// for (above, the soft limit comes with the OOM killer).
    #[test]
    fn a_lone_memory_knob_on_v1() -> Result<()> {
        let alone = [
            (
                Resources {
                    memory_reservation: Some(4096),
                    ..Resources::default()
                },
                r#"memory.soft_limit_in_bytes "4096""#,
            ),
            (
                Resources {
                    swappiness: Some(10),
                    ..Resources::default()
                },
                r#"memory.swappiness "10""#,
            ),
            (
                Resources {
                    disable_oom_killer: true,
                    ..Resources::default()
                },
                r#"memory.oom_control "1""#,
            ),
            (
                Resources {
                    kernel_tcp: Some(4096),
                    ..Resources::default()
                },
                r#"memory.kmem.tcp.limit_in_bytes "4096""#,
            ),
        ];
        for (resources, write) in alone {
            let (files, h) = v1_machine(&["memory"]);
            let limits = Limits {
                resources,
                ..Limits::default()
            };
            let path = CgroupsPath::Relative("x".into());
            create(files, &h, Version::V1, &path, &limits)?.remove()?;
            let wanted = format!("write /cg/memory/app/x/{write}");
            assert!(files.log().contains(&wanted), "{wanted}: {:?}", files.log());
        }
        Ok(())
    }

    /// Without the hugetlb hierarchy, hugepage limits are one error naming
    /// the field and the controller, before anything is made; on v1,
    /// `unified` is refused.
    #[test]
    fn v1_refusals() {
        let (files, h) = v1_machine(&["cpu", "memory"]);
        let err = |resources: Resources| {
            let limits = Limits {
                resources,
                ..Limits::default()
            };
            create(
                files,
                &h,
                Version::V1,
                &CgroupsPath::Relative("x".into()),
                &limits,
            )
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
        };
        let huge = Resources {
            hugepages: vec![("2MB".into(), 0)],
            ..Resources::default()
        };
        assert!(err(huge).contains("linux.resources.hugepageLimits needs the hugetlb controller"));
        let unified = Resources {
            unified: vec![("memory.high".into(), "1".into())],
            ..Resources::default()
        };
        assert!(err(unified).contains("linux.resources.unified holds cgroup v2 files"));
        assert!(files.log().is_empty(), "{:?}", files.log());
    }

    /// An absolute path outside the part of the hierarchy that is mounted
    /// (a subtree, as inside a container) cannot be reached.
    #[test]
    fn absolute_paths_are_resolved_against_the_mounts_root() -> Result<()> {
        let path = CgroupsPath::parse(Some("/ns/ctr"), "ctr")?;
        let dir = path.dir(Path::new("/cg"), Path::new("/ns"), Path::new("/unused"))?;
        assert_eq!(dir, Path::new("/cg/ctr"));
        let dir = path.dir(Path::new("/cg"), Path::new("/"), Path::new("/unused"))?;
        assert_eq!(dir, Path::new("/cg/ns/ctr"));
        assert!(path
            .dir(Path::new("/cg"), Path::new("/other"), Path::new("/unused"))
            .is_err());
        Ok(())
    }
}
