//! `linux.namespaces`: which namespaces the container gets new, and which it
//! joins by path.
//!
//! Chapters 1 to 3 created a fixed set of namespaces. The OCI config lists them:
//! an entry without `path` asks for a new namespace of that kind, an entry
//! with `path` (`/proc/<pid>/ns/net`, or a bind-mounted namespace file) asks
//! to join an existing one with `setns(2)`. That is how Kubernetes puts the
//! containers of a pod into one network namespace: the pause container's.
//!
//! Two kinds need care. A PID namespace joined with `setns` only applies to
//! the *children* of the caller, so the runtime joins it itself before
//! cloning. A new cgroup namespace takes the caller's cgroup as its root, so
//! the child unshares it only after the runtime has moved it into the
//! container's cgroup. Joins happen in a fixed order, user namespace first:
//! once in it, the child holds the capabilities that joining the others needs.
//! All namespace files are opened before the first join, because joining a
//! mount namespace changes what the later paths would mean.
//!
//! What it leaves out: the time namespace (linux 5.6), which runc supports
//! through `linux.timeOffsets`.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// A namespace kind with its clone flag and its name under `/proc/<pid>/ns/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Pid,
    Ipc,
    Uts,
    Network,
    Mount,
    Cgroup,
}

impl Kind {
    /// Join order: user first (it grants the rights for the rest), mount last
    /// but one (it changes how paths resolve), cgroup last.
    pub const ORDER: [Kind; 7] = [
        Kind::User,
        Kind::Pid,
        Kind::Ipc,
        Kind::Uts,
        Kind::Network,
        Kind::Mount,
        Kind::Cgroup,
    ];

    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::User => CloneFlags::CLONE_NEWUSER,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Network => CloneFlags::CLONE_NEWNET,
            Kind::Mount => CloneFlags::CLONE_NEWNS,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        }
    }

    /// The file under `/proc/<pid>/ns/` (chapter 1's table).
    pub fn proc_name(self) -> &'static str {
        ch01_uts::namespaces::proc_name(self.flag())
    }

    fn from_oci(kind: LinuxNamespaceType) -> Result<Kind> {
        Ok(match kind {
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Network => Kind::Network,
            LinuxNamespaceType::Mount => Kind::Mount,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            other => bail!(
                "config.json: linux.namespaces: the {other:?} namespace is not supported by this runtime"
            ),
        })
    }
}

/// What `linux.namespaces` asks for.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Kinds to create new.
    pub new: Vec<Kind>,
    /// Kinds to join, with the namespace file to join.
    pub join: Vec<(Kind, PathBuf)>,
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut plan = Plan::default();
        let namespaces = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in namespaces {
            let kind = Kind::from_oci(ns.typ())?;
            if plan.new.contains(&kind) || plan.join.iter().any(|(k, _)| *k == kind) {
                bail!(
                    "config.json: linux.namespaces lists the {} namespace twice",
                    kind.proc_name()
                );
            }
            match ns.path() {
                Some(path) => plan.join.push((kind, path.clone())),
                None => plan.new.push(kind),
            }
        }
        Ok(plan)
    }

    /// Whether the container gets a new namespace of `kind`.
    pub fn owns(&self, kind: Kind) -> bool {
        self.new.contains(&kind)
    }

    /// The flags for `clone(2)`: every new namespace except cgroup, which the
    /// child unshares after it was moved into its cgroup.
    pub fn clone_flags(&self) -> CloneFlags {
        self.new
            .iter()
            .filter(|k| **k != Kind::Cgroup)
            .fold(CloneFlags::empty(), |flags, k| flags | k.flag())
    }

    /// The path of the PID namespace to join, if any (the runtime joins it).
    pub fn join_pid(&self) -> Option<&PathBuf> {
        self.join
            .iter()
            .find(|(k, _)| *k == Kind::Pid)
            .map(|(_, p)| p)
    }

    /// Opens the namespace files to join, except PID, in join order.
    pub fn open_joins(&self) -> Result<Vec<(Kind, File)>> {
        let mut files = Vec::new();
        for kind in Kind::ORDER {
            if kind == Kind::Pid {
                continue;
            }
            if let Some((_, path)) = self.join.iter().find(|(k, _)| *k == kind) {
                let file = File::open(path).with_context(|| {
                    format!(
                        "config.json: linux.namespaces: cannot open the {} namespace {}",
                        kind.proc_name(),
                        path.display()
                    )
                })?;
                files.push((kind, file));
            }
        }
        Ok(files)
    }
}

// ANCHOR: join
/// Joins the namespace behind `file` (`setns(2)`).
pub fn join(kind: Kind, file: &File, what: &str) -> Result<()> {
    say!(
        "setns({what}, {})",
        ch01_uts::namespaces::describe(kind.flag())
    );
    setns(file.as_fd(), kind.flag())
        .with_context(|| format!("failed to join the {} namespace {what}", kind.proc_name()))
}
// ANCHOR_END: join

/// A namespace of another process, opened to join: kind, file, path.
pub type Opened = (Kind, File, String);

/// Opens every namespace of a running process that we do not share, in
/// join order (used by `exec`: the runtime joins the PID namespace, which
/// applies to its children, and the child joins the rest with [`join_all`]).
pub fn open_all_of(pid: i32) -> Result<Vec<Opened>> {
    let mut files = Vec::new();
    for kind in Kind::ORDER {
        let theirs = format!("/proc/{pid}/ns/{}", kind.proc_name());
        let ours = format!("/proc/self/ns/{}", kind.proc_name());
        let same = match (std::fs::read_link(&theirs), std::fs::read_link(&ours)) {
            (Ok(a), Ok(b)) => a == b,
            (Err(err), _) => {
                return Err(err).with_context(|| format!("failed to read {theirs}"));
            }
            _ => false,
        };
        if !same {
            let file = File::open(&theirs).with_context(|| format!("failed to open {theirs}"))?;
            files.push((kind, file, theirs));
        }
    }
    Ok(files)
}

/// Joins each of `files`, in their order.
pub fn join_all(files: &[Opened]) -> Result<()> {
    for (kind, file, path) in files {
        join(*kind, file, path)?;
    }
    Ok(())
}
