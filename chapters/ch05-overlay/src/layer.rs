//! Layer tars: an image layer is a tar archive of the files it adds or changes.
//!
//! The OCI image-layer format is a plain tar (often gzip-compressed), with two
//! conventions for what a layer takes away, because a tar cannot hold "nothing
//! here": a file named `.wh.NAME` means "`NAME` is deleted", and a file named
//! `.wh..wh..opq` inside a directory means "this directory is *opaque*: ignore
//! whatever lower layers have in it". overlayfs marks the same two facts
//! differently, with a 0/0 character device and the `trusted.overlay.opaque`
//! attribute (see [`crate::overlay`]). [`unpack`] converts from the tar form to
//! the overlayfs form while unpacking a layer; [`pack`] converts back when a
//! container's upper directory is saved as a new layer (`commit`).
//!
//! A layer's identity is the SHA-256 of its uncompressed tar (the OCI
//! `diff_id`): two images built from the same tar share one layer on disk.
//!
//! What it leaves out: hard links are archived as separate copies, extended
//! attributes and ACLs are not archived, timestamps of directories are not
//! restored after their contents are unpacked, and no layer is ever
//! re-compressed (`docker push` sends gzip-compressed layers named by the
//! digest of the compressed bytes).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use flate2::read::GzDecoder;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, mknod, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use sha2::{Digest, Sha256};
use tar::{Archive, Builder, EntryType, Header};

use crate::overlay;

/// The prefix of a whiteout file in a layer tar.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the opaque-directory marker in a layer tar.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What unpacking or packing a layer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `sha256:<hex>` of the uncompressed tar.
    pub digest: String,
    /// Entries unpacked or packed, markers included.
    pub entries: usize,
    /// Deleted paths (`.wh.NAME` in the tar, a 0/0 device on disk).
    pub whiteouts: usize,
    /// Opaque directories.
    pub opaque: usize,
    /// Paths left out of a packed layer (the init layer's files).
    pub skipped: usize,
}

/// A short form of a digest for messages: `sha256:0123456789ab`.
pub fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

impl std::fmt::Display for Summary {
    /// `layer sha256:0123456789ab: entries 6, whiteouts 1, opaque directories 0`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layer {}: entries {}, whiteouts {}, opaque directories {}",
            short(&self.digest),
            self.entries,
            self.whiteouts,
            self.opaque
        )
    }
}

