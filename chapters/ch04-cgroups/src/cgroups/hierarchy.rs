//! Where the cgroup trees are: the layout (v1, hybrid, v2), each hierarchy's
//! mount and this process's own cgroup in it, from `/proc/self/mountinfo`
//! and `/proc/self/cgroup`.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Which interface a cgroup is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::V1 => write!(f, "v1"),
            Version::V2 => write!(f, "v2"),
        }
    }
}

/// How a machine mounts its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 hierarchies (older distributions).
    V1,
    /// v1 hierarchies hold the controllers; a cgroup2 tree is mounted too,
    /// with few or no controllers (systemd's "hybrid" mode).
    Hybrid,
    /// Only cgroup2 (Debian 11+, Ubuntu 21.10+, Fedora 31+).
    V2,
}

impl Layout {
    /// The interface to use: the one that holds the controllers.
    pub fn version(self) -> Version {
        match self {
            Layout::V1 | Layout::Hybrid => Version::V1,
            Layout::V2 => Version::V2,
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::V1 => write!(f, "v1"),
            Layout::Hybrid => write!(f, "hybrid"),
            Layout::V2 => write!(f, "v2"),
        }
    }
}

/// A v1 hierarchy: where it is mounted, which controllers it carries, and the
/// directory of the cgroup this process is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
    /// Which cgroup of the hierarchy the mount shows (`/` for all of it;
    /// in a cgroup namespace, `/` is the namespace's root).
    pub root: PathBuf,
    pub own: PathBuf,
}

/// The cgroup2 tree: where it is mounted and the directory of our cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Hierarchy {
    pub mount: PathBuf,
    /// As [`V1Hierarchy::root`].
    pub root: PathBuf,
    pub own: PathBuf,
}

/// The cgroup trees this process can use, and its own place in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1 hierarchies with resource controllers (named ones such as
    /// `name=systemd` carry none and are left out).
    pub v1: Vec<V1Hierarchy>,
    pub v2: Option<V2Hierarchy>,
}

impl Hierarchies {
    /// Reads `/proc/self/mountinfo` (where each tree is mounted) and
    /// `/proc/self/cgroup` (which cgroup we are in, in each tree).
    pub fn detect() -> Result<Hierarchies> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .context("failed to read /proc/self/mountinfo")?;
        let cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .context("failed to read /proc/self/cgroup")?;
        Hierarchies::parse(&mountinfo, &cgroup)
    }

    /// The layout: which kinds of tree are mounted.
    pub fn layout(&self) -> Result<Layout> {
        match (self.v1.is_empty(), &self.v2) {
            (false, Some(_)) => Ok(Layout::Hybrid),
            (false, None) => Ok(Layout::V1),
            (true, Some(_)) => Ok(Layout::V2),
            (true, None) => bail!(
                "no cgroup filesystem is mounted (see /proc/self/mountinfo): \
                 mount one with `mount -t cgroup2 none /sys/fs/cgroup`"
            ),
        }
    }

    // ANCHOR: parse
    /// Parses the two files; see [`Hierarchies::detect`].
    ///
    /// Each line of `/proc/self/cgroup` is `ID:CONTROLLERS:PATH`, such as
    /// `4:memory:/user.slice` (v1) or `0::/user.slice/session-1.scope` (v2).
    /// PATH is relative to the tree's root; the directory is where that tree
    /// is mounted, plus PATH (less the mount's own root, if only a subtree is
    /// mounted, as inside a container).
    pub fn parse(mountinfo: &str, proc_self_cgroup: &str) -> Result<Hierarchies> {
        let mounts = parse_mountinfo(mountinfo);
        let mut hierarchies = Hierarchies {
            v1: Vec::new(),
            v2: None,
        };
        for line in proc_self_cgroup.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(list), Some(path)) = (fields.next(), fields.next(), fields.next())
            else {
                bail!("unexpected line in /proc/self/cgroup: {line:?}");
            };
            let path = Path::new(path);
            if id == "0" && list.is_empty() {
                let mount = mounts
                    .iter()
                    .find(|m| m.fstype == "cgroup2" && path.starts_with(&m.root));
                if let Some(m) = mount {
                    hierarchies.v2 = Some(V2Hierarchy {
                        mount: m.point.clone(),
                        root: m.root.clone(),
                        own: own_dir(m, path),
                    });
                }
                continue;
            }
            let controllers: Vec<String> = list
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect();
            if controllers.is_empty() {
                continue;
            }
            // The mount of this hierarchy lists its controllers in its options.
            let mount = mounts.iter().find(|m| {
                m.fstype == "cgroup"
                    && controllers.iter().all(|c| m.options.iter().any(|o| o == c))
                    && path.starts_with(&m.root)
            });
            if let Some(m) = mount {
                hierarchies.v1.push(V1Hierarchy {
                    controllers,
                    mount: m.point.clone(),
                    root: m.root.clone(),
                    own: own_dir(m, path),
                });
            }
        }
        // The order of /proc/self/cgroup is the kernel's; narrate by name.
        hierarchies.v1.sort_by(|a, b| a.mount.cmp(&b.mount));
        Ok(hierarchies)
    }
    // ANCHOR_END: parse

    /// The v1 hierarchy that carries `controller`.
    pub fn v1_with(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }
}

