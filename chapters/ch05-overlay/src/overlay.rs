//! overlayfs: many directories seen as one, and the marks that hide files.
//!
//! An overlay mount stacks read-only *lower* directories under one writable
//! *upper* directory and shows their union at the mount point (the *merged*
//! directory). A lookup walks the stack from the top: the first layer that has
//! the name wins. Writing a file that only a lower layer has first copies it up
//! into the upper directory (*copy-up*), so lower layers are never changed and
//! many containers can share them. The kernel also needs an empty *work*
//! directory on the upper directory's filesystem, where it prepares copy-ups
//! before moving them into place atomically. See the kernel's
//! `Documentation/filesystems/overlayfs.rst`.
//!
//! Deleting a name that a lower layer has cannot delete it there, so overlayfs
//! writes a *whiteout* into the upper layer instead: a character device with
//! device number 0/0, which hides the name below it. A directory that replaces a
//! lower directory of the same name carries the extended attribute
//! `trusted.overlay.opaque=y`: nothing below it shows through. This module
//! makes and reads those two marks, mounts the overlay, and answers "does a
//! path exist below this layer?" by the same rules the kernel uses.
//!
//! What it leaves out: the new mount API (`fsopen(2)`, `fsconfig(2)` with
//! `lowerdir+`, Linux 6.8), which lifts the one-page limit on the option string;
//! `index`, `metacopy`, `redirect_dir` and `xino` (this chapter assumes they are
//! off, the kernel's default, and refuses to export a layer that uses
//! redirects or metacopy); and rootless overlays (`userxattr`).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};

/// The extended attribute that makes an upper directory opaque.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Extended attributes overlayfs sets when `redirect_dir` or `metacopy` is on.
/// A layer holding them does not mean what its files say, so it is not exported.
pub const UNSUPPORTED_XATTRS: &[&str] = &["trusted.overlay.redirect", "trusted.overlay.metacopy"];

/// The kernel copies mount options into one page; longer strings fail.
const MAX_OPTIONS: usize = 4095;

// ANCHOR: overlay
/// The directories of one overlay mount.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Read-only layers, **top first**: the first one hides the ones after it.
    pub lower: Vec<PathBuf>,
    /// The writable layer: every change lands here.
    pub upper: PathBuf,
    /// overlayfs's scratch space, on the same filesystem as `upper`.
    pub work: PathBuf,
}

impl Overlay {
    /// The option string of `mount(2)`: `lowerdir=top:...:bottom,upperdir=...,workdir=...`.
    pub fn options(&self) -> Result<String> {
        // LAB:BEGIN options: the option string of an overlay mount, from its layers, refusing what the kernel would misread; see mount(2), the overlayfs docs
        if self.lower.is_empty() {
            bail!("an overlay needs at least one lower layer");
        }
        let all = self.lower.iter().chain([&self.upper, &self.work]);
        for dir in all {
            let text = dir
                .to_str()
                .with_context(|| format!("layer path {} is not valid UTF-8", dir.display()))?;
            // ':' separates lower layers and ',' separates options.
            if !dir.is_absolute() || text.contains([':', ',', '\\']) {
                bail!(
                    "layer path {text:?} must be absolute and free of ':', ',' and '\\': \
                     choose another --root"
                );
            }
        }
        let lower: Vec<String> = self.lower.iter().map(|d| d.display().to_string()).collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper.display(),
            self.work.display()
        );
        if options.len() > MAX_OPTIONS {
            bail!(
                "the overlay options are {} bytes long, more than the kernel's limit of \
                 {MAX_OPTIONS}: use a shorter --root or an image with fewer layers",
                options.len()
            );
        }
        Ok(options)
        // LAB:END
    }

    /// Mounts the overlay at `target` (an existing directory). The returned
    /// guard unmounts it when dropped, so an error after this point leaves
    /// nothing mounted.
    pub fn mount(&self, target: &Path) -> Result<Mounted> {
        // LAB:BEGIN mount: mount the overlay at target, narrated, and hand back what unmounts it; see mount(2)
        let options = self.options()?;
        say!("mount(\"overlay\", {target:?}, \"overlay\", \"{options}\")");
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .with_context(|| format!("failed to mount an overlay at {}", target.display()))?;
        Ok(Mounted {
            target: Some(target.to_path_buf()),
        })
        // LAB:END
    }
}
// ANCHOR_END: overlay