/// Opens a layer tar, plain or gzip-compressed (recognised by its first two
/// bytes, `1f 8b`, as `tar` itself does).
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    let mut file =
        File::open(path).with_context(|| format!("failed to open layer tar {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file
        .read(&mut magic)
        .with_context(|| format!("failed to read layer tar {}", path.display()))?;
    if n == 0 {
        bail!("{} is empty, not a layer tar", path.display());
    }
    let head = io::Cursor::new(magic[..n].to_vec());
    let reader = BufReader::new(head.chain(file));
    if magic == [0x1f, 0x8b] {
        Ok(Box::new(GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// A reader that hashes what passes through it and keeps a copy.
struct HashReader<R, W> {
    inner: R,
    hash: Sha256,
    copy: W,
}

impl<R: Read, W: Write> Read for HashReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// `sha256:<hex>` for a finished hash.
fn digest_of(hash: Sha256) -> String {
    let bytes = hash.finalize();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

// ANCHOR: unpack
/// Unpacks the layer tar read from `tar` into the empty directory `dir`,
/// converting OCI whiteouts to overlayfs whiteouts, and writes the
/// uncompressed tar to `copy`. Ownership, permissions and times are kept.
pub fn unpack(tar: impl Read, dir: &Path, copy: impl Write) -> Result<Summary> {
    // LAB:BEGIN unpack: unpack a layer tar, turning OCI whiteouts into overlayfs ones, and sum it up with its digest; see the OCI image spec's layers, overlayfs docs, tar(5)
    let mut tee = HashReader {
        inner: tar,
        hash: Sha256::new(),
        copy,
    };
    let mut summary = Summary::default();
    {
        let mut archive = Archive::new(&mut tee);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_unpack_xattrs(false);
        let entries = archive.entries().context("failed to read the layer tar")?;
        for entry in entries {
            let mut entry = entry.context("the layer tar is corrupt")?;
            let rel = relative(&entry.path().context("a tar entry has a bad path")?)?;
            summary.entries += 1;
            let name = rel.file_name().map(|n| n.to_string_lossy().into_owned());
            let parent = rel.parent().unwrap_or(Path::new(""));
            match name.as_deref() {
                Some(OPAQUE_MARKER) => {
                    // Checks and creates the marker's whole directory, beneath the layer.
                    inside(dir, &rel)?;
                    overlay::set_opaque(&dir.join(parent))?;
                    summary.opaque += 1;
                }
                // Other `.wh..wh.` names are aufs's bookkeeping; they hide nothing.
                Some(name) if name.starts_with(".wh..wh.") => {}
                Some(name) if name.starts_with(WHITEOUT_PREFIX) => {
                    let hidden = &name[WHITEOUT_PREFIX.len()..];
                    if hidden.is_empty() || hidden == "." || hidden == ".." {
                        bail!(
                            "the layer tar holds a whiteout of nothing: {}",
                            rel.display()
                        );
                    }
                    let target = inside(dir, &parent.join(hidden))?;
                    remove_any(&target)?;
                    overlay::make_whiteout(&target)?;
                    summary.whiteouts += 1;
                }
                _ => unpack_entry(&mut entry, dir, &rel)?,
            }
        }
    }
    // The tar format ends with zero blocks the reader may not have consumed.
    io::copy(&mut tee, &mut io::sink()).context("failed to read the end of the layer tar")?;
    summary.digest = digest_of(tee.hash);
    Ok(summary)
    // LAB:END
}
// ANCHOR_END: unpack

/// Unpacks one ordinary entry. The `tar` crate writes device nodes and FIFOs
/// as plain files, so those are made here with `mknod(2)`.
fn unpack_entry<R: Read>(entry: &mut tar::Entry<R>, dir: &Path, rel: &Path) -> Result<()> {
    let header = entry.header();
    let kind = header.entry_type();
    let path = || dir.join(rel);
    if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
        let major = header.device_major().ok().flatten().unwrap_or(0);
        let minor = header.device_minor().ok().flatten().unwrap_or(0);
        if kind == EntryType::Char && major == 0 && minor == 0 {
            bail!(
                "the layer tar holds a 0/0 character device at {}: that is overlayfs's \
                 whiteout, which layer tars write as {WHITEOUT_PREFIX}NAME",
                rel.display()
            );
        }
        // A device node is a door to the host's hardware (1:1 is /dev/mem, a
        // block device a disk) for whoever opens it, in or out of a container.
        if kind != EntryType::Fifo {
            bail!(
                "the layer tar holds a device node at {} ({} {major}:{minor}): refused, a layer \
                 must not bring devices (the runtime makes /dev)",
                rel.display(),
                if kind == EntryType::Char {
                    "character"
                } else {
                    "block"
                }
            );
        }
        let target = inside(dir, rel)?;
        remove_any(&target)?;
        let flag = match kind {
            EntryType::Char => SFlag::S_IFCHR,
            EntryType::Block => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o600));
        let dev = libc::makedev(major, minor);
        mknod(&target, flag, mode, dev)
            .with_context(|| format!("failed to make device node {}", target.display()))?;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        fchownat(
            nix::fcntl::AT_FDCWD,
            &target,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("failed to set the owner of {}", target.display()))?;
        return Ok(());
    }
    let unpacked = entry
        .unpack_in(dir)
        .with_context(|| format!("failed to unpack {} from the layer tar", rel.display()))?;
    if !unpacked {
        bail!(
            "the layer tar tries to write outside the layer: {}",
            path().display()
        );
    }
    Ok(())
}

/// A tar entry's path as a plain relative path; `..` is refused.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut rel = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => rel.push(name),
            Component::CurDir | Component::RootDir => {}
            _ => bail!(
                "the layer tar holds a path that leaves the layer: {}",
                path.display()
            ),
        }
    }
    Ok(rel)
}

// ANCHOR: inside
/// `dir/rel`, once `rel`'s parent directories are known to lie inside `dir`
/// (a layer from a registry is a stranger's: an earlier entry may have made
/// `link -> /etc`, and `link/.wh.passwd` must not delete the host's file).
/// The parents are walked one name at a time from a descriptor of `dir`:
/// `mkdirat(2)` makes a missing one (it never follows a symlink), and
/// `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` opens it, and
/// fails on a symlink instead of following it. So nothing is created outside
/// the layer, not even for a moment before a refusal.
fn inside(dir: &Path, rel: &Path) -> Result<PathBuf> {
    let refuse = || {
        anyhow::anyhow!(
            "the layer tar puts {} beneath a symlink, which could lead outside the layer: refused",
            rel.display()
        )
    };
    let open_dir = |at: &OwnedFd, name: &Path| {
        let how = OpenHow::new()
            .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        openat2(at, name, how)
    };
    let mut at = nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("failed to open {}", dir.display()))?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        let Component::Normal(name) = part else {
            return Err(refuse());
        };
        let name = Path::new(name);
        match mkdirat(&at, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => {
                return Err(errno)
                    .with_context(|| format!("failed to create {}", dir.join(parent).display()))
            }
        }
        at = match open_dir(&at, name) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR) => return Err(refuse()),
            Err(errno) => {
                return Err(errno)
                    .with_context(|| format!("failed to open {}", dir.join(parent).display()))
            }
        };
    }
    Ok(dir.join(rel))
}
// ANCHOR_END: inside

