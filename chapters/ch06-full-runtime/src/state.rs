//! The state store: what the runtime remembers about a container between two
//! of its own runs.
//!
//! The runtime is not a daemon: `create` exits and `start`, `state`, `kill`
//! and `delete` are new processes. What links them is a directory per
//! container under `--root` (default `/run/containers-from-scratch`), as runc
//! keeps one under `/run/runc`:
//!
//! ```text
//! /run/containers-from-scratch/<id>/state.json   what we know, written atomically
//! /run/containers-from-scratch/<id>/exec.fifo    exists between create and start
//! ```
//!
//! The status is not simply stored, because a container can change it on its
//! own: its process can exit while no runtime runs. So it is derived each time
//! from the kernel: no process (or a zombie, or a *different* process that
//! reused the PID, told apart by its start time) means `stopped`; a process
//! and the fifo mean `created` (it waits for `start`); a process and no fifo
//! mean `running`, or `paused` when its cgroup is frozen.
//!
//! Writing is atomic: the new state goes to a temporary file that is then
//! renamed over `state.json`, so a reader never sees half a file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// The default `--root`: the project's own directory under `/run` (a tmpfs:
/// state does not survive a reboot, and neither do the containers).
pub const DEFAULT_ROOT: &str = "/run/containers-from-scratch";

/// The fifo the container process blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

const STATE_FILE: &str = "state.json";

/// A container's status, as `state` and `list` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.pad(text)
    }
}

impl Status {
    /// The OCI state's status (which has no `paused`: a paused container is running).
    pub fn oci(self) -> oci_spec::runtime::ContainerState {
        use oci_spec::runtime::ContainerState as S;
        match self {
            Status::Creating => S::Creating,
            Status::Created => S::Created,
            Status::Running | Status::Paused => S::Running,
            Status::Stopped => S::Stopped,
        }
    }
}

/// What `state.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// `creating` until `create` has finished; afterwards derived (see [`Container::status`]).
    pub status: Status,
    pub pid: Option<i32>,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`
    /// field 22): a PID reused by another process has another start time.
    pub start_time: Option<u64>,
    pub created: String,
    /// Where the container's cgroup is (chapter 4's description of it).
    pub cgroup: Option<ch04_cgroups::cgroups::Placement>,
    /// The config as it was at create time (hooks for `delete`, defaults for `exec`).
    pub spec: Spec,
    /// Where the container's state directory is (not stored).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// The directory that holds one sub-directory per container.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

/// Container ids become directory names: chapter 1's `state::validate_name`.
pub fn validate_id(id: &str) -> Result<()> {
    ch01_uts::state::validate_name("container id", id)
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates the container's directory; fails if the id is taken. `mkdir`
    /// is atomic, so two `create`s with one id cannot both succeed.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        fs::create_dir_all(&self.root)
            .with_context(|| format!("failed to create the state root {}", self.root.display()))?;
        let dir = self.dir(id);
        say!("mkdir {}", dir.display());
        match fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id} exists already: delete it first or choose another id")
            }
            Err(err) => {
                Err(err).with_context(|| format!("failed to create state dir {}", dir.display()))
            }
        }
    }

    /// Loads a container's state; "does not exist" is a recognisable error.
    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = self.dir(id);
        let path = dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(NotFound(id.to_string()).into())
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", path.display()))
            }
        };
        let mut container: Container = serde_json::from_str(&text)
            .with_context(|| format!("corrupt state file {}", path.display()))?;
        container.dir = dir;
        Ok(container)
    }

    /// The ids of every container, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", self.root.display()))
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// "container X does not exist", kept apart so `delete --force` can accept it.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {} does not exist", self.0)
    }
}

impl std::error::Error for NotFound {}

impl Container {
    // ANCHOR: save
    /// Writes `state.json` atomically (chapter 1's `write_atomically`: a
    /// temporary file, then `rename(2)`).
    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec(self).context("failed to serialize the state")?;
        // No fsync: the state lives on a tmpfs (/run) and must only never be
        // seen half-written, which the rename guarantees.
        ch01_uts::state::write_atomically(&self.dir.join(STATE_FILE), &text)
    }
    // ANCHOR_END: save

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    // ANCHOR: status
    /// The status, derived from the kernel's view of the process.
    pub fn status(&self) -> Status {
        // LAB:BEGIN status: the container's status as the OCI runtime spec defines it, from its saved state, its process, exec.fifo and its cgroup; see the spec's lifecycle, proc(5)
        if self.status == Status::Creating {
            return Status::Creating;
        }
        if !self.alive() {
            return Status::Stopped;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(self.cgroup.as_ref()) {
            Status::Paused
        } else {
            Status::Running
        }
        // LAB:END
    }

    /// Whether our process still runs: it exists, is not a zombie, and is the
    /// same process (same start time) that `create` started.
    pub fn alive(&self) -> bool {
        match (self.pid, self.start_time) {
            (Some(pid), Some(start)) => ch01_uts::process::still_running(pid, start),
            _ => false,
        }
    }
    // ANCHOR_END: status

    /// The state JSON that hooks read on stdin (the OCI `State`).
    pub fn oci_state(&self, status: Status) -> Result<String> {
        let mut state = oci_spec::runtime::State::default();
        state.set_version(crate::spec::VERSION.to_string());
        state.set_id(self.id.clone());
        state.set_status(status.oci());
        state.set_pid(self.pid.filter(|_| status != Status::Stopped));
        state.set_bundle(self.bundle.clone());
        state.set_annotations(self.spec.annotations().clone());
        serde_json::to_string(&state).context("failed to serialize the state")
    }

    /// What `state ID` prints: runc's JSON (the OCI state plus `rootfs`,
    /// `created` and `owner`).
    pub fn report(&self) -> serde_json::Value {
        let status = self.status();
        serde_json::json!({
            "ociVersion": crate::spec::VERSION,
            "id": self.id,
            "pid": if status == Status::Stopped { 0 } else { self.pid.unwrap_or(0) },
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": "",
            "annotations": self.spec.annotations().clone().unwrap_or_default(),
        })
    }
}

/// The state letter and start time of a process (chapter 1's `process::stat`).
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    ch01_uts::process::stat(pid)
}

/// Removes a container's directory and everything in it.
pub fn remove_dir(dir: &Path) -> Result<()> {
    say!("rm -r {}", dir.display());
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to remove {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_names() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reads_our_own_start_time() {
        let pid = std::process::id() as i32;
        let (state, start) = proc_stat(pid).expect("our own stat");
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(start > 0);
    }
}
