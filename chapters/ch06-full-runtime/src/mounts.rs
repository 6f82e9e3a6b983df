//! `mounts`, `rootfsPropagation`, `readonly`, `maskedPaths`, `readonlyPaths`:
//! the container's file tree as config.json describes it.
//!
//! Chapter 3 mounted a fixed `/proc`, `/dev` and `/sys`. An OCI config lists
//! the mounts instead, in order, each with a type, a source and options in
//! `mount(8)` syntax (`nosuid`, `ro`, `rbind`, `mode=755`...). This module
//! turns the options into `mount(2)` flags and data, performs the mounts
//! beneath the rootfs before `pivot_root` (a bind mount's source is a host
//! path, which is only reachable before), and after the pivot hides what a
//! container must not see:
//!
//! - `maskedPaths` (`/proc/kcore`, `/proc/keys`, `/sys/firmware`...): a file is
//!   covered by a bind mount of `/dev/null`, a directory by an empty read-only
//!   tmpfs. Reading them gives nothing.
//! - `readonlyPaths` (`/proc/sys`, `/proc/sysrq-trigger`...): bind-mounted onto
//!   themselves, then remounted read-only, so the host's kernel settings cannot
//!   be written through `/proc`.
//! - `root.readonly`: the rootfs mount itself is remounted read-only.
//!
//! Why it matters: every container shares the host's kernel, and `/proc` and
//! `/sys` are windows into that kernel. Masking them is one of the layers that
//! make up for what a VM's own kernel would give.
//!
//! In a user namespace the container's root is a mapped user (host uid
//! 100000, say), and a bind source in a directory only the host's root may
//! enter (a bundle is often mode 0700) is out of its reach. So, as runc
//! does, the runtime opens such sources itself, through the child's root
//! (`/proc/<pid>/root/...`, in the child's mount namespace), and passes the
//! descriptors over a socket; the child mounts `/proc/self/fd/N`.
//!
//! What it leaves out: runc's defence against symlinks in the rootfs that point
//! a mount destination outside it (`securejoin`); here destinations with `..`
//! are refused, and symlinks are trusted.

use std::fs;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use ch04_cgroups::cgroups::Placement;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{Mount, Spec};

/// What `options` of one mount mean to `mount(2)`.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    /// Flags to apply with a second, remounting call (bind mounts ignore
    /// flags such as `MS_RDONLY` on the first call).
    pub propagation: MsFlags,
    pub data: Vec<String>,
}

/// Parses `mount(8)` options into flags, propagation and filesystem data.
pub fn parse_options(options: &[String]) -> Options {
    let mut parsed = Options {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: Vec::new(),
    };
    for option in options {
        let (set, clear) = match option.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                parsed.propagation |= propagation(option).unwrap_or(MsFlags::empty());
                continue;
            }
            _ => {
                parsed.data.push(option.clone());
                continue;
            }
        };
        parsed.flags.insert(set);
        parsed.flags.remove(clear);
    }
    parsed
}