/// Removes whatever is at `path`, if anything.
fn remove_any(path: &Path) -> Result<()> {
    match path.symlink_metadata() {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return Ok(()),
    }
    .with_context(|| format!("failed to remove {}", path.display()))
}

// ANCHOR: pack
/// Writes the directory `dir` (an overlayfs upper layer) to `out` as a layer
/// tar, converting overlayfs whiteouts and opaque directories to their tar
/// form. Paths in `skip` (relative, like `etc/hosts`) are left out.
pub fn pack(dir: &Path, out: impl Write, skip: &BTreeSet<PathBuf>) -> Result<Summary> {
    let mut builder = Builder::new(HashWriter {
        inner: out,
        hash: Sha256::new(),
    });
    builder.follow_symlinks(false);
    let mut summary = Summary::default();
    pack_dir(&mut builder, dir, Path::new(""), skip, &mut summary)?;
    let mut writer = builder
        .into_inner()
        .context("failed to finish the layer tar")?;
    writer.flush().context("failed to write the layer tar")?;
    summary.digest = digest_of(writer.hash);
    Ok(summary)
}
// ANCHOR_END: pack

/// A writer that hashes what passes through it.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Packs the entries of `root/rel` in name order (so the same tree always
/// gives the same order).
fn pack_dir<W: Write>(
    builder: &mut Builder<W>,
    root: &Path,
    rel: &Path,
    skip: &BTreeSet<PathBuf>,
    summary: &mut Summary,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .with_context(|| format!("failed to read {}", dir.display()))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        if skip.contains(&rel) {
            summary.skipped += 1;
            continue;
        }
        let meta = path
            .symlink_metadata()
            .with_context(|| format!("failed to stat {}", path.display()))?;
        overlay::check_exportable(&path)?;
        let kind = meta.file_type();
        if overlay::is_whiteout(&meta) {
            let marker = rel.with_file_name(format!("{WHITEOUT_PREFIX}{}", name.to_string_lossy()));
            say!(
                "{} is a whiteout: archive it as {}",
                rel.display(),
                marker.display()
            );
            append_empty(builder, &marker, &meta)?;
            summary.whiteouts += 1;
        } else if kind.is_dir() {
            append_path(builder, &path, &rel)?;
            if overlay::is_opaque(&path)? {
                let marker = rel.join(OPAQUE_MARKER);
                say!("{} is opaque: archive {}", rel.display(), marker.display());
                append_empty(builder, &marker, &meta)?;
                summary.opaque += 1;
                summary.entries += 1;
            }
            summary.entries += 1;
            pack_dir(builder, root, &rel, skip, summary)?;
            continue;
        } else if kind.is_char_device() || kind.is_block_device() {
            bail!(
                "{} is a device node, which a layer must not carry (unpack refuses it): \
                 remove it in the container and commit again",
                rel.display()
            );
        } else if kind.is_fifo() {
            append_device(builder, &rel, &meta)?;
        } else if kind.is_socket() {
            // A socket is a live endpoint of a running program: nothing to save.
            say!("{} is a socket: left out", rel.display());
            continue;
        } else {
            append_path(builder, &path, &rel)?;
        }
        summary.entries += 1;
    }
    Ok(())
}

fn append_path<W: Write>(builder: &mut Builder<W>, path: &Path, rel: &Path) -> Result<()> {
    builder
        .append_path_with_name(path, rel)
        .with_context(|| format!("failed to archive {}", path.display()))
}

