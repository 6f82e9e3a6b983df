//! Chapter 6's bundles: an OCI bundle in a temporary directory, made by the
//! runtime's own `spec` and edited, with a state root of its own, driven with
//! runc's command line (`tests/ch06.rs`).
//!
//! Each bundle gets a relative `cgroupsPath` of its own (`cfs-test-<pid>-<n>`,
//! beneath the test's cgroup), so that runs of other people on the same
//! machine never ask for the same cgroup; dropping the bundle deletes its
//! containers and removes that cgroup.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::kernel::{cgroups_named, remove_cgroups_named};
use crate::paths;
use crate::run::{chapter, output, Output};

/// The runtime the bundles are for.
const RUNTIME: &str = "ch06-full-runtime";

/// A bundle in a temporary directory, with its own state root, whose
/// containers are deleted (`delete --force`) when it is dropped.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub state: tempfile::TempDir,
    pub config: Value,
    pub ids: std::cell::RefCell<Vec<String>>,
}

impl Bundle {
    /// `spec`, then: the default busybox rootfs (read-only), no terminal, `args`.
    pub fn new(args: &[&str]) -> Result<Bundle> {
        let dir = tempfile::tempdir()?;
        let state = tempfile::tempdir()?;
        let out = output(chapter(
            RUNTIME,
            &["spec", "--bundle", &dir.path().to_string_lossy()],
        ))?;
        out.expect_code(0)?;
        let text = fs::read_to_string(dir.path().join("config.json"))?;
        let mut config: Value = serde_json::from_str(&text)?;
        config["root"] = json!({ "path": paths::rootfs()?, "readonly": true });
        static BUNDLES: AtomicUsize = AtomicUsize::new(0);
        let n = BUNDLES.fetch_add(1, Ordering::Relaxed);
        config["linux"]["cgroupsPath"] = json!(format!("cfs-test-{}-{n}", std::process::id()));
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        // A writable /tmp: the rootfs itself stays read-only.
        config["mounts"]
            .as_array_mut()
            .context("default spec without mounts")?
            .push(
                json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                         "options": ["nosuid", "nodev", "size=1m"]}),
            );
        let bundle = Bundle {
            dir,
            state,
            config,
            ids: Default::default(),
        };
        bundle.save()?;
        Ok(bundle)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The name of the cgroup of this bundle's containers: the last
    /// component of its cgroupsPath.
    pub fn cgroup_name(&self) -> String {
        let path = self.config["linux"]["cgroupsPath"].as_str().unwrap_or("");
        path.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// Its directories, found by walking every mounted cgroup tree.
    pub fn cgroup_dirs(&self) -> Result<Vec<PathBuf>> {
        cgroups_named(&self.cgroup_name())
    }

    pub fn save(&self) -> Result<()> {
        fs::write(
            self.path().join("config.json"),
            serde_json::to_string_pretty(&self.config)?,
        )?;
        Ok(())
    }

    /// The runtime with `--root` set to this bundle's state root.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = chapter(RUNTIME, &["--root", &self.state.path().to_string_lossy()]);
        cmd.args(args).current_dir(self.path());
        cmd
    }

    pub fn rt(&self, args: &[&str]) -> Result<Output> {
        output(self.cmd(args))
    }

    /// `run ID` to the end.
    pub fn run(&self, id: &str) -> Result<Output> {
        self.ids.borrow_mut().push(id.to_string());
        self.rt(&["run", id])
    }

    /// `create ID`, with the container's stdio on files (a container keeps
    /// its stdio open, so it must not be a pipe the test waits on).
    pub fn create(&self, id: &str) -> Result<Output> {
        self.create_with(id, &[])
    }

    /// `create [FLAGS...] ID`.
    pub fn create_with(&self, id: &str, flags: &[&str]) -> Result<Output> {
        self.ids.borrow_mut().push(id.to_string());
        let out_path = self.path().join(format!("{id}.out"));
        let err_path = self.path().join(format!("{id}.err"));
        let mut args = vec!["create"];
        args.extend(flags);
        args.push(id);
        let status = self
            .cmd(&args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path)?)
            .stderr(fs::File::create(&err_path)?)
            .status()?;
        Ok(Output {
            code: status.code().unwrap_or(-1),
            stdout: fs::read_to_string(&out_path)?,
            stderr: fs::read_to_string(&err_path)?,
        })
    }

    /// What the container wrote to its stdout so far (after `create`).
    pub fn container_stdout(&self, id: &str) -> Result<String> {
        Ok(fs::read_to_string(self.path().join(format!("{id}.out")))?)
    }

    /// create + start, returning the container's PID.
    pub fn start(&self, id: &str) -> Result<String> {
        self.create(id)?.expect_code(0)?;
        self.rt(&["start", id])?.expect_code(0)?;
        self.pid(id)
    }

    pub fn state(&self, id: &str) -> Result<Value> {
        let out = self.rt(&["state", id])?;
        out.expect_code(0)?;
        Ok(serde_json::from_str(&out.stdout)?)
    }

    pub fn status(&self, id: &str) -> Result<String> {
        Ok(self.state(id)?["status"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    pub fn pid(&self, id: &str) -> Result<String> {
        Ok(self.state(id)?["pid"].to_string())
    }

    /// The ids with state left in the state root.
    pub fn leftovers(&self) -> Result<Vec<String>> {
        Ok(fs::read_dir(self.state.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.rt(&["delete", "--force", id]);
        }
        // What a runtime that failed half-way (a lab's, say) did not remove:
        // the cgroup is this bundle's own, and so is whatever is still in it.
        let _ = remove_cgroups_named(&self.cgroup_name());
    }
}