/// `MS_NOSUID|MS_NODEV`: flags as the C call spells them (`0` for none).
pub fn c_flags(flags: MsFlags) -> String {
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// A propagation option as `mount(2)` flags: `rshared` is
/// `MS_SHARED|MS_REC`, `private` is `MS_PRIVATE`; anything else is `None`.
pub fn propagation(name: &str) -> Option<MsFlags> {
    let (base, rec) = match name.strip_prefix('r') {
        Some(rest) if rest != "o" && rest != "w" && rest != "bind" => (rest, true),
        _ => (name, false),
    };
    let flag = match base {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if rec { flag | MsFlags::MS_REC } else { flag })
}

/// `rootfs` joined with an absolute destination, refusing `..`.
pub fn inside(rootfs: &Path, destination: &Path) -> Result<PathBuf> {
    if !destination.is_absolute()
        || destination
            .components()
            .any(|c| matches!(c, Component::ParentDir))
    {
        bail!(
            "config.json: mount destination {} must be an absolute path without `..`",
            destination.display()
        );
    }
    Ok(rootfs.join(destination.strip_prefix("/").unwrap_or(destination)))
}

/// The config's `mounts`, in order (none when it has no `mounts`): entry
/// `i` here is the `i` that [`send_sources`] and [`receive_sources`] pass.
pub fn mounts_of(spec: &Spec) -> &[Mount] {
    spec.mounts().as_deref().unwrap_or_default()
}

/// Performs the config's mounts beneath `rootfs`, in order. A `cgroup`
/// mount shows the container's own cgroup (`cgroup`, see [`crate::cgroups`]).
pub fn mount_all(
    spec: &Spec,
    rootfs: &Path,
    cgroup: Option<&Placement>,
    sources: &[Option<OwnedFd>],
) -> Result<()> {
    for (i, m) in mounts_of(spec).iter().enumerate() {
        let opened = sources.get(i).and_then(Option::as_ref);
        mount_one(m, rootfs, cgroup, opened).with_context(|| {
            format!(
                "config.json: mounts: failed to mount {}",
                m.destination().display()
            )
        })?;
    }
    Ok(())
}

fn mount_one(
    m: &Mount,
    rootfs: &Path,
    cgroup: Option<&Placement>,
    opened: Option<&OwnedFd>,
) -> Result<()> {
    let options = parse_options(m.options().as_deref().unwrap_or_default());
    let target = inside(rootfs, m.destination())?;
    let typ = m.typ().as_deref().unwrap_or("none");
    let bind = options.flags.contains(MsFlags::MS_BIND) || typ == "bind";
    // Sources of bind mounts are host paths (relative ones: to the bundle,
    // which is the runtime's working directory).
    let source = match opened {
        // Opened by the runtime: the magic link needs no search permission
        // on the directories of the host path.
        Some(fd) if bind => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        _ => m.source().clone().unwrap_or_else(|| PathBuf::from(typ)),
    };
    if bind && !source.exists() {
        bail!("bind source {} does not exist", source.display());
    }
    // A file (or a device node) is bind-mounted onto a file, a directory onto one.
    make_mountpoint(&target, bind && !source.is_dir())?;
    if typ == "cgroup" {
        return crate::cgroups::mount_in_container(&target, options.flags, cgroup);
    }
    let data = options.data.join(",");
    let flags = if bind {
        MsFlags::MS_BIND | (options.flags & MsFlags::MS_REC)
    } else {
        options.flags
    };
    let c_type = if bind {
        "NULL".into()
    } else {
        format!("{typ:?}")
    };
    let c_data = if data.is_empty() {
        "NULL".into()
    } else {
        format!("{data:?}")
    };
    say!(
        "mount({source:?}, {target:?}, {c_type}, {}, {c_data})",
        c_flags(flags)
    );
    mount(
        Some(&source),
        &target,
        (!bind).then_some(typ),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    )?;
    // A bind mount takes flags such as MS_RDONLY only when remounted.
    let extra = options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if bind && !extra.is_empty() {
        remount(&target, extra)?;
    }
    if !options.propagation.is_empty() {
        say!(
            "mount(NULL, {target:?}, NULL, {}, NULL)",
            c_flags(options.propagation)
        );
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            options.propagation,
            None::<&str>,
        )?;
    }
    Ok(())
}

/// Whether a mount is a bind mount, and its source (relative to the bundle).
fn bind_source(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    let options = parse_options(m.options().as_deref().unwrap_or_default());
    let bind = options.flags.contains(MsFlags::MS_BIND) || m.typ().as_deref() == Some("bind");
    m.source().as_ref().filter(|_| bind).map(|s| bundle.join(s))
}

/// In the runtime, for a child in a user namespace: opens each bind source
/// through `/proc/<child>/root` (so that the descriptor belongs to the
/// child's mount namespace, where it may be mounted) and sends it, with the
/// mount's index, over `socket`.
pub fn send_sources(socket: &OwnedFd, child: Pid, spec: &Spec, bundle: &Path) -> Result<()> {
    for (i, m) in mounts_of(spec).iter().enumerate() {
        let Some(source) = bind_source(m, bundle) else {
            continue;
        };
        let path = Path::new(&format!("/proc/{child}/root")).join(source.strip_prefix("/")?);
        say!("open({path:?}, O_PATH|O_CLOEXEC); sendmsg(SCM_RIGHTS) -> child");
        let fd =
            open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).with_context(|| {
                format!(
                    "config.json: mounts: bind source {} is missing",
                    source.display()
                )
            })?;
        let index = (i as u32).to_le_bytes();
        sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(&index)],
            &[ControlMessage::ScmRights(&[fd.as_raw_fd()])],
            MsgFlags::empty(),
            None,
        )
        .context("failed to pass a bind source to the container process")?;
    }
    Ok(())
}

/// In the child: receives what [`send_sources`] sent, one descriptor per
/// bind mount; entry `i` is mount `i`'s source. (Counted, not read to the
/// end: the child holds a copy of the runtime's end of the socket too.)
pub fn receive_sources(socket: &OwnedFd, spec: &Spec) -> Result<Vec<Option<OwnedFd>>> {
    let mounts = mounts_of(spec);
    let expected = mounts
        .iter()
        .filter(|m| bind_source(m, Path::new("/")).is_some())
        .count();
    let mut sources: Vec<Option<OwnedFd>> = (0..mounts.len()).map(|_| None).collect();
    for _ in 0..expected {
        let mut index = [0u8; 4];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut index)];
        let msg = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("failed to receive the bind sources")?;
        if msg.bytes != 4 {
            bail!("the runtime closed the bind sources socket early");
        }
        let mut fd = None;
        for cmsg in msg.cmsgs().context("bad control message")? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                // SAFETY: the kernel just installed these descriptors for us.
                fd = fds.first().map(|&raw| unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        let i = u32::from_le_bytes(index) as usize;
        if let Some(slot) = sources.get_mut(i) {
            *slot = fd;
        }
    }
    Ok(sources)
}