/// One line of `/proc/self/mountinfo`, the fields we need.
struct Mount {
    /// The directory of the filesystem that is mounted (`/` for a whole tree).
    root: PathBuf,
    point: PathBuf,
    fstype: String,
    options: Vec<String>,
}

/// `36 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory`:
/// fields 4 and 5 are the root and mount point; after `-` come the type, the
/// source and the filesystem's own options, which name a v1 hierarchy's
/// controllers. See `proc(5)`.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                root: PathBuf::from(unescape(fields.get(3)?)),
                point: PathBuf::from(unescape(fields.get(4)?)),
                fstype: fields.get(dash + 1)?.to_string(),
                options: fields
                    .get(dash + 3)?
                    .split(',')
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// mountinfo writes a space in a path as `\040` (octal), and so on.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn own_dir(mount: &Mount, path: &Path) -> PathBuf {
    let inside = path.strip_prefix(&mount.root).unwrap_or(path);
    mount.point.join(inside)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// This development machine's layout: v1 controllers, cpu and cpuacct in
    /// separate hierarchies, memory nested in a cgroup of its own, cgroup2 at
    /// /sys/fs/cgroup/unified.
    pub(crate) const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    pub(crate) const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
4:memory:/process_api/376c
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn detects_a_hybrid_layout() -> Result<()> {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP)?;
        assert_eq!(h.layout()?, Layout::Hybrid);
        assert_eq!(h.layout()?.version(), Version::V1);
        assert_eq!(h.v1.len(), 4, "name=systemd carries no controller: {h:?}");
        let memory = h.v1_with("memory").context("no memory")?;
        assert_eq!(
            memory.own,
            Path::new("/sys/fs/cgroup/memory/process_api/376c")
        );
        let cpu = h.v1_with("cpu").context("no cpu")?;
        assert_eq!(cpu.own, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(cpu.controllers, vec!["cpu"]);
        let v2 = h.v2.context("no v2")?;
        assert_eq!(v2.own, Path::new("/sys/fs/cgroup/unified"));
        Ok(())
    }

    #[test]
    fn detects_comounted_cpu_and_cpuacct() -> Result<()> {
        let mountinfo = "\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let h = Hierarchies::parse(mountinfo, "3:cpu,cpuacct:/a\n2:memory:/a\n")?;
        assert_eq!(h.layout()?, Layout::V1);
        assert_eq!(h.v1.len(), 2);
        assert_eq!(h.v1_with("cpuacct"), h.v1_with("cpu"));
        assert_eq!(
            h.v1_with("cpu").map(|c| c.own.clone()),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a"))
        );
        Ok(())
    }

    #[test]
    fn detects_v2_from_a_session_scope() -> Result<()> {
        let mountinfo = "30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchies::parse(
            mountinfo,
            "0::/user.slice/user-1000.slice/session-1.scope\n",
        )?;
        assert_eq!(h.layout()?, Layout::V2);
        assert_eq!(
            h.v2.map(|v| v.own),
            Some(PathBuf::from(
                "/sys/fs/cgroup/user.slice/user-1000.slice/session-1.scope"
            ))
        );
        Ok(())
    }

    #[test]
    fn a_mounted_subtree_is_stripped_from_the_path() -> Result<()> {
        // Inside a container, the cgroup2 mount may show only the container's
        // subtree, while /proc/self/cgroup still names the full path.
        let mountinfo = "30 24 0:26 /ctr /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchies::parse(mountinfo, "0::/ctr/app\n")?;
        assert_eq!(
            h.v2.map(|v| v.own),
            Some(PathBuf::from("/sys/fs/cgroup/app"))
        );
        Ok(())
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let h = Hierarchies::parse("", "0::/\n");
        assert!(h.is_ok_and(|h| h.layout().is_err()));
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\0"), r"/odd\0");
    }
}
