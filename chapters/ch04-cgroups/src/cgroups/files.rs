//! The cgroup filesystem as the backends see it: read, write, mkdir, rmdir.
//!
//! Nearly everything a runtime does with cgroups is one of these four
//! operations on files under `/sys/fs/cgroup`; there is no cgroup system call.
//! (The exception is v2's device control, an eBPF program attached with
//! `bpf(2)`: the trait's one more method.) The backends
//! go through this small trait rather than `std::fs` so that [`Kernel`] can
//! narrate each request (`-v`), and so that the unit tests can swap in a fake
//! that records the *file plan*: which files a backend writes, with what, in
//! which order, on a layout this machine does not have.

use std::io::{self, Write};
use std::path::Path;

use ch01_uts::say;

use super::devices::{self, DeviceRule};

/// The four file operations a cgroup backend needs.
pub trait Files {
    /// Reads a whole cgroup file (they are small, and generated on each read).
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` to an existing cgroup file, in one `write(2)`.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    /// Creates a cgroup: the kernel fills the new directory with its files.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty cgroup (its files go with it; `rm -r` would fail on them).
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Whether a file exists (some exist only on some kernels or set-ups).
    fn exists(&self, path: &Path) -> bool;
    /// v2 only: attaches an eBPF program enforcing `rules` to the cgroup `dir`.
    fn limit_devices(&self, dir: &Path, rules: &[DeviceRule]) -> anyhow::Result<()>;
}

/// The real cgroup filesystem, narrating each change it asks of the kernel.
#[derive(Debug, Clone, Copy)]
pub struct Kernel;

/// The one [`Kernel`], for backends that hold a `&'static dyn Files`.
pub static KERNEL: Kernel = Kernel;

impl Files for Kernel {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        say!("write {} {value:?}", path.display());
        // No O_CREAT: a cgroup file that does not exist is an error (a missing
        // controller), never a new regular file.
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        // The kernel parses each write(2) on its own: one call, whole value.
        let written = file.write(value.as_bytes())?;
        if written != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write of {written} of {} bytes", value.len()),
            ));
        }
        Ok(())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        say!("mkdir {}", path.display());
        std::fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        say!("rmdir {}", path.display());
        std::fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn limit_devices(&self, dir: &Path, rules: &[DeviceRule]) -> anyhow::Result<()> {
        let program = devices::program(rules);
        say!(
            "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE, {} instructions for {} rules), \
             bpf(BPF_PROG_ATTACH, {}, BPF_CGROUP_DEVICE)",
            program.len(),
            rules.len(),
            dir.display()
        );
        devices::attach(dir, &program)
    }
}

#[cfg(test)]
pub mod fake {
    //! A pretend cgroup filesystem for the unit tests, with the kernel's rules
    //! that decide where a runtime may create cgroups:
    //!
    //! - v2: a cgroup's `cgroup.controllers` is its parent's
    //!   `cgroup.subtree_control` (the root's is given); enabling a controller
    //!   that is not available fails with `ENOENT`; enabling any in a non-root
    //!   cgroup that has processes fails with `EBUSY`; a controller's files
    //!   exist only where it is available.
    //! - v1: every directory of a hierarchy has that hierarchy's files.

    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::io;
    use std::path::{Path, PathBuf};

    use super::{DeviceRule, Files};

