//! Devices: the default set every container gets, plus `linux.devices`.
//!
//! Chapter 3 mounted a tmpfs on `/dev` and created six device nodes in it. An
//! OCI config usually mounts `/dev` itself (a tmpfs in its `mounts`) and may
//! list more devices, each with a type (`c`, `b`, `p`), numbers, a mode and an
//! owner. The runtime creates chapter 3's defaults and the listed ones in that
//! `/dev`, plus chapter 3's symlinks. Inside a user namespace `mknod(2)` is
//! not allowed, so there, as runc does, it bind-mounts the host's node onto an
//! empty file instead.
//!
//! Creating a node is not the same as being allowed to use it: which devices a
//! container may open is the device cgroup's decision (`linux.resources.devices`).

use std::os::unix::fs::symlink;
use std::path::Path;

use anyhow::{Context, Result};
use ch01_uts::say;
use ch03_mount_chroot::devices::{DEVICES, SYMLINKS};
use nix::mount::MsFlags;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use nix::unistd::{chown, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};

/// Whether the config mounts something on `/dev` itself.
pub fn config_mounts_dev(spec: &Spec) -> bool {
    crate::mounts::mounts_of(spec)
        .iter()
        .any(|m| m.destination() == Path::new("/dev"))
}

/// Creates the default devices, `linux.devices` and the `/dev` symlinks in
/// `<rootfs>/dev`. With `bind`, host nodes are bind-mounted (user namespace).
pub fn create_all(spec: &Spec, rootfs: &Path, bind: bool) -> Result<()> {
    let dev = rootfs.join("dev");
    for (name, major, minor) in DEVICES {
        let node = Node {
            path: dev.join(name),
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        };
        node.create(bind)?;
    }
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for device in &listed {
        Node::from_oci(device, rootfs)?.create(bind)?;
    }
    for (link, target) in SYMLINKS {
        let path = dev.join(link);
        if path.symlink_metadata().is_err() {
            say!("symlink({target:?}, {path:?})");
            symlink(target, &path)
                .with_context(|| format!("failed to create symlink {}", path.display()))?;
        }
    }
    Ok(())
}

struct Node {
    path: std::path::PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl Node {
    fn from_oci(device: &LinuxDevice, rootfs: &Path) -> Result<Node> {
        let kind = match device.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => anyhow::bail!(
                "config.json: linux.devices: {} has type \"a\", which only device cgroup rules may use",
                device.path().display()
            ),
        };
        Ok(Node {
            path: crate::mounts::inside(rootfs, device.path())?,
            kind,
            major: device.major() as u64,
            minor: device.minor() as u64,
            mode: device.file_mode().unwrap_or(0o666),
            uid: device.uid().unwrap_or(0),
            gid: device.gid().unwrap_or(0),
        })
    }

    /// The type as `mknod(2)` spells it, for the narration.
    fn kind_name(&self) -> &'static str {
        match self.kind {
            SFlag::S_IFBLK => "S_IFBLK",
            SFlag::S_IFIFO => "S_IFIFO",
            _ => "S_IFCHR",
        }
    }

    fn create(&self, bind: bool) -> Result<()> {
        let path = &self.path;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        if path.symlink_metadata().is_ok() {
            // An earlier entry or the rootfs itself has it already.
            std::fs::remove_file(path)
                .with_context(|| format!("failed to replace {}", path.display()))?;
        }
        if bind {
            // In a user namespace: an empty file with the host's node on it.
            let host = Path::new("/dev").join(path.file_name().context("device without a name")?);
            std::fs::File::create(path)
                .with_context(|| format!("failed to create {}", path.display()))?;
            return crate::mounts::bind(&host, path, MsFlags::empty());
        }
        say!(
            "mknod({path:?}, {}|{:04o}, makedev({}, {}))",
            self.kind_name(),
            self.mode & 0o7777,
            self.major,
            self.minor
        );
        mknod(
            path,
            self.kind,
            Mode::from_bits_truncate(self.mode),
            makedev(self.major, self.minor),
        )
        .with_context(|| format!("failed to create device {}", path.display()))?;
        // mknod(2) applies the umask; set the mode the config asked for.
        crate::mounts::chmod(path, self.mode & 0o7777)?;
        chown(
            path,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        )
        .with_context(|| format!("failed to chown {}", path.display()))
    }
}