/// An empty regular file: the tar form of a whiteout or an opaque marker.
fn append_empty<W: Write>(builder: &mut Builder<W>, rel: &Path, meta: &fs::Metadata) -> Result<()> {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(meta.mtime().max(0) as u64);
    builder
        .append_data(&mut header, rel, io::empty())
        .with_context(|| format!("failed to archive {}", rel.display()))
}

/// A FIFO (or a device node, with its numbers; `pack_dir` refuses those): the
/// `tar` crate's own `append_path` would archive it under its full path
/// rather than `rel`.
fn append_device<W: Write>(
    builder: &mut Builder<W>,
    rel: &Path,
    meta: &fs::Metadata,
) -> Result<()> {
    let kind = meta.file_type();
    let mut header = Header::new_gnu();
    header.set_metadata(meta);
    header.set_entry_type(if kind.is_char_device() {
        EntryType::Char
    } else if kind.is_block_device() {
        EntryType::Block
    } else {
        EntryType::Fifo
    });
    header.set_size(0);
    let rdev = meta.rdev();
    header
        .set_device_major(libc::major(rdev))
        .and_then(|()| header.set_device_minor(libc::minor(rdev)))
        .with_context(|| format!("failed to archive device {}", rel.display()))?;
    builder
        .append_data(&mut header, rel, io::empty())
        .with_context(|| format!("failed to archive {}", rel.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_layer_are_refused() {
        assert!(relative(Path::new("../etc/passwd")).is_err());
        assert!(relative(Path::new("a/../../b")).is_err());
        assert_eq!(
            relative(Path::new("./etc/motd")).ok(),
            Some(PathBuf::from("etc/motd"))
        );
        assert_eq!(
            relative(Path::new("/etc/motd")).ok(),
            Some(PathBuf::from("etc/motd"))
        );
    }

    #[test]
    fn summaries_name_the_layer_by_a_short_digest() {
        let summary = Summary {
            digest: format!("sha256:{}", "ab".repeat(32)),
            entries: 6,
            whiteouts: 1,
            ..Summary::default()
        };
        assert_eq!(
            summary.to_string(),
            "layer sha256:abababababab: entries 6, whiteouts 1, opaque directories 0"
        );
    }

    #[test]
    fn an_empty_file_is_not_a_layer() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("empty.tar");
        fs::write(&path, "")?;
        let err = open(&path).err().context("expected an error")?;
        assert!(err.to_string().contains("is empty"), "{err}");
        Ok(())
    }

    #[test]
    fn garbage_is_a_clear_error() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("layer");
        fs::create_dir(&dir)?;
        let garbage = vec![b'x'; 2048];
        let err = unpack(&garbage[..], &dir, io::sink())
            .err()
            .context("garbage was unpacked")?;
        assert!(format!("{err:#}").contains("corrupt"), "{err:#}");
        Ok(())
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_uncompressed_tar() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("etc"))?;
        fs::write(src.join("etc/motd"), "hello\n")?;
        let mut bytes = Vec::new();
        let packed = pack(&src, &mut bytes, &BTreeSet::new())?;
        let mut hash = Sha256::new();
        hash.update(&bytes);
        assert_eq!(packed.digest, digest_of(hash));
        assert_eq!(packed.entries, 2);

        // Gzip it, unpack it: same digest, same files.
        let gz = tmp.path().join("layer.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz)?, Default::default());
        enc.write_all(&bytes)?;
        enc.finish()?;
        let dst = tmp.path().join("dst");
        fs::create_dir(&dst)?;
        let mut copy = Vec::new();
        let unpacked = unpack(open(&gz)?, &dst, &mut copy)?;
        assert_eq!(unpacked.digest, packed.digest);
        assert_eq!(copy, bytes);
        assert_eq!(fs::read_to_string(dst.join("etc/motd"))?, "hello\n");
        Ok(())
    }

    #[test]
    fn skipped_paths_stay_out() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        fs::create_dir_all(tmp.path().join("etc"))?;
        fs::write(tmp.path().join("etc/hosts"), "x")?;
        fs::write(tmp.path().join("etc/motd"), "y")?;
        let mut bytes = Vec::new();
        let skip = BTreeSet::from([PathBuf::from("etc/hosts")]);
        let summary = pack(tmp.path(), &mut bytes, &skip)?;
        assert_eq!(summary.skipped, 1);
        let mut names = Vec::new();
        for entry in Archive::new(&bytes[..]).entries()? {
            names.push(entry?.path()?.display().to_string());
        }
        assert_eq!(names, vec!["etc", "etc/motd"]);
        Ok(())
    }
}