fn make_mountpoint(target: &Path, file: bool) -> Result<()> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    if file {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::File::create(target)?;
    } else {
        fs::create_dir_all(target)?;
    }
    Ok(())
}

/// `mount(NULL, target, NULL, MS_REMOUNT|MS_BIND|flags)`, keeping the flags
/// the kernel locked on the mount (a bind mount may not lose `nosuid` &c.).
pub(crate) fn remount(target: &Path, flags: MsFlags) -> Result<()> {
    let locked = current_flags(target)?;
    let all = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags | locked;
    say!("mount(NULL, {target:?}, NULL, {}, NULL)", c_flags(all));
    mount(None::<&str>, target, None::<&str>, all, None::<&str>)
        .with_context(|| format!("failed to remount {}", target.display()))
}

/// Bind-mounts `source` on `target`; then applies `flags` (such as
/// `MS_RDONLY`), which a bind mount takes only with a remount.
pub(crate) fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    say!("mount({source:?}, {target:?}, NULL, MS_BIND)");
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| {
        format!(
            "failed to bind-mount {} on {}",
            source.display(),
            target.display()
        )
    })?;
    if !flags.is_empty() {
        remount(target, flags)?;
    }
    Ok(())
}

/// The flags of the mount at `path` that a remount must keep (`statvfs(3)`).
fn current_flags(path: &Path) -> Result<MsFlags> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(path).with_context(|| format!("failed to statvfs {}", path.display()))?;
    let f = st.flags();
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            flags |= ms;
        }
    }
    Ok(flags)
}

// ANCHOR: harden
/// After `pivot_root`: root propagation, masked and read-only paths, and a
/// read-only root.
pub fn harden(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    if let Some(name) = linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        let flags = propagation(name).with_context(|| {
            format!("config.json: linux.rootfsPropagation {name:?} is not a propagation type")
        })?;
        say!("mount(NULL, \"/\", NULL, {}, NULL)", c_flags(flags));
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .context("failed to set the propagation of /")?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        readonly(Path::new(&path))?;
    }
    for path in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        mask(Path::new(&path))?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount(Path::new("/"), MsFlags::MS_RDONLY).context("failed to make / read-only")?;
    }
    Ok(())
}

/// Bind-mounts `path` onto itself read-only; a path that does not exist is skipped.
fn readonly(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    ch03_mount_chroot::rootfs::bind_to_itself(path)?;
    remount(path, MsFlags::MS_RDONLY | MsFlags::MS_REC)
}

/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory.
fn mask(path: &Path) -> Result<()> {
    let Ok(meta) = path.metadata() else {
        return Ok(());
    };
    if meta.is_dir() {
        say!("mount(\"tmpfs\", {path:?}, \"tmpfs\", MS_RDONLY)");
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        say!("mount(\"/dev/null\", {path:?}, NULL, MS_BIND)");
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
    .with_context(|| format!("failed to mask {}", path.display()))
}
// ANCHOR_END: harden

/// Makes a directory's permissions what a mount point for `/dev` needs.
pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("failed to chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Options {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_become_flags_and_data() {
        let o = opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        let o = opts(&["rbind", "ro", "rprivate"]);
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY
        );
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(opts(&["ro", "rw"]).flags, MsFlags::empty());
    }

    #[test]
    fn flags_in_c_form() {
        assert_eq!(
            c_flags(MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME),
            "MS_NOSUID|MS_STRICTATIME"
        );
        assert_eq!(c_flags(MsFlags::empty()), "0");
    }

    #[test]
    fn propagation_names() {
        assert_eq!(propagation("slave"), Some(MsFlags::MS_SLAVE));
        assert_eq!(
            propagation("rshared"),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        assert_eq!(propagation("ro"), None);
    }

    #[test]
    fn destinations_stay_inside() {
        let root = Path::new("/r");
        assert_eq!(
            inside(root, Path::new("/proc")).unwrap(),
            Path::new("/r/proc")
        );
        assert!(inside(root, Path::new("/../etc")).is_err());
        assert!(inside(root, Path::new("proc")).is_err());
    }
}