    /// Files a controller puts in each cgroup (only those the tests look at).
    const FILES: &[(&str, &[&str])] = &[
        ("", &["cgroup.procs"]),
        (
            "cpu",
            &[
                "cpu.max",
                "cpu.weight",
                "cpu.shares",
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "cpu.stat",
                "cpu.idle",
                "cpu.max.burst",
                "cpu.cfs_burst_us",
                "cpu.rt_period_us",
                "cpu.rt_runtime_us",
            ],
        ),
        ("cpuacct", &["cpuacct.usage"]),
        (
            "memory",
            &[
                "memory.max",
                "memory.swap.max",
                "memory.events",
                "memory.low",
                "memory.high",
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.oom_control",
                "memory.failcnt",
                "memory.soft_limit_in_bytes",
                "memory.swappiness",
                "memory.kmem.tcp.limit_in_bytes",
            ],
        ),
        ("pids", &["pids.max"]),
        ("freezer", &["freezer.state"]),
        (
            "devices",
            &["devices.allow", "devices.deny", "devices.list"],
        ),
        ("cpuset", &["cpuset.cpus", "cpuset.mems"]),
        ("io", &["io.max", "io.weight"]),
        (
            "blkio",
            &[
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_bps_device",
                "blkio.throttle.read_iops_device",
                "blkio.throttle.write_iops_device",
            ],
        ),
        (
            "hugetlb",
            &["hugetlb.2MB.max", "hugetlb.2MB.limit_in_bytes"],
        ),
        ("rdma", &["rdma.max"]),
        ("net_cls", &["net_cls.classid"]),
        ("net_prio", &["net_prio.ifpriomap"]),
    ];

    #[derive(Debug, Default)]
    pub struct Fake {
        /// The cgroup2 mount and the controllers its root offers.
        pub v2_root: Option<(PathBuf, Vec<String>)>,
        /// v1 hierarchies: mount point and its controllers.
        pub v1: Vec<(PathBuf, Vec<String>)>,
        /// Cgroups that have processes of their own.
        pub busy: BTreeSet<PathBuf>,
        /// Files that a test removed (e.g. `memory.swap.max` without swap accounting).
        pub missing: BTreeSet<String>,
        pub dirs: RefCell<BTreeSet<PathBuf>>,
        pub values: RefCell<BTreeMap<PathBuf, String>>,
        /// Every change, in order: `mkdir ...`, `write ... "value"`, `rmdir ...`.
        pub log: RefCell<Vec<String>>,
    }

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    impl Fake {
        /// A leaked fake: the backends hold a `&'static dyn Files`.
        pub fn leak(self) -> &'static Fake {
            for root in self
                .v1
                .iter()
                .map(|(p, _)| p)
                .chain(self.v2_root.iter().map(|(p, _)| p))
            {
                self.dirs.borrow_mut().insert(root.clone());
            }
            Box::leak(Box::new(self))
        }

        /// Adds an existing cgroup (and its parents) that the test did not create.
        pub fn with_dir(self, dir: &str) -> Self {
            let mut path = PathBuf::from(dir);
            loop {
                self.dirs.borrow_mut().insert(path.clone());
                if !path.pop() {
                    break;
                }
            }
            self
        }

        /// Sets a file's content, as systemd or an administrator would have.
        pub fn with_value(self, path: &str, value: &str) -> Self {
            self.values
                .borrow_mut()
                .insert(PathBuf::from(path), value.to_string());
            self
        }