/// A mounted overlay; dropping it unmounts it (see [`Mounted::unmount`]).
#[derive(Debug)]
#[must_use = "dropping the guard unmounts the overlay at once"]
pub struct Mounted {
    target: Option<PathBuf>,
}

impl Mounted {
    /// The mount point.
    pub fn target(&self) -> &Path {
        self.target.as_deref().unwrap_or(Path::new(""))
    }

    /// Unmounts now and reports failure (dropping the guard also unmounts, but
    /// can only ignore errors).
    pub fn unmount(mut self) -> Result<()> {
        match self.target.take() {
            Some(target) => unmount(&target),
            None => Ok(()),
        }
    }

    /// Leaves the overlay mounted after the guard is gone (for a container that
    /// outlives this process, which `rm` then unmounts).
    pub fn keep(mut self) -> PathBuf {
        self.target.take().unwrap_or_default()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            let _ = unmount(&target);
        }
    }
}

/// Unmounts the overlay at `target`. When something still uses it (`EBUSY`),
/// detaches it instead: it disappears from the tree now and is freed when the
/// last user lets go.
pub fn unmount(target: &Path) -> Result<()> {
    say!("umount2({target:?}, 0)");
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => {
            say!("umount2({target:?}, MNT_DETACH) (it was busy)");
            umount2(target, MntFlags::MNT_DETACH)
                .with_context(|| format!("failed to detach the mount at {}", target.display()))
        }
        Err(errno) => Err(errno).with_context(|| format!("failed to unmount {}", target.display())),
    }
}

/// Whether something is mounted at `target`, from `/proc/self/mountinfo`.
pub fn is_mounted(target: &Path) -> Result<bool> {
    let table = fs::read_to_string("/proc/self/mountinfo")
        .context("failed to read /proc/self/mountinfo")?;
    let wanted = target.to_string_lossy();
    Ok(table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| unescape_mount_point(point) == wanted))
}

