//! The store: images, layers and containers in one state directory.
//!
//! ```text
//! /var/lib/containers-from-scratch/ch05/    (--root DIR)
//! ├── images/NAME.json          {"name", "layers": [bottom, ..., top], "comment",
//! │                              "config" (OCI: Env, Cmd, ...), "source" (where pulled from)}
//! ├── layers/<sha256>/
//! │   ├── layer.tar             the uncompressed layer tar; its SHA-256 names the layer
//! │   └── diff/                 the same files unpacked, in overlayfs form
//! └── containers/ID/
//!     ├── container.json        image, layers, hostname, --add-host, command, pid, exit code
//!     ├── init/                 the init layer (etc/hosts, etc/hostname, etc/resolv.conf)
//!     ├── upper/                the read-write layer: everything the container changed
//!     ├── work/                 overlayfs's work directory
//!     └── merged/               where the overlay is mounted while the container runs
//! ```
//!
//! An image is only a name for a list of layers: two images can share layers,
//! and a layer is deleted when no image and no container uses it any more.
//! Every change to the store happens under an exclusive `flock(2)` on the file
//! `lock`, so two commands never race on it.
//!
//! What it leaves out: Docker keeps the image's whole configuration (history,
//! labels) and content-addresses the manifest too, and keeps the compressed
//! layers it pulled (here they are made again by `save` and `push`); containerd splits the store into a content store (the
//! tars) and a snapshotter (the unpacked directories), as the two files of a
//! layer directory here. `docker commit` also pauses a running container while
//! it reads the read-write layer; here a commit of a running container reads
//! it as it is at that moment.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ch01_uts::process;
use ch01_uts::say;
use ch01_uts::state::{validate_name, write_atomically};
use ch04_cgroups::cgroups::{Cgroup, Placement};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::init_layer::{self, HostEntry};
use crate::layer::{self, short, Summary};
use crate::overlay::{self, Overlay};

/// The state directory when `--root` is not given.
pub const DEFAULT_ROOT: &str = "/var/lib/containers-from-scratch/ch05";

/// An image: a name for an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub name: String,
    /// Layer digests (`sha256:<hex>`), **bottom first**, as in an OCI manifest.
    pub layers: Vec<String>,
    /// Where the image came from (`import base.tar`, `commit c1`).
    #[serde(default)]
    pub comment: String,
    /// What to run and how, from the OCI config (Env, Entrypoint, Cmd,
    /// WorkingDir, User); `run` uses it when no command is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<oci_spec::image::Config>,
    /// The repository it was pulled from (`127.0.0.1:5000/cfs/app`): a push
    /// to another repository of that registry can mount its layers from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A container's record in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub image: String,
    /// The image's layers when the container was created, bottom first.
    pub layers: Vec<String>,
    pub hostname: String,
    #[serde(default)]
    pub hosts: Vec<HostEntry>,
    pub command: Vec<String>,
    /// The container's first process (host PID) while it runs.
    #[serde(default)]
    pub pid: Option<i32>,
    /// That process's start time (`/proc/PID/stat`, field 22), so that a
    /// recycled PID is not taken for the container.
    #[serde(default)]
    pub start_time: Option<u64>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Where its cgroup is (chapter 4's [`Placement`]) while it may exist:
    /// `rm` removes it if the runtime could not (it was killed), through
    /// chapter 4, which first checks that it names a cgroup of this machine.
    #[serde(default)]
    pub cgroup: Option<Placement>,
}

/// What `ps` says about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, never started.
    Created,
    /// Its first process is alive.
    Running(i32),
    /// It ended with this exit code.
    Exited(i32),
    /// Its process is gone but no exit code was recorded: the runtime was killed.
    Stopped,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Created => write!(f, "created"),
            State::Running(pid) => write!(f, "running (pid {pid})"),
            State::Exited(code) => write!(f, "exited ({code})"),
            State::Stopped => write!(f, "stopped (the runtime was killed)"),
        }
    }
}

/// The directories of one container.
#[derive(Debug, Clone)]
pub struct ContainerDirs {
    pub dir: PathBuf,
    pub init: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
}