        pub fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }

        fn v2_mount(&self, path: &Path) -> Option<&(PathBuf, Vec<String>)> {
            self.v2_root
                .as_ref()
                .filter(|(root, _)| path.starts_with(root))
        }

        /// The controllers available in a v2 cgroup (its `cgroup.controllers`).
        fn available(&self, dir: &Path) -> Vec<String> {
            match self.v2_mount(dir) {
                Some((root, controllers)) if dir == root => controllers.clone(),
                Some(_) => dir
                    .parent()
                    .map(|parent| self.subtree_control(parent))
                    .unwrap_or_default(),
                None => self
                    .v1
                    .iter()
                    .find(|(mount, _)| dir.starts_with(mount))
                    .map(|(_, c)| c.clone())
                    .unwrap_or_default(),
            }
        }

        fn subtree_control(&self, dir: &Path) -> Vec<String> {
            self.values
                .borrow()
                .get(&dir.join("cgroup.subtree_control"))
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        }

        fn file_exists(&self, path: &Path) -> bool {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return false;
            };
            let name = name.to_string_lossy();
            if !self.dirs.borrow().contains(dir) || self.missing.contains(name.as_ref()) {
                return false;
            }
            if self.v2_mount(dir).is_some()
                && matches!(
                    name.as_ref(),
                    "cgroup.controllers"
                        | "cgroup.subtree_control"
                        | "cgroup.kill"
                        | "cgroup.events"
                        | "cgroup.freeze"
                )
            {
                return true;
            }
            let available = self.available(dir);
            FILES.iter().any(|(controller, files)| {
                (controller.is_empty() || available.iter().any(|a| a == controller))
                    && files.contains(&name.as_ref())
            })
        }
    }

    impl Files for Fake {
        fn read(&self, path: &Path) -> io::Result<String> {
            if !self.file_exists(path) {
                return Err(errno(libc::ENOENT));
            }
            let dir = path.parent().unwrap_or(path);
            if path.ends_with("cgroup.controllers") {
                return Ok(self.available(dir).join(" ") + "\n");
            }
            Ok(self.values.borrow().get(path).cloned().unwrap_or_default())
        }

        fn write(&self, path: &Path, value: &str) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("write {} {value:?}", path.display()));
            if !self.file_exists(path) {
                return Err(errno(libc::ENOENT));
            }
            let dir = path.parent().unwrap_or(path);
            if path.ends_with("cgroup.subtree_control") {
                let available = self.available(dir);
                let mut enabled = self.subtree_control(dir);
                for word in value.split_whitespace() {
                    let controller = word.trim_start_matches('+');
                    if !available.iter().any(|a| a == controller) {
                        return Err(errno(libc::ENOENT));
                    }
                    let is_root = self.v2_mount(dir).is_some_and(|(root, _)| root == dir);
                    if self.busy.contains(dir) && !is_root {
                        return Err(errno(libc::EBUSY));
                    }
                    if !enabled.iter().any(|e| e == controller) {
                        enabled.push(controller.to_string());
                    }
                }
                self.values
                    .borrow_mut()
                    .insert(path.to_path_buf(), enabled.join(" "));
                return Ok(());
            }
            // v2: the group is frozen at once (no process needs to stop).
            if path.ends_with("cgroup.freeze") {
                self.values.borrow_mut().insert(
                    dir.join("cgroup.events"),
                    format!("populated 0\nfrozen {value}\n"),
                );
            }
            // A pretend process never stays: cgroup.procs reads empty, so
            // removal never sends a signal to a real PID.
            if !path.ends_with("cgroup.procs") {
                self.values
                    .borrow_mut()
                    .insert(path.to_path_buf(), value.to_string());
            }
            Ok(())
        }

        fn mkdir(&self, path: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("mkdir {}", path.display()));
            let parent_exists = path
                .parent()
                .is_some_and(|parent| self.dirs.borrow().contains(parent));
            if !parent_exists {
                return Err(errno(libc::ENOENT));
            }
            if !self.dirs.borrow_mut().insert(path.to_path_buf()) {
                return Err(errno(libc::EEXIST));
            }
            Ok(())
        }

        fn rmdir(&self, path: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("rmdir {}", path.display()));
            // A cgroup with child groups is busy.
            if self.dirs.borrow().iter().any(|d| d.parent() == Some(path)) {
                return Err(errno(libc::EBUSY));
            }
            if !self.dirs.borrow_mut().remove(path) {
                return Err(errno(libc::ENOENT));
            }
            self.values.borrow_mut().retain(|p, _| !p.starts_with(path));
            Ok(())
        }

        fn exists(&self, path: &Path) -> bool {
            self.file_exists(path)
        }

        fn limit_devices(&self, dir: &Path, rules: &[DeviceRule]) -> anyhow::Result<()> {
            self.log.borrow_mut().push(format!(
                "bpf attach {} BPF_CGROUP_DEVICE ({} rules)",
                dir.display(),
                rules.len()
            ));
            anyhow::ensure!(
                self.dirs.borrow().contains(dir),
                "no cgroup {}",
                dir.display()
            );
            Ok(())
        }
    }
}
