//! Where a cgroup is, saved between runs of a runtime ([`Placement`]), and
//! opening it again ([`Cgroup::open`]): chapter 6's `create` makes the group,
//! and `pause`, `ps`, `exec`, `kill` and `delete`, each a new process, open
//! it from `state.json`.

use std::path::PathBuf;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::super::{v1, v2, Backend, Cgroup, Files, Hierarchies, Version, KERNEL};

// ANCHOR: placement
/// Where a cgroup is: what a later run of a runtime needs to open it again
/// ([`Cgroup::open`]). Chapter 6 keeps it in the container's `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub version: Version,
    /// One directory per v1 hierarchy; one on v2.
    pub dirs: Vec<Dir>,
    /// The parents of those directories that the runtime created on the
    /// way to them (a `cgroupsPath` such as `/cfs/app/ctr`), outermost
    /// first: removed with the group when nothing else is left in them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<PathBuf>,
}

/// One directory of a cgroup, with the controllers of its v1 hierarchy
/// (none listed on v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    pub path: PathBuf,
    pub controllers: Vec<String>,
}
// ANCHOR_END: placement

impl Placement {
    /// A v1 cgroup's directories, each with its hierarchy's controllers.
    pub fn v1(dirs: Vec<(PathBuf, Vec<String>)>) -> Placement {
        Placement {
            version: Version::V1,
            dirs: dirs
                .into_iter()
                .map(|(path, controllers)| Dir { path, controllers })
                .collect(),
            created: Vec::new(),
        }
    }

    /// Refuses a placement that is not a group beneath a cgroup tree mounted
    /// here: removing a group kills what is in it, so a damaged state file
    /// must not name, say, the root of a hierarchy.
    fn check(&self, hierarchies: &Hierarchies) -> Result<()> {
        let mounts: Vec<&PathBuf> = match self.version {
            Version::V1 => hierarchies.v1.iter().map(|h| &h.mount).collect(),
            Version::V2 => hierarchies.v2.iter().map(|h| &h.mount).collect(),
        };
        for created in &self.created {
            let beneath = mounts
                .iter()
                .any(|m| created.starts_with(m) && created != *m);
            let plain = created
                .components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
            ensure!(
                beneath && plain,
                "{} is not a cgroup beneath a {} hierarchy of this machine: refusing to use it",
                created.display(),
                self.version
            );
        }
        for dir in &self.dirs {
            let mount = match self.version {
                Version::V1 => hierarchies
                    .v1
                    .iter()
                    .find(|h| h.controllers == dir.controllers)
                    .map(|h| &h.mount),
                Version::V2 => hierarchies.v2.as_ref().map(|h| &h.mount),
            };
            let beneath = mount.is_some_and(|m| dir.path.starts_with(m) && dir.path != *m);
            let plain = dir.path.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::RootDir
                )
            });
            ensure!(
                beneath && plain,
                "{} is not a cgroup beneath a {} hierarchy{} of this machine: refusing to use it",
                dir.path.display(),
                self.version,
                if dir.controllers.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", dir.controllers.join(","))
                }
            );
        }
        Ok(())
    }
}

impl Cgroup {
    // ANCHOR: open
    /// Opens a cgroup that an earlier process created, from its
    /// [`Placement`]. Dropping it does not remove it: that takes
    /// [`Cgroup::remove`].
    pub fn open(placement: &Placement) -> Result<Cgroup> {
        placement.check(&Hierarchies::detect()?)?;
        Ok(Cgroup::open_with(&KERNEL, placement))
    }
    // ANCHOR_END: open

    /// Like [`Cgroup::open`], without the check, on any [`Files`].
    pub fn open_with(files: &'static dyn Files, placement: &Placement) -> Cgroup {
        let backend = match placement.version {
            Version::V1 => Backend::V1(v1::Cgroup::open(
                files,
                placement
                    .dirs
                    .iter()
                    .map(|d| (d.path.clone(), d.controllers.clone()))
                    .collect(),
            )),
            Version::V2 => Backend::V2(v2::Cgroup::open(
                files,
                placement.dirs.first().map(|d| d.path.clone()),
            )),
        };
        Cgroup {
            backend,
            armed: false,
            created: placement.created.clone(),
            files,
        }
    }

    /// Where the cgroup is, to save for [`Cgroup::open`].
    pub fn placement(&self) -> Placement {
        let mut placement = match &self.backend {
            Backend::V1(cgroup) => Placement::v1(cgroup.dirs_with_controllers()),
            Backend::V2(cgroup) => Placement {
                version: Version::V2,
                dirs: cgroup
                    .dirs()
                    .into_iter()
                    .map(|path| Dir {
                        path,
                        controllers: Vec::new(),
                    })
                    .collect(),
                created: Vec::new(),
            },
        };
        placement.created = self.created.clone();
        placement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::hierarchy::tests::{HYBRID_CGROUP, HYBRID_MOUNTINFO};

    #[test]
    fn a_placement_must_be_beneath_a_hierarchy() -> Result<()> {
        let h = Hierarchies::parse(HYBRID_MOUNTINFO, HYBRID_CGROUP)?;
        let v1 = |path: &str, controller: &str| Placement {
            version: Version::V1,
            dirs: vec![Dir {
                path: PathBuf::from(path),
                controllers: vec![controller.to_string()],
            }],
            created: Vec::new(),
        };
        v1("/sys/fs/cgroup/pids/cfs-a", "pids").check(&h)?;
        v1("/sys/fs/cgroup/memory/process_api/376c/cfs-a", "memory").check(&h)?;
        for (path, controller) in [
            // The root of a hierarchy: removing it would kill every process.
            ("/sys/fs/cgroup/pids", "pids"),
            // In the wrong hierarchy, outside any, or climbing out.
            ("/sys/fs/cgroup/cpu/cfs-a", "pids"),
            ("/tmp/cfs-a", "pids"),
            ("/sys/fs/cgroup/pids/../../../tmp", "pids"),
        ] {
            let err = v1(path, controller).check(&h).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains("refusing")),
                "{path} was accepted"
            );
        }
        let v2 = Placement {
            version: Version::V2,
            dirs: vec![Dir {
                path: PathBuf::from("/sys/fs/cgroup/unified/cfs-a"),
                controllers: Vec::new(),
            }],
            created: Vec::new(),
        };
        v2.check(&h)?;
        // A parent the runtime made must be a group too, never a root.
        for created in [
            "/sys/fs/cgroup/unified",
            "/tmp/x",
            "/sys/fs/cgroup/unified/../x",
        ] {
            let mut bad = v2.clone();
            bad.created = vec![PathBuf::from(created)];
            assert!(bad.check(&h).is_err(), "{created} was accepted");
        }
        let mut good = v2.clone();
        good.created = vec![PathBuf::from("/sys/fs/cgroup/unified/pod")];
        good.check(&h)?;
        Ok(())
    }

    #[test]
    fn placements_are_saved_as_json() -> Result<()> {
        let placement = Placement {
            version: Version::V2,
            dirs: vec![Dir {
                path: PathBuf::from("/sys/fs/cgroup/cfs-a"),
                controllers: Vec::new(),
            }],
            created: Vec::new(),
        };
        let text = serde_json::to_string(&placement)?;
        assert_eq!(
            text,
            r#"{"version":"v2","dirs":[{"path":"/sys/fs/cgroup/cfs-a","controllers":[]}]}"#
        );
        assert_eq!(serde_json::from_str::<Placement>(&text)?, placement);
        Ok(())
    }
}