/// An open store (see the module documentation for its layout).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Holds the store's lock until dropped.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
}

/// The hex part of `sha256:<hex>`.
fn hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => Ok(hex),
        _ => bail!("{digest:?} is not a layer digest (sha256:<64 hex digits>)"),
    }
}

/// Writes `value` as JSON to `path` atomically (chapter 1's
/// [`write_atomically`]), so a reader never sees half a file.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).context("failed to encode JSON")?;
    write_atomically(path, (text + "\n").as_bytes())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
}

/// Reads the JSON file that `pick` chooses for each entry of `dir`.
fn read_all<T: for<'de> Deserialize<'de>>(
    dir: &Path,
    pick: impl Fn(PathBuf) -> Option<PathBuf>,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("failed to read {}", dir.display()))?;
        if let Some(path) = pick(entry.path()) {
            found.push(read_json(&path)?);
        }
    }
    Ok(found)
}

impl Store {
    /// Opens the store at `root`, creating its directories the first time.
    pub fn open(root: &Path) -> Result<Store> {
        if !root.exists() {
            fs::create_dir_all(root)
                .with_context(|| format!("failed to create the store {}", root.display()))?;
            // The layers hold files for any user in a container; the store is root's.
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("failed to set the mode of {}", root.display()))?;
        }
        for sub in ["images", "layers", "containers"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).with_context(|| {
                format!("failed to create the store directory {}", dir.display())
            })?;
        }
        // overlayfs wants absolute paths.
        let root = root
            .canonicalize()
            .with_context(|| format!("failed to resolve {}", root.display()))?;
        Ok(Store { root })
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store's lock, waiting for another command to finish.
    pub fn lock(&self) -> Result<Lock> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("failed to lock {}", path.display()))?;
        Ok(Lock { _flock: flock })
    }

    // ---- layers ----

    /// The directory of a layer: `layers/<hex>`.
    pub fn layer_dir(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(hex(digest)?))
    }

    /// The unpacked files of a layer, in overlayfs form: `layers/<hex>/diff`.
    pub fn layer_files(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.layer_dir(digest)?.join("diff"))
    }

    /// The layer's tar: `layers/<hex>/layer.tar`.
    pub fn layer_tar(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.layer_dir(digest)?.join("layer.tar"))
    }

    // ANCHOR: add_layer
    /// Unpacks a layer tar into the store and returns what it holds. The layer
    /// is unpacked into a temporary directory and renamed into place once its
    /// digest is known, and only if it is the `expected` one (the diff_id an
    /// image's config names); a layer the store already has is not stored
    /// twice. Call with the lock held.
    pub fn add_layer(&self, tar: impl Read, expected: Option<&str>) -> Result<Summary> {
        let layers = self.root.join("layers");
        let tmp = tempfile::Builder::new()
            .prefix(".unpacking-")
            .tempdir_in(&layers)
            .with_context(|| format!("failed to create a directory in {}", layers.display()))?;
        let files = tmp.path().join("diff");
        fs::create_dir(&files).with_context(|| format!("failed to create {}", files.display()))?;
        fs::set_permissions(&files, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("failed to set the mode of {}", files.display()))?;
        let copy_path = tmp.path().join("layer.tar");
        let copy = File::create(&copy_path)
            .with_context(|| format!("failed to create {}", copy_path.display()))?;
        let mut copy = BufWriter::new(copy);
        let summary = layer::unpack(tar, &files, &mut copy)?;
        copy.flush()
            .with_context(|| format!("failed to write {}", copy_path.display()))?;
        if let Some(expected) = expected.filter(|e| *e != summary.digest) {
            bail!(
                "layer {} unpacks to {}, not to {}: refused",
                short(expected),
                short(&summary.digest),
                short(expected)
            );
        }
        let dir = self.layer_dir(&summary.digest)?;
        if dir.exists() {
            say!("layer {} is already in the store", short(&summary.digest));
        } else {
            fs::rename(tmp.path(), &dir)
                .with_context(|| format!("failed to move the layer to {}", dir.display()))?;
            // Renamed away: there is nothing left for the guard to delete.
            let _ = tmp.keep();
        }
        Ok(summary)
    }
    // ANCHOR_END: add_layer

    /// Deletes every layer no image and no container uses. Call with the lock held.
    pub fn remove_unused_layers(&self) -> Result<Vec<String>> {
        let mut used = BTreeSet::new();
        for image in self.images()? {
            used.extend(image.layers);
        }
        for container in self.containers()? {
            used.extend(container.layers);
        }
        let layers = self.root.join("layers");
        let mut removed = Vec::new();
        let entries = fs::read_dir(&layers)
            .with_context(|| format!("failed to read {}", layers.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read {}", layers.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if hex(&digest).is_err() || used.contains(&digest) {
                continue;
            }
            say!("remove unused layer {}", short(&digest));
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("failed to remove {}", entry.path().display()))?;
            removed.push(digest);
        }
        Ok(removed)
    }

    // ---- images ----

    fn image_path(&self, name: &str) -> Result<PathBuf> {
        validate_name("image name", name)?;
        Ok(self.root.join("images").join(format!("{name}.json")))
    }

    // ANCHOR: import
    /// Creates image `name` from layer tars, bottom first. If a tar is
    /// unreadable, the image is not created and the layers unpacked so far
    /// are removed again.
    pub fn import(&self, name: &str, tars: &[PathBuf]) -> Result<(Image, Vec<Summary>)> {
        let path = self.image_path(name)?;
        if tars.is_empty() {
            bail!("an image needs at least one layer tar");
        }
        let _lock = self.lock()?;
        if path.exists() {
            bail!("image {name} exists: remove it with `rmi {name}` or choose another name");
        }
        let mut summaries = Vec::new();
        let mut unpack_all = || -> Result<()> {
            for tar in tars {
                say!("unpack layer tar {} into the store", tar.display());
                let summary = layer::open(tar)
                    .and_then(|reader| self.add_layer(reader, None))
                    .with_context(|| format!("failed to import layer tar {}", tar.display()))?;
                summaries.push(summary);
            }
            Ok(())
        };
        if let Err(err) = unpack_all() {
            self.remove_unused_layers()?;
            return Err(err);
        }
        let files: Vec<String> = tars
            .iter()
            .map(|t| {
                t.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let image = Image {
            name: name.to_string(),
            layers: summaries.iter().map(|s| s.digest.clone()).collect(),
            comment: format!("import {}", files.join(" ")),
            config: None,
            source: None,
        };
        write_json(&path, &image)?;
        Ok((image, summaries))
    }
    // ANCHOR_END: import

    /// Fails if image `name` exists (or is not a valid name). Call with the lock held.
    pub fn check_new_image(&self, name: &str) -> Result<()> {
        if self.image_path(name)?.exists() {
            bail!("image {name} exists: remove it with `rmi {name}` or choose another name");
        }
        Ok(())
    }

    /// Writes a new image's record. Call with the lock held, its layers stored.
    pub fn write_image(&self, image: &Image) -> Result<()> {
        self.check_new_image(&image.name)?;
        say!("write {}", self.image_path(&image.name)?.display());
        write_json(&self.image_path(&image.name)?, image)
    }

    /// The image called `name`.
    pub fn image(&self, name: &str) -> Result<Image> {
        let path = self.image_path(name)?;
        if !path.exists() {
            bail!("no image named {name}: list them with `images`, or `import` one");
        }
        read_json(&path)
    }

    /// All images, by name.
    pub fn images(&self) -> Result<Vec<Image>> {
        let mut images: Vec<Image> = read_all(&self.root.join("images"), |path| {
            path.extension()
                .is_some_and(|e| e == "json")
                .then_some(path)
        })?;
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Removes image `name` and the layers only it used. Refused while a
    /// container made from it exists.
    pub fn remove_image(&self, name: &str) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        let path = self.image_path(name)?;
        self.image(name)?;
        if let Some(c) = self.containers()?.into_iter().find(|c| c.image == name) {
            bail!(
                "image {name} is used by container {}: remove it first with `rm {}`",
                c.id,
                c.id
            );
        }
        say!("unlink {}", path.display());
        fs::remove_file(&path).with_context(|| format!("failed to remove {}", path.display()))?;
        self.remove_unused_layers()
    }

    /// The size on disk of an image's layers (their unpacked files), in bytes.
    pub fn image_size(&self, image: &Image) -> Result<u64> {
        let mut total = 0;
        for digest in &image.layers {
            total += du(&self.layer_files(digest)?)?;
        }
        Ok(total)
    }

    // ---- containers ----

    /// The directories of container `id`.
    pub fn dirs(&self, id: &str) -> ContainerDirs {
        let dir = self.root.join("containers").join(id);
        ContainerDirs {
            init: dir.join("init"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            dir,
        }
    }

    // ANCHOR: container_overlay
    /// The overlay of a container: its image's layers (top first) under its
    /// init layer, and its own upper and work directories.
    pub fn overlay(&self, container: &Container) -> Result<Overlay> {
        let dirs = self.dirs(&container.id);
        let mut lower = vec![dirs.init];
        for digest in container.layers.iter().rev() {
            let files = self.layer_files(digest)?;
            if !files.is_dir() {
                bail!(
                    "layer {} of image {} is missing from the store: import the image again",
                    short(digest),
                    container.image
                );
            }
            lower.push(files);
        }
        Ok(Overlay {
            lower,
            upper: dirs.upper,
            work: dirs.work,
        })
    }
    // ANCHOR_END: container_overlay

    /// The read-only layers under a container's upper layer, top first: what
    /// `diff` compares against.
    pub fn lower_layers(&self, container: &Container) -> Result<Vec<PathBuf>> {
        Ok(self.overlay(container)?.lower)
    }

    // ANCHOR: create
    /// Creates container `id` from `image`: its record, its init layer and
    /// empty upper, work and merged directories. Nothing is mounted yet.
    pub fn create_container(
        &self,
        id: &str,
        image: &str,
        hostname: &str,
        hosts: &[HostEntry],
        command: &[String],
    ) -> Result<Container> {
        validate_name("container id", id)?;
        let _lock = self.lock()?;
        let image = self.image(image)?;
        let dirs = self.dirs(id);
        match fs::create_dir(&dirs.dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container {id} exists: remove it with `rm {id}` or choose another --name")
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to create {}", dirs.dir.display()))
            }
        }
        let container = Container {
            id: id.to_string(),
            image: image.name.clone(),
            layers: image.layers.clone(),
            hostname: hostname.to_string(),
            hosts: hosts.to_vec(),
            command: command.to_vec(),
            pid: None,
            start_time: None,
            exit_code: None,
            cgroup: None,
        };
        let fill = || -> Result<()> {
            init_layer::write(&dirs.init, hostname, hosts, Path::new("/etc/resolv.conf"))?;
            for dir in [&dirs.upper, &dirs.work, &dirs.merged] {
                fs::create_dir(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
            }
            // The upper directory's root becomes the container's "/": keep it usual.
            fs::set_permissions(&dirs.upper, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("failed to set the mode of {}", dirs.upper.display()))?;
            self.save(&container)
        };
        if let Err(err) = fill() {
            let _ = fs::remove_dir_all(&dirs.dir);
            return Err(err);
        }
        Ok(container)
    }
    // ANCHOR_END: create

    /// Writes a container's record.
    pub fn save(&self, container: &Container) -> Result<()> {
        write_json(
            &self.dirs(&container.id).dir.join("container.json"),
            container,
        )
    }

    /// The container `id`.
    pub fn container(&self, id: &str) -> Result<Container> {
        validate_name("container id", id)?;
        let path = self.dirs(id).dir.join("container.json");
        if !path.exists() {
            bail!("no container {id}: list them with `ps`");
        }
        read_json(&path)
    }

    /// All containers, by ID.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut found: Vec<Container> = read_all(&self.root.join("containers"), |path| {
            let record = path.join("container.json");
            record.exists().then_some(record)
        })?;
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// What a container is doing now.
    pub fn state(&self, container: &Container) -> State {
        match (container.pid, container.exit_code) {
            (_, Some(code)) => State::Exited(code),
            (Some(pid), None)
                if container
                    .start_time
                    .is_some_and(|start| process::still_running(pid, start)) =>
            {
                State::Running(pid)
            }
            (Some(_), None) => State::Stopped,
            (None, None) => State::Created,
        }
    }

    /// Whether a container's overlay is mounted now.
    pub fn is_mounted(&self, id: &str) -> Result<bool> {
        overlay::is_mounted(&self.dirs(id).merged)
    }

    // ANCHOR: remove_container
    /// Removes a container that is not running: unmounts its overlay and
    /// removes its cgroup if they are still there (after the runtime was
    /// killed), deletes its directories, then the layers nothing uses any more.
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let _lock = self.lock()?;
        let container = self.container(id)?;
        if let State::Running(pid) = self.state(&container) {
            bail!("container {id} is running (pid {pid}): stop it first, e.g. kill {pid}");
        }
        let dirs = self.dirs(id);
        if overlay::is_mounted(&dirs.merged)? {
            overlay::unmount(&dirs.merged)?;
        }
        if let Some(placement) = &container.cgroup {
            Cgroup::open(placement)?.remove()?;
        }
        say!("remove {}", dirs.dir.display());
        fs::remove_dir_all(&dirs.dir)
            .with_context(|| format!("failed to remove {}", dirs.dir.display()))?;
        self.remove_unused_layers()?;
        Ok(())
    }
    // ANCHOR_END: remove_container

    // ANCHOR: commit
    /// Saves container `id`'s upper layer as a new layer on top of its image's
    /// layers, as image `name`. The init layer's files are left out.
    pub fn commit(&self, id: &str, name: &str) -> Result<(Image, Summary)> {
        let path = self.image_path(name)?;
        let _lock = self.lock()?;
        let container = self.container(id)?;
        if path.exists() {
            bail!("image {name} exists: remove it with `rmi {name}` or choose another name");
        }
        let upper = self.dirs(id).upper;
        let tmp = tempfile::Builder::new()
            .prefix(".commit-")
            .tempfile_in(self.root.join("layers"))
            .context("failed to create a temporary layer tar")?;
        say!("pack {} into a layer tar", upper.display());
        let packed = layer::pack(&upper, BufWriter::new(tmp.as_file()), &init_layer::files())?;
        let reader = layer::open(tmp.path())?;
        let summary = self
            .add_layer(reader, Some(&packed.digest))
            .context("the committed layer changed while it was stored; commit again")?;
        let mut layers = container.layers.clone();
        layers.push(summary.digest.clone());
        let image = Image {
            name: name.to_string(),
            layers,
            comment: format!("commit {id} (from {})", container.image),
            config: self.image(&container.image).ok().and_then(|i| i.config),
            source: None,
        };
        write_json(&path, &image)?;
        Ok((image, packed))
    }
    // ANCHOR_END: commit
}

/// The bytes used by the files under `path` (not following symlinks).
pub fn du(path: &Path) -> Result<u64> {
    let meta = path
        .symlink_metadata()
        .with_context(|| format!("failed to stat {}", path.display()))?;
    let mut total = meta.len();
    if meta.is_dir() {
        for entry in
            fs::read_dir(path).with_context(|| format!("failed to read {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("failed to read {}", path.display()))?;
            total += du(&entry.path())?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(hex(&good).is_ok());
        assert!(hex("sha256:../../etc").is_err());
        assert!(hex("md5:00").is_err());
    }

    #[test]
    fn images_are_listed_by_name() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let store = Store::open(tmp.path())?;
        for name in ["b", "a"] {
            let image = Image {
                name: name.into(),
                layers: vec![],
                comment: String::new(),
                config: None,
                source: None,
            };
            write_json(&store.image_path(name)?, &image)?;
        }
        let names: Vec<String> = store.images()?.into_iter().map(|i| i.name).collect();
        assert_eq!(names, vec!["a", "b"]);
        assert!(store.image("c").is_err());
        Ok(())
    }
}