/// mountinfo writes a space as `\040`, a tab as `\011`, a newline as `\012`
/// and a backslash as `\134`.
fn unescape_mount_point(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

// ANCHOR: whiteout
/// Makes a whiteout at `path`: a character device 0/0, which hides `path`
/// in every layer below this one.
pub fn make_whiteout(path: &Path) -> Result<()> {
    // LAB:BEGIN make_whiteout: make what overlayfs reads as a deleted file, narrated; see mknod(2), the overlayfs docs
    say!("mknod({path:?}, S_IFCHR, makedev(0, 0)) (a whiteout)");
    mknod(path, SFlag::S_IFCHR, Mode::empty(), 0)
        .with_context(|| format!("failed to make a whiteout at {}", path.display()))
    // LAB:END
}

/// Whether a file is a whiteout.
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Marks `dir` opaque: nothing in lower layers shows through it.
pub fn set_opaque(dir: &Path) -> Result<()> {
    // LAB:BEGIN set_opaque: mark a directory so that nothing below shows through it, narrated; see setxattr(2), the overlayfs docs
    say!("setxattr({dir:?}, \"{OPAQUE_XATTR}\", \"y\")");
    xattr::set(dir, OPAQUE_XATTR, b"y")
        .with_context(|| format!("failed to mark {} opaque", dir.display()))
    // LAB:END
}

/// Whether `dir` is marked opaque.
pub fn is_opaque(dir: &Path) -> Result<bool> {
    let value = xattr::get(dir, OPAQUE_XATTR)
        .with_context(|| format!("failed to read {OPAQUE_XATTR} of {}", dir.display()))?;
    Ok(value.as_deref() == Some(b"y"))
}
// ANCHOR_END: whiteout

/// Fails if `path` carries an overlayfs attribute this chapter cannot export
/// (see [`UNSUPPORTED_XATTRS`]).
pub fn check_exportable(path: &Path) -> Result<()> {
    for name in UNSUPPORTED_XATTRS {
        let value = xattr::get(path, name)
            .with_context(|| format!("failed to read {name} of {}", path.display()))?;
        if value.is_some() {
            bail!(
                "{} carries {name}: the overlay was mounted with redirect_dir or metacopy, \
                 which this chapter does not export; turn them off (the kernel's default)",
                path.display()
            );
        }
    }
    Ok(())
}

// ANCHOR: lookup
/// Whether `rel` (a path relative to the layers' roots) exists in the stack
/// `layers`, top first, as the merged directory would show it.
///
/// The first layer that has the name decides: a whiteout there means "deleted".
/// A layer that does not have the name can still hide it, when one of the
/// path's parents is a whiteout, a file, or an opaque directory in that layer.
pub fn exists_in(layers: &[PathBuf], rel: &Path) -> bool {
    for layer in layers {
        if let Ok(meta) = layer.join(rel).symlink_metadata() {
            return !is_whiteout(&meta);
        }
        for parent in rel.ancestors().skip(1) {
            if parent.as_os_str().is_empty() {
                break;
            }
            let path = layer.join(parent);
            match path.symlink_metadata() {
                Ok(meta) if !meta.is_dir() => return false,
                Ok(_) if is_opaque(&path).unwrap_or(false) => return false,
                _ => {}
            }
        }
    }
    false
}
// ANCHOR_END: lookup

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(lower: &[&str]) -> Overlay {
        Overlay {
            lower: lower.iter().map(PathBuf::from).collect(),
            upper: "/s/c/upper".into(),
            work: "/s/c/work".into(),
        }
    }

    #[test]
    fn options_list_lower_layers_top_first() -> Result<()> {
        let options = overlay(&["/s/init", "/s/l2", "/s/l1"]).options()?;
        assert_eq!(
            options,
            "lowerdir=/s/init:/s/l2:/s/l1,upperdir=/s/c/upper,workdir=/s/c/work"
        );
        Ok(())
    }

    #[test]
    fn options_reject_what_the_kernel_would_misread() -> Result<()> {
        assert!(overlay(&[]).options().is_err());
        assert!(overlay(&["/a:b"]).options().is_err());
        assert!(overlay(&["/a,b"]).options().is_err());
        assert!(overlay(&["relative"]).options().is_err());
        let long = format!("/{}", "x".repeat(300));
        let many: Vec<&str> = std::iter::repeat_n(long.as_str(), 14).collect();
        let err = overlay(&many)
            .options()
            .err()
            .context("a too long option string was accepted")?;
        assert!(err.to_string().contains("limit"), "{err}");
        Ok(())
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point("/a\\040b"), "/a b");
        assert_eq!(unescape_mount_point("/plain"), "/plain");
    }

    #[test]
    fn lookup_follows_the_first_layer_that_decides() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let top = tmp.path().join("top");
        let bottom = tmp.path().join("bottom");
        fs::create_dir_all(bottom.join("etc/dir"))?;
        fs::write(bottom.join("etc/motd"), "hi")?;
        fs::write(bottom.join("etc/dir/inner"), "x")?;
        fs::write(bottom.join("etc/dir/other"), "x")?;
        fs::create_dir_all(top.join("etc"))?;
        // A regular file where a directory was hides everything under it.
        fs::write(top.join("etc/dir"), "now a file")?;
        let layers = vec![top.clone(), bottom.clone()];
        assert!(exists_in(&layers, Path::new("etc/motd")));
        assert!(exists_in(&layers, Path::new("etc/dir")));
        assert!(!exists_in(&layers, Path::new("etc/dir/inner")));
        assert!(!exists_in(&layers, Path::new("etc/nothing")));
        assert!(!exists_in(&[bottom], Path::new("etc/dir/missing")));
        Ok(())
    }
}
