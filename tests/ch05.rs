//! Chapter 5: image layers on overlayfs, whiteouts and opaque directories,
//! copy-on-write, the init layer, commit, and a store that leaves nothing
//! mounted behind.
//!
//! The library tests mount overlays themselves, always through the
//! `overlay::Mounted` guard, which unmounts on drop, so a failing assertion
//! unmounts too. The binary tests use a store in a temporary directory whose
//! guard unmounts anything still mounted under it before deleting it.
//!
//! The tests declared with `check` are also lab ch05's checks (`scripts/lab
//! check ch05`): each says what it verifies and gives a hint for when it fails.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use cfs_tests::kernel::{
    assert_mounts_unchanged, cgroup_dirs_holding, cgroups_named, children, mounts,
};
use cfs_tests::overlay::mount_fresh;
use cfs_tests::paths::workspace;
use cfs_tests::run::{as_nobody, chapter, output, wait_for, Background, Output};
use cfs_tests::{bail, check, ensure, root, Context, Result};
use ch05_overlay::overlay::{self, Overlay};
use ch05_overlay::{diff, layer};
use nix::sys::signal::Signal;
use tempfile::TempDir;

const BIN: &str = "ch05-overlay";

// ---- helpers ----

/// A layer tar built in memory: `dir/` makes a directory, `path=text` a file,
/// `path` alone an empty file (which is how `.wh.` markers are written).
fn layer_tar(entries: &[&str]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        if let Some(dir) = entry.strip_suffix('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, dir, std::io::empty())?;
        } else {
            let (path, text) = entry.split_once('=').unwrap_or((entry, ""));
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(text.len() as u64);
            builder.append_data(&mut header, path, text.as_bytes())?;
        }
    }
    Ok(builder.into_inner()?)
}

/// The entry names of a tar, and whether any is a character device.
fn tar_names(bytes: &[u8]) -> Result<(Vec<String>, bool)> {
    let mut names = Vec::new();
    let mut devices = false;
    for entry in tar::Archive::new(bytes).entries()? {
        let entry = entry?;
        devices |= entry.header().entry_type() == tar::EntryType::Char;
        // `tar -C dir -cf x.tar .` writes `./etc/`; compare plain `etc`.
        let name = entry.path()?.display().to_string();
        let name = name.trim_start_matches("./").trim_end_matches('/');
        if !name.is_empty() && name != "." {
            names.push(name.to_string());
        }
    }
    Ok((names, devices))
}

/// Unpacks `tar` into a new directory `dir/name` and returns its path.
fn unpack_into(dir: &Path, name: &str, tar: &[u8]) -> Result<(PathBuf, layer::Summary)> {
    let path = dir.join(name);
    fs::create_dir(&path)?;
    let summary = layer::unpack(tar, &path, std::io::sink())?;
    Ok((path, summary))
}

fn is_whiteout(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|meta| overlay::is_whiteout(&meta))
}

/// What is at `path`, in the words of a failure message: "missing", "a
/// regular file", "a block device 1/3", "a character device 0/0", ...
fn file_kind(path: &Path) -> String {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(meta) = path.symlink_metadata() else {
        return "missing".to_string();
    };
    let kind = meta.file_type();
    let device = |what: &str| {
        let rdev = meta.rdev();
        format!(
            "a {what} {}/{}",
            nix::sys::stat::major(rdev),
            nix::sys::stat::minor(rdev)
        )
    };
    if kind.is_char_device() {
        device("character device")
    } else if kind.is_block_device() {
        device("block device")
    } else if kind.is_dir() {
        "a directory".to_string()
    } else if kind.is_symlink() {
        "a symlink".to_string()
    } else if kind.is_file() {
        "a regular file".to_string()
    } else {
        "a fifo or a socket".to_string()
    }
}

/// The overlay attributes of `dir` with their values, for a failure message:
/// `trusted.overlay.opaque="y"`, or "no overlay attribute".
fn overlay_attributes(dir: &Path) -> Result<String> {
    let mut found = Vec::new();
    for name in xattr::list(dir)? {
        let name = name.to_string_lossy().into_owned();
        if name.contains("overlay.") {
            let value = xattr::get(dir, &name)?.unwrap_or_default();
            found.push(format!("{name}={:?}", String::from_utf8_lossy(&value)));
        }
    }
    Ok(if found.is_empty() {
        "no overlay attribute".to_string()
    } else {
        found.join(", ")
    })
}

fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    Ok(names)
}

/// Every relative path under `dir`.
fn all_paths(dir: &Path, rel: &Path, out: &mut BTreeSet<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        out.insert(rel.clone());
        if entry.file_type()?.is_dir() {
            all_paths(dir, &rel, out)?;
        }
    }
    Ok(())
}

/// A store in a temporary directory. Dropping it unmounts whatever is still
/// mounted under it (only our own mounts live there), then deletes it.
struct Store {
    dir: TempDir,
    root: String,
}

impl Store {
    fn new() -> Result<Store> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("store").to_string_lossy().into_owned();
        Ok(Store { dir, root })
    }

    /// A store with the default images of `scripts/mkimages`: base and app.
    fn with_images() -> Result<Store> {
        let store = Store::new()?;
        let out = output({
            let mut cmd = Command::new(workspace().join("scripts/mkimages"));
            cmd.args(["--root", &store.root]);
            cmd
        })?;
        out.expect_code(0)
            .context("scripts/mkimages could not import the default images")?;
        Ok(store)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut all = vec!["--root", self.root.as_str()];
        all.extend(args);
        chapter(BIN, &all)
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        output(self.command(args))
    }

    fn ok(&self, args: &[&str]) -> Result<Output> {
        let out = self.run(args)?;
        out.expect_code(0)?;
        Ok(out)
    }

    fn path(&self, rel: &str) -> PathBuf {
        Path::new(&self.root).join(rel)
    }

    /// The directory of an image's layer: index 0 is the bottom one, -1 the top.
    fn layer(&self, image: &str, index: isize) -> Result<PathBuf> {
        let text = fs::read_to_string(self.path(&format!("images/{image}.json")))?;
        let layers: Vec<String> = text
            .split('"')
            .filter(|s| s.starts_with("sha256:"))
            .map(str::to_string)
            .collect();
        let i = if index < 0 {
            layers.len() as isize + index
        } else {
            index
        };
        let digest = layers
            .get(usize::try_from(i)?)
            .with_context(|| format!("image {image} has no layer {index}"))?;
        Ok(self.path("layers").join(&digest["sha256:".len()..]))
    }

    fn containers(&self) -> Result<Vec<String>> {
        sorted_names(&self.path("containers"))
    }

    /// Fails unless the store holds no container and the mount table is
    /// as it was `before`.
    fn nothing_left(&self, before: &BTreeSet<String>) -> Result<()> {
        let containers = self.containers()?;
        ensure!(containers.is_empty(), "containers left: {containers:?}");
        assert_mounts_unchanged(before)
    }

    fn layer_count(&self) -> Result<usize> {
        Ok(sorted_names(&self.path("layers"))?.len())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        unmount_under(self.dir.path());
    }
}

/// Detaches whatever is mounted under `dir` (only our own mounts live there).
fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    if let Ok(table) = fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<&str> = table
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A temporary directory for the library tests' overlays. Each is mounted
/// through the `Mounted` guard; this one also detaches what a half-written
/// `Overlay::mount` mounted without returning a guard, before the directory
/// is deleted.
struct Scratch(TempDir);

impl Scratch {
    fn new() -> Result<Scratch> {
        Ok(Scratch(tempfile::tempdir()?))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unmount_under(self.0.path());
    }
}

fn contains(out: &Output, text: &str) -> Result<()> {
    ensure!(
        out.stdout.contains(text) || out.stderr.contains(text),
        "expected {text:?}\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    Ok(())
}

// ---- the library, on real overlay mounts ----

/// The bottom layer of the library tests.
const BASE: &[&str] = &[
    "etc/",
    "etc/motd=welcome\n",
    "etc/passwd=root:x:0:0::/root:/bin/sh\n",
    "opt/",
    "opt/old=old\n",
    "opt/keep/",
    "opt/keep/file=k\n",
];

/// `.wh.NAME` becomes a 0/0 device, `.wh..wh..opq` the opaque attribute, and
/// the kernel reads them as the OCI conventions mean: the deleted file is gone
/// and the opaque directory hides the lower one's contents.
fn import_converts_whiteouts() -> Result<()> {
    let tmp = Scratch::new()?;
    let base = layer_tar(BASE)?;
    let top = layer_tar(&[
        "etc/",
        "etc/.wh.passwd",
        "opt/",
        "opt/.wh..wh..opq",
        "opt/new=new\n",
    ])?;
    let (base, _) = unpack_into(tmp.path(), "base", &base)?;
    let (top, summary) = unpack_into(tmp.path(), "top", &top)?;
    ensure!(
        summary.whiteouts == 1 && summary.opaque == 1,
        "unpack counted {} whiteouts and {} opaque directories, not 1 and 1: {summary:?}",
        summary.whiteouts,
        summary.opaque
    );
    ensure!(
        is_whiteout(&top.join("etc/passwd")),
        "etc/passwd in the unpacked layer is {}, not a whiteout (a character device 0/0)",
        file_kind(&top.join("etc/passwd"))
    );
    ensure!(
        !top.join("etc/.wh.passwd").exists(),
        "the .wh. file was kept"
    );
    ensure!(
        !top.join("opt/.wh..wh..opq").exists(),
        "the opq marker was kept"
    );
    ensure!(
        overlay::is_opaque(&top.join("opt"))?,
        "opt in the unpacked layer is not opaque (trusted.overlay.opaque=\"y\"): it has {}",
        overlay_attributes(&top.join("opt"))?
    );
    ensure!(!overlay::is_opaque(&top.join("etc"))?, "etc is opaque");

    let (_, mounted) = mount_fresh(tmp.path(), "c", &[&top, &base])?;
    let merged = mounted.target().to_path_buf();
    ensure!(
        fs::read_to_string(merged.join("etc/motd"))? == "welcome\n",
        "motd from the base layer is not visible"
    );
    ensure!(
        !merged.join("etc/passwd").exists(),
        "the whiteout did not hide passwd"
    );
    ensure!(
        sorted_names(&merged.join("opt"))? == ["new"],
        "opaque opt shows {:?}",
        sorted_names(&merged.join("opt"))?
    );
    mounted.unmount()?;
    Ok(())
}

/// Copy-on-write, deletion and directory replacement in a mounted overlay,
/// then `pack` (commit) and `unpack` (import) of the upper layer: an overlay
/// of the committed layer shows exactly what the container saw.
fn commit_round_trip() -> Result<()> {
    let tmp = Scratch::new()?;
    let (base, _) = unpack_into(tmp.path(), "base", &layer_tar(BASE)?)?;
    let (ov, mounted) = mount_fresh(tmp.path(), "c1", &[&base])?;
    let merged = mounted.target().to_path_buf();

    fs::write(merged.join("etc/motd"), "changed\n")?;
    fs::remove_file(merged.join("etc/passwd"))?;
    fs::remove_dir_all(merged.join("opt"))?;
    fs::create_dir(merged.join("opt"))?;
    fs::write(merged.join("opt/x"), "x\n")?;

    // Copy-on-write: the change is in the upper layer only.
    ensure!(
        fs::read_to_string(ov.upper.join("etc/motd"))? == "changed\n",
        "no copy-up"
    );
    ensure!(
        fs::read_to_string(base.join("etc/motd"))? == "welcome\n",
        "lower changed"
    );
    ensure!(base.join("etc/passwd").exists(), "lower lost passwd");
    ensure!(
        is_whiteout(&ov.upper.join("etc/passwd")),
        "no whiteout in upper"
    );
    ensure!(
        overlay::is_opaque(&ov.upper.join("opt"))?,
        "opt not opaque in upper"
    );

    // Our lookup agrees with the kernel on every path of every layer.
    let mut paths = BTreeSet::new();
    all_paths(&base, Path::new(""), &mut paths)?;
    all_paths(&ov.upper, Path::new(""), &mut paths)?;
    let stack = [ov.upper.clone(), base.clone()];
    for path in &paths {
        let kernel = merged.join(path).symlink_metadata().is_ok();
        ensure!(
            overlay::exists_in(&stack, path) == kernel,
            "lookup of {} disagrees with the kernel ({kernel})",
            path.display()
        );
    }

    let found: Vec<String> = diff::changes(&ov.upper, std::slice::from_ref(&base))?
        .iter()
        .map(ToString::to_string)
        .collect();
    let expected = [
        "C /etc",
        "C /etc/motd",
        "D /etc/passwd",
        "C /opt",
        "D /opt/keep",
        "D /opt/old",
        "A /opt/x",
    ];
    ensure!(found == expected, "diff: {found:?}");
    mounted.unmount()?;

    let mut tar = Vec::new();
    let packed = layer::pack(&ov.upper, &mut tar, &BTreeSet::new())?;
    let (names, devices) = tar_names(&tar)?;
    ensure!(!devices, "a character device reached the tar: {names:?}");
    for name in ["etc/.wh.passwd", "opt/.wh..wh..opq", "etc/motd", "opt/x"] {
        ensure!(
            names.iter().any(|n| n == name),
            "{name} missing in {names:?}"
        );
    }
    ensure!(packed.whiteouts == 1 && packed.opaque == 1, "{packed:?}");

    let (committed, summary) = unpack_into(tmp.path(), "committed", &tar)?;
    ensure!(summary.digest == packed.digest, "digest changed on import");
    let (_, again) = mount_fresh(tmp.path(), "c2", &[&committed, &base])?;
    let merged = again.target().to_path_buf();
    ensure!(
        fs::read_to_string(merged.join("etc/motd"))? == "changed\n",
        "motd"
    );
    ensure!(!merged.join("etc/passwd").exists(), "passwd came back");
    ensure!(
        sorted_names(&merged.join("opt"))? == ["x"],
        "opt is not replaced"
    );
    again.unmount()?;
    Ok(())
}

// ---- the binary ----

fn corrupt_tars_are_clear_errors() -> Result<()> {
    let store = Store::with_images()?;
    let before = store.layer_count()?;
    let dir = store.dir.path();
    fs::write(dir.join("garbage.tar"), vec![b'x'; 4096])?;
    let mut base = Vec::new();
    fs::File::open(workspace().join("build/images/base.tar"))?.read_to_end(&mut base)?;
    fs::write(dir.join("truncated.tar"), &base[..base.len() / 2])?;
    fs::write(dir.join("empty.tar"), "")?;
    let mut gz = Vec::new();
    flate2::read::GzEncoder::new(&base[..], Default::default()).read_to_end(&mut gz)?;
    fs::write(dir.join("truncated.tar.gz"), &gz[..gz.len() / 2])?;

    for (file, says) in [
        ("garbage.tar", "corrupt"),
        ("truncated.tar", "failed to unpack"),
        ("empty.tar", "is empty"),
        ("truncated.tar.gz", "truncated.tar.gz"),
    ] {
        let path = dir.join(file).to_string_lossy().into_owned();
        // Also with a good layer first: its unpacked copy must go too.
        let good = workspace().join("build/images/app.tar");
        let out = store.run(&["import", "bad", &good.to_string_lossy(), &path])?;
        ensure!(out.code == 1, "{file}: exit {}: {}", out.code, out.stderr);
        contains(&out, says)?;
        ensure!(
            out.stderr.lines().count() == 1,
            "{file}: not one line: {}",
            out.stderr
        );
        ensure!(
            !store.path("images/bad.json").exists(),
            "{file}: image created"
        );
        ensure!(
            store.layer_count()? == before,
            "{file}: a layer stayed behind"
        );
    }
    Ok(())
}

/// A crafted tar entry: path, type, link target, device numbers.
type Crafted<'a> = (&'a str, tar::EntryType, &'a str, (u32, u32));

/// A tar of entries of any kind, for layers a stranger crafted.
fn crafted_tar(entries: &[Crafted]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, link, (major, minor)) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        header.set_mtime(1_700_000_000);
        if *kind == tar::EntryType::Symlink {
            header.set_link_name(link)?;
        }
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            header.set_device_major(*major)?;
            header.set_device_minor(*minor)?;
        }
        builder.append_data(&mut header, path, std::io::empty())?;
    }
    Ok(builder.into_inner()?)
}

/// What a host directory holds, with the overlay attributes of each entry.
fn host_view(dir: &Path) -> Result<Vec<String>> {
    let mut paths = BTreeSet::new();
    all_paths(dir, Path::new(""), &mut paths)?;
    paths.insert(PathBuf::new());
    let mut view = Vec::new();
    for rel in paths {
        let path = dir.join(&rel);
        let attrs: Vec<String> = xattr::list(&path)?
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        view.push(format!("{} {attrs:?}", rel.display()));
    }
    Ok(view)
}

/// Layers from strangers: a symlink out of the layer followed by entries
/// beneath it, and device nodes. Each is refused in one line, the host
/// directory the symlink names is exactly as it was (read from the host,
/// with its extended attributes), and the store holds no trace of the layer.
fn crafted_layers_stay_inside() -> Result<()> {
    use tar::EntryType::{Block, Char, Directory, Regular, Symlink};
    let store = Store::with_images()?;
    let host = tempfile::Builder::new().prefix("cfs-h5-host-").tempdir()?;
    fs::write(host.path().join("victim"), "still here\n")?;
    fs::create_dir(host.path().join("sub"))?;
    fs::write(host.path().join("sub/file"), "x")?;
    let target = host.path().to_string_lossy().into_owned();
    let before = host_view(host.path())?;
    let layers_before = store.layer_count()?;
    let link = ("link", Symlink, target.as_str(), (0, 0));
    let cases: Vec<(&str, Vec<Crafted>, &str)> = vec![
        (
            "whiteout in a new dir",
            vec![link, ("link/newdir/.wh.x", Regular, "", (0, 0))],
            "beneath a symlink",
        ),
        (
            "whiteout of a host file",
            vec![link, ("link/.wh.victim", Regular, "", (0, 0))],
            "beneath a symlink",
        ),
        (
            "opaque host dir",
            vec![link, ("link/sub/.wh..wh..opq", Regular, "", (0, 0))],
            "beneath a symlink",
        ),
        (
            "opaque symlink",
            vec![link, ("link/.wh..wh..opq", Regular, "", (0, 0))],
            "beneath a symlink",
        ),
        (
            "file through the link",
            vec![link, ("link/new", Regular, "", (0, 0))],
            "unpack outside",
        ),
        (
            "dir through the link",
            vec![link, ("link/newdir2", Directory, "", (0, 0))],
            "unpack outside",
        ),
        (
            "/dev/mem",
            vec![
                ("dev/", Directory, "", (0, 0)),
                ("dev/mem", Char, "", (1, 1)),
            ],
            "device node at dev/mem",
        ),
        (
            "a disk",
            vec![
                ("dev/", Directory, "", (0, 0)),
                ("dev/sda", Block, "", (8, 0)),
            ],
            "device node at dev/sda",
        ),
    ];
    for (what, entries, says) in cases {
        let tar = store.dir.path().join("crafted.tar");
        fs::write(&tar, crafted_tar(&entries)?)?;
        let out = store.run(&["import", "crafted", &tar.to_string_lossy()])?;
        ensure!(
            host_view(host.path())? == before,
            "{what}: the host directory changed: {:?}",
            host_view(host.path())?
        );
        refused(what, &out, says)?;
        ensure!(
            fs::read_to_string(host.path().join("victim"))? == "still here\n",
            "{what}: victim changed"
        );
        ensure!(
            !store.path("images/crafted.json").exists(),
            "{what}: image created"
        );
        ensure!(
            store.layer_count()? == layers_before,
            "{what}: a layer or a half-unpacked one stayed: {:?}",
            sorted_names(&store.path("layers"))?
        );
    }
    Ok(())
}

/// The blob file of `digest` (`sha256:<hex>`) in the layout `dir`.
fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The JSON of a blob of the layout `dir`.
fn blob_json(dir: &Path, digest: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(&fs::read_to_string(blob(
        dir, digest,
    ))?)?)
}

/// Every path under the store but its lock: what a refused load must not change.
fn store_paths(store: &Store) -> Result<BTreeSet<PathBuf>> {
    let mut paths = BTreeSet::new();
    all_paths(&store.path(""), Path::new(""), &mut paths)?;
    paths.remove(Path::new("lock"));
    Ok(paths)
}

/// Writes `value` as a blob of the layout `dir` and returns its descriptor's
/// digest and size.
fn put_blob(dir: &Path, value: &serde_json::Value) -> Result<(String, usize)> {
    let bytes = serde_json::to_vec(value)?;
    let digest = ch05_overlay::oci::sha256(&bytes);
    fs::write(blob(dir, &digest), &bytes)?;
    Ok((digest, bytes.len()))
}

/// Makes the layout `dir` name `manifest` (with `config` as its config, when
/// given) instead of its own: every blob is what its descriptor says, so only
/// what the manifest and the config say can refuse it. `index` is the
/// layout's own index.json.
fn forge_layout(
    dir: &Path,
    index: &[u8],
    mut manifest: serde_json::Value,
    config: Option<serde_json::Value>,
) -> Result<()> {
    if let Some(config) = config {
        let (digest, size) = put_blob(dir, &config)?;
        manifest["config"]["digest"] = digest.into();
        manifest["config"]["size"] = size.into();
    }
    let (digest, size) = put_blob(dir, &manifest)?;
    let mut index: serde_json::Value = serde_json::from_slice(index)?;
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = size.into();
    fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

/// A command that failed as a refusal should: exit code 1, one line of
/// stderr that says `says`.
fn refused(what: &str, out: &Output, says: &str) -> Result<()> {
    ensure!(out.code == 1, "{what}: exit {}: {}", out.code, out.stderr);
    ensure!(
        out.stderr.lines().count() == 1 && out.stderr.contains(says),
        "{what}: expected one line with {says:?}: {}",
        out.stderr
    );
    Ok(())
}

/// `save` then `load` through an OCI image layout: the loaded image runs; a
/// layout whose layer blob was changed by one byte, or cut short, is refused
/// in one line (the short one for its size) and the store is left exactly as
/// it was; so is one whose blobs are sound but whose second layer unpacks to
/// another diff_id than the config names, or whose config names fewer layers
/// than its manifest.
fn layouts_are_verified() -> Result<()> {
    let source = Store::with_images()?;
    let dir = source.dir.path().join("app-oci");
    let dir_arg = dir.to_string_lossy().into_owned();
    source.ok(&["save", "app", &dir_arg])?;
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("index.json"))?)?;
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .context("no manifest")?;
    let manifest = blob_json(&dir, manifest)?;
    let top = manifest["layers"][1]["digest"]
        .as_str()
        .context("no layer")?;
    let top = blob(&dir, top);
    let good = fs::read(&top)?;

    let store = Store::new()?;
    store.ok(&["images"])?;
    let before = store_paths(&store)?;
    // `load` refused with one line saying `says`, and the store as it was.
    let load_refused = |what: &str, says: &str| -> Result<()> {
        let out = store.run(&["load", &dir_arg])?;
        refused(what, &out, says)?;
        ensure!(
            store_paths(&store)? == before,
            "{what}: the store changed: {:?}",
            store_paths(&store)?
        );
        Ok(())
    };
    let mut changed = good.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    for (what, bytes, says) in [
        ("one byte changed", changed, "refused (corrupt or forged)"),
        (
            "cut short",
            good[..good.len() / 2].to_vec(),
            "bytes, not the",
        ),
    ] {
        fs::write(&top, &bytes)?;
        load_refused(what, says)?;
    }
    fs::write(&top, &good)?;

    // Layouts whose blobs are all what their descriptors say, but whose
    // manifest and config disagree: the second layer is the first one's blob
    // (it unpacks to another diff_id than the config's), or the config names
    // one layer of the manifest's two.
    let index_bytes = fs::read(dir.join("index.json"))?;
    let mut same_twice = manifest.clone();
    same_twice["layers"][1] = manifest["layers"][0].clone();
    let config_digest = manifest["config"]["digest"].as_str().context("no config")?;
    let mut one_layer = blob_json(&dir, config_digest)?;
    let diff_ids = one_layer["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("no diff_ids")?;
    diff_ids.truncate(1);
    for (what, manifest, config, says) in [
        (
            "the second layer unpacks to another diff_id than the config's",
            same_twice,
            None,
            "unpacks to",
        ),
        (
            "a config naming 1 of the manifest's 2 layers",
            manifest.clone(),
            Some(one_layer),
            "the manifest has 2 layers but the config names 1",
        ),
    ] {
        forge_layout(&dir, &index_bytes, manifest, config)?;
        load_refused(what, says)?;
    }
    fs::write(dir.join("index.json"), &index_bytes)?;

    let out = store.ok(&["load", &dir_arg])?;
    contains(&out, "image app: 2 layers")?;
    let out = store.ok(&["run", "--name", "cfs-h5-loaded", "app", "--", "hello"])?;
    ensure!(
        out.stdout == "hello from the app layer\n",
        "the loaded image runs {:?}",
        out.stdout
    );
    store.ok(&["rm", "cfs-h5-loaded"])?;
    Ok(())
}

/// A container made a device node: commit refuses it in one line and makes
/// no image, as unpack would refuse the layer.
fn commit_refuses_device_nodes() -> Result<()> {
    let store = Store::with_images()?;
    store.ok(&[
        "run",
        "--name",
        "cfs-h5-dev",
        "base",
        "--",
        "mknod",
        "/mem",
        "c",
        "1",
        "1",
    ])?;
    let layers = store.layer_count()?;
    let out = store.run(&["commit", "cfs-h5-dev", "withdev"])?;
    ensure!(out.code == 1, "exit {}: {}", out.code, out.stderr);
    ensure!(
        out.stderr.lines().count() == 1 && out.stderr.contains("mem is a device node"),
        "{}",
        out.stderr
    );
    ensure!(!store.path("images/withdev.json").exists(), "image made");
    ensure!(store.layer_count()? == layers, "a layer stayed");
    store.ok(&["rm", "cfs-h5-dev"])?;
    Ok(())
}

/// A container writes a file of its image: the change lands in its own upper
/// directory only; its overlay is unmounted when it ends. Before that, in the
/// test's process: `Overlay::options` refuses an overlay with no lower layer,
/// which the kernel would only answer with EINVAL.
fn copy_on_write_in_containers() -> Result<()> {
    let bare = Overlay {
        lower: Vec::new(),
        upper: PathBuf::from("/cfs-h11/upper"),
        work: PathBuf::from("/cfs-h11/work"),
    };
    match bare.options() {
        Ok(options) => {
            bail!("an Overlay with no lower layer was not refused: options() gave {options:?}")
        }
        Err(err) => ensure!(
            err.to_string().contains("lower"),
            "an Overlay with no lower layer was refused, but the error does not say \
             lower layer: {err:#}"
        ),
    }
    let store = Store::with_images()?;
    let base = store.layer("base", 0)?.join("diff/etc/motd");
    let original = fs::read_to_string(&base)?;
    store.ok(&[
        "run",
        "--name",
        "c1",
        "base",
        "--",
        "sh",
        "-c",
        "echo changed > /etc/motd",
    ])?;
    let upper = store.path("containers/c1/upper/etc/motd");
    ensure!(
        fs::read_to_string(&upper).ok().as_deref() == Some("changed\n"),
        "the change is not in c1's upper directory: its etc/motd is {}",
        file_kind(&upper)
    );
    let merged = store.path("containers/c1/merged");
    ensure!(
        !overlay::is_mounted(&merged)?,
        "c1's overlay is still mounted at {} after c1 ended",
        merged.display()
    );
    ensure!(
        fs::read_to_string(&base)? == original,
        "the image's layer changed"
    );
    let out = store.ok(&["run", "--name", "c2", "base", "--", "cat", "/etc/motd"])?;
    ensure!(out.stdout == original, "c2 sees {:?}", out.stdout);
    // The check fails on the wrong input: c1's own view is the changed file.
    let diff = store.ok(&["diff", "c1"])?;
    ensure!(
        diff.stdout == "C /etc\nC /etc/motd\n",
        "diff c1: {}",
        diff.stdout
    );
    ensure!(
        store.ok(&["diff", "c2"])?.stdout.is_empty(),
        "c2 changed something"
    );
    Ok(())
}

fn whiteouts_and_opaque_dirs_survive_commit() -> Result<()> {
    let store = Store::with_images()?;
    // The app image's own layer deletes /etc/rootfs-release.
    let app = store.layer("app", -1)?;
    ensure!(
        is_whiteout(&app.join("diff/etc/rootfs-release")),
        "no whiteout in app"
    );
    let (names, _) = tar_names(&fs::read(app.join("layer.tar"))?)?;
    ensure!(
        names.iter().any(|n| n == "etc/.wh.rootfs-release"),
        "{names:?}"
    );

    let script = "rm /etc/group && rm -r /usr/local/bin && mkdir /usr/local/bin && \
                  printf '#!/bin/sh\\necho hi\\n' > /usr/local/bin/hi && chmod 755 /usr/local/bin/hi";
    store.ok(&["run", "--name", "c1", "app", "--", "sh", "-c", script])?;
    ensure!(
        is_whiteout(&store.path("containers/c1/upper/etc/group")),
        "no whiteout"
    );
    ensure!(
        overlay::is_opaque(&store.path("containers/c1/upper/usr/local/bin"))?,
        "usr/local/bin is not opaque"
    );
    let out = store.ok(&["commit", "c1", "app2"])?;
    contains(&out, "whiteouts 1, opaque directories 1")?;
    let top = store.layer("app2", -1)?;
    let (names, devices) = tar_names(&fs::read(top.join("layer.tar"))?)?;
    ensure!(!devices, "a device in the committed tar: {names:?}");
    for name in [
        "etc/.wh.group",
        "usr/local/bin/.wh..wh..opq",
        "usr/local/bin/hi",
    ] {
        ensure!(
            names.iter().any(|n| n == name),
            "{name} missing in {names:?}"
        );
    }

    let check = "test -e /etc/group && echo group; test -e /etc/rootfs-release && echo release; ls /usr/local/bin";
    let out = store.ok(&["run", "app2", "--", "sh", "-c", check])?;
    ensure!(out.stdout == "hi\n", "from app2: {:?}", out.stdout);
    let out = store.ok(&["run", "app", "--", "sh", "-c", check])?;
    ensure!(out.stdout == "group\nhello\n", "from app: {:?}", out.stdout);
    Ok(())
}

fn hosts_and_the_init_layer() -> Result<()> {
    let store = Store::with_images()?;
    let script = "cat /etc/hosts; cat /etc/hostname; echo '10.9.9.9 edited' >> /etc/hosts; \
                  echo other > /etc/hostname; echo kept > /etc/kept";
    let out = store.ok(&[
        "run",
        "--name",
        "c1",
        "--hostname",
        "web",
        "--add-host",
        "db:10.0.0.5",
        "--add-host",
        "cache:fd00::7",
        "app",
        "--",
        "sh",
        "-c",
        script,
    ])?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    for line in ["10.0.0.5\tdb", "fd00::7\tcache", "127.0.1.1\tweb", "web"] {
        ensure!(
            lines.contains(&line),
            "{line:?} missing in {:?}",
            out.stdout
        );
    }
    let plain = store.ok(&["run", "app", "--", "cat", "/etc/hosts"])?;
    ensure!(
        !plain.stdout.contains("db"),
        "db without --add-host: {}",
        plain.stdout
    );

    // The container's edits were copied up; diff shows them, commit skips them.
    let diff = store.ok(&["diff", "c1"])?;
    contains(&diff, "C /etc/hosts")?;
    let out = store.ok(&["commit", "c1", "app2"])?;
    contains(&out, "init-layer files left out 2")?;
    let top = store.layer("app2", -1)?;
    let (names, _) = tar_names(&fs::read(top.join("layer.tar"))?)?;
    ensure!(names.iter().any(|n| n == "etc/kept"), "{names:?}");
    // The image's own layers may have these files (the rootfs does); the new one must not.
    for file in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        ensure!(
            !top.join("diff").join(file).exists(),
            "the committed layer holds {file}"
        );
        ensure!(
            !names.iter().any(|n| n == file),
            "the committed tar holds {file}"
        );
    }
    let out = store.ok(&[
        "run",
        "--hostname",
        "other",
        "app2",
        "--",
        "sh",
        "-c",
        "cat /etc/hosts /etc/hostname /etc/kept",
    ])?;
    ensure!(
        !out.stdout.contains("edited"),
        "an old edit came back: {}",
        out.stdout
    );
    ensure!(
        !out.stdout.contains("db"),
        "an old --add-host came back: {}",
        out.stdout
    );
    contains(&out, "other\nkept\n")?;
    Ok(())
}

fn failed_runs_leave_nothing() -> Result<()> {
    let store = Store::with_images()?;
    let before = mounts()?;
    let cases: [(&[&str], &str, i32); 4] = [
        (&["run", "nope", "--", "sh"], "no image named nope", 1),
        (
            &["run", "app", "--", "no-such-command"],
            "command no-such-command not found in image app",
            1,
        ),
        (
            &["run", "--add-host", "db", "app", "--", "sh"],
            "NAME:IP",
            2,
        ),
        (
            &["run", "--name", "../x", "app", "--", "sh"],
            "not valid",
            1,
        ),
    ];
    for (args, says, code) in cases {
        let out = store.run(args)?;
        ensure!(
            out.code == code,
            "{args:?}: exit {}: {}",
            out.code,
            out.stderr
        );
        contains(&out, says)?;
        store
            .nothing_left(&before)
            .with_context(|| format!("after {args:?}"))?;
    }
    // A layer missing from the store (deleted by hand): the mount cannot be made.
    let layer = store.layer("app", -1)?;
    fs::rename(layer.join("diff"), layer.join("gone"))?;
    let out = store.run(&["run", "app", "--", "true"])?;
    ensure!(out.code == 1, "exit {}", out.code);
    contains(&out, "is missing from the store")?;
    store.nothing_left(&before)?;
    fs::rename(layer.join("gone"), layer.join("diff"))?;

    // A command that fails after it started is a finished container, kept for diff.
    let out = store.run(&[
        "run",
        "--name",
        "c1",
        "app",
        "--",
        "sh",
        "-c",
        "touch /x; exit 3",
    ])?;
    ensure!(out.code == 3, "exit {}", out.code);
    contains(&store.ok(&["ps"])?, "exited (3)")?;
    store.ok(&["rm", "c1"])?;
    store.nothing_left(&before)?;
    Ok(())
}

fn rm_after_the_runtime_was_killed() -> Result<()> {
    let store = Store::with_images()?;
    let before = mounts()?;
    let args = [
        "run", "--name", "c1", "--pids", "32", "--memory", "64M", "app", "--", "sleep", "30",
    ];
    let bg = Background::start(store.command(&args))?;
    let merged = store.path("containers/c1/merged");
    let child = wait_for(Duration::from_secs(10), || {
        children(bg.pid()).first().copied()
    })?;
    ensure!(overlay::is_mounted(&merged)?, "not mounted while running");
    // Chapter 4's cgroup holds the container, with its limits.
    let cgroup = format!("cfs-c1-{}", bg.pid());
    let dirs = wait_for(Duration::from_secs(10), || {
        cgroup_dirs_holding(&cgroup, child)
    })?;
    ensure!(
        dirs.iter()
            .any(|d| fs::read_to_string(d.join("pids.max")).is_ok_and(|v| v.trim() == "32")),
        "no pids.max of 32 in {dirs:?}"
    );
    contains(&store.ok(&["ps"])?, "running (pid")?;
    let refused = store.run(&["rm", "c1"])?;
    ensure!(
        refused.code == 1,
        "rm of a running container: exit {}",
        refused.code
    );
    contains(&refused, "is running")?;

    bg.signal(Signal::SIGKILL)?;
    bg.finish(Duration::from_secs(10))?;
    // The kernel kills the container with its runtime (PR_SET_PDEATHSIG); the mount stays.
    wait_for(Duration::from_secs(10), || {
        let ps = store.ok(&["ps"]).ok()?;
        ps.stdout.contains("stopped").then_some(())
    })?;
    ensure!(
        overlay::is_mounted(&merged)?,
        "the overlay vanished by itself"
    );
    contains(&store.ok(&["ps"])?, "mounted")?;
    ensure!(
        !cgroups_named(&cgroup)?.is_empty(),
        "the cgroup vanished by itself"
    );
    store.ok(&["rm", "c1"])?;
    ensure!(!overlay::is_mounted(&merged)?, "rm did not unmount");
    let left = cgroups_named(&cgroup)?;
    ensure!(left.is_empty(), "rm left the cgroup: {left:?}");
    store.nothing_left(&before)?;
    Ok(())
}

/// `rm` removes a container's cgroup through chapter 4's `Cgroup::open`,
/// which checks the saved placement: a hand-edited container.json that names
/// a directory which is not a cgroup makes `rm` fail and remove nothing.
fn rm_refuses_a_cgroup_that_is_not_one() -> Result<()> {
    let store = Store::with_images()?;
    store.ok(&["run", "--name", "c1", "app", "--", "true"])?;
    let victim = store.dir.path().join("cfs-h4-victim");
    fs::create_dir(&victim)?;
    let record = store.path("containers/c1/container.json");
    let mut json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&record)?)?;
    ensure!(
        json["cgroup"].is_null(),
        "a finished container kept its cgroup: {json}"
    );
    json["cgroup"] = serde_json::json!({
        "version": "v1",
        "dirs": [{"path": victim, "controllers": ["pids"]}],
    });
    fs::write(&record, json.to_string())?;
    let out = store.run(&["rm", "c1"])?;
    ensure!(
        out.code == 1,
        "rm of a forged cgroup: exit {}\n{}",
        out.code,
        out.stderr
    );
    contains(&out, "is not a cgroup beneath a v1 hierarchy")?;
    ensure!(victim.is_dir(), "rm removed {}", victim.display());
    ensure!(record.exists(), "rm removed the container anyway");
    Ok(())
}

/// Two running containers change the same file of the image and each sees
/// only its own change, from inside; a third, started meanwhile, sees the
/// image's file; the image's layers do not change.
fn two_containers_at_once() -> Result<()> {
    let store = Store::with_images()?;
    let motd = store.layer("app", 0)?.join("diff/etc/motd");
    let original = fs::read_to_string(&motd)?;
    let script = |me: &str, other: &str| {
        format!(
            "echo {me} >/etc/motd; touch /{me}-was-here; while [ ! -e /tmp/stop ]; do sleep 0.05; done; \
             cat /etc/motd; test -e /{other}-was-here && echo saw-{other}; true"
        )
    };
    let start = |id: &str, other: &str| {
        Background::start(store.command(&[
            "run",
            "--name",
            id,
            "app",
            "--",
            "sh",
            "-c",
            &script(id, other),
        ]))
    };
    let a = start("a", "b")?;
    let b = start("b", "a")?;
    for id in ["a", "b"] {
        let mark = store.path(&format!("containers/{id}/upper/{id}-was-here"));
        wait_for(Duration::from_secs(10), || mark.exists().then_some(()))?;
        let merged = store.path(&format!("containers/{id}/merged"));
        ensure!(overlay::is_mounted(&merged)?, "{id} is not mounted");
    }
    let third = store.ok(&["run", "app", "--", "cat", "/etc/motd"])?;
    ensure!(
        third.stdout == original,
        "a third container sees {:?}",
        third.stdout
    );
    for id in ["a", "b"] {
        fs::write(store.path(&format!("containers/{id}/merged/tmp/stop")), "")?;
    }
    let a = a.finish(Duration::from_secs(10))?;
    let b = b.finish(Duration::from_secs(10))?;
    ensure!(a.stdout == "a\n", "a saw {:?} ({})", a.stdout, a.stderr);
    ensure!(b.stdout == "b\n", "b saw {:?} ({})", b.stdout, b.stderr);
    ensure!(
        fs::read_to_string(&motd)? == original,
        "the image's motd changed"
    );
    Ok(())
}

fn images_share_layers_and_rmi_keeps_what_is_used() -> Result<()> {
    let store = Store::with_images()?;
    ensure!(
        store.layer("base", 0)? == store.layer("app", 0)?,
        "base layer not shared"
    );
    ensure!(store.layer_count()? == 2, "expected 2 layers");
    store.ok(&["run", "--name", "c1", "base", "--", "true"])?;
    let refused = store.run(&["rmi", "base"])?;
    ensure!(
        refused.code == 1,
        "rmi of a used image: exit {}",
        refused.code
    );
    contains(&refused, "used by container c1")?;
    let out = store.ok(&["rmi", "app"])?;
    ensure!(out.stdout.lines().count() == 2, "rmi app: {}", out.stdout);
    ensure!(store.layer_count()? == 1, "the shared base layer went too");
    store.ok(&["run", "base", "--", "true"])?;
    store.ok(&["rm", "c1"])?;
    Ok(())
}

fn not_root_is_a_one_line_error() -> Result<()> {
    let store = Store::new()?;
    // nobody could create the store here: only the root check stops it.
    fs::set_permissions(store.dir.path(), fs::Permissions::from_mode(0o777))?;
    let out = as_nobody(store.command(&["images"]))?;
    out.expect_code(1)?;
    ensure!(
        out.stderr.trim()
            == "ch05-overlay: must run as root to create namespaces: run it with sudo",
        "stderr: {:?}",
        out.stderr
    );
    ensure!(!store.path("").exists(), "the store was created anyway");
    Ok(())
}

/// Hints that follow the failure (see `cfs_tests::lab::hints`).
const HINTS: &[(&str, &str)] = &[
    (
        r"unpack counted 0 whiteouts",
        "unpack made no whiteout: a .wh.NAME entry must become a whiteout at NAME \
         (make_whiteout), not the regular file it is in the tar",
    ),
    (
        r"and 0 opaque directories",
        "unpack made no directory opaque: the .wh..wh..opq entry must make its directory \
         opaque (set_opaque), not be skipped with aufs's other .wh..wh. names",
    ),
    (
        r"is a regular file, not a whiteout",
        "make_whiteout makes a regular file: overlayfs reads as deleted only a character \
         device 0/0, made with mknod(2) S_IFCHR and device number 0",
    ),
    (
        r"is a block device \d+/\d+, not a whiteout",
        "make_whiteout makes a block device: a whiteout is a character device (S_IFCHR) 0/0",
    ),
    (
        r"is a character device \d+/\d+, not a whiteout",
        "make_whiteout makes a character device with another number: overlayfs reads only \
         device 0/0 (mknod(2) with dev 0) as a whiteout",
    ),
    (
        r"is missing, not a whiteout",
        "unpack made no whiteout at NAME: remove what an earlier entry put there, then \
         make_whiteout, every time",
    ),
    (
        r"not opaque .*user\.overlay\.opaque",
        "set_opaque sets user.overlay.opaque, which only an overlay mounted with userxattr \
         reads: a rootful overlay reads trusted.overlay.opaque",
    ),
    (
        r"not opaque .*: it has trusted\.overlay\.opaque=",
        "set_opaque sets trusted.overlay.opaque to another value: overlayfs reads only \"y\" \
         as opaque",
    ),
    (
        r"not opaque .*: it has no overlay attribute",
        "set_opaque sets no attribute: it must setxattr(2) trusted.overlay.opaque=\"y\" on \
         the directory",
    ),
    (
        r"cut short: (exit 0|expected one line)",
        "a blob cut short must be refused for its size, first: Verifier::check compares the \
         bytes written with desc.size() (\"is N bytes, not the M its descriptor says\")",
    ),
    (
        r"one byte changed: (exit 0|expected one line)",
        "a blob with one byte changed must be refused: Verifier::check compares the digest of \
         the bytes written with desc.digest(), the descriptor's",
    ),
    (
        r"another diff_id than the config's: (exit 0|expected one line)",
        "unpack_image must give add_layer the config's diff_id (Some(diff_id)): it refuses a \
         layer that unpacks to other bytes than the config names",
    ),
    (
        r"of the manifest's 2 layers: (exit 0|expected one line)",
        "unpack_image must refuse a config whose diff_ids are not as many as the manifest's \
         layers: zip stops at the shorter of the two",
    ),
    (
        r"the store changed",
        "a refused load left layers in the store: on an error unpack_image must call \
         store.remove_unused_layers() before it returns",
    ),
    (
        r"Read-only file system|EROFS",
        "the container's root is read-only: mount(2) the overlay with no flags, not \
         MS_RDONLY, so that writes go to its upper directory",
    ),
    (
        r"command \S+ not found in image",
        "the container's root lacks the image's files: mount must mount an overlay (type \
         \"overlay\") of all the layers on merged, not bind-mount one of them",
    ),
    (
        r"the change is not in c1's upper directory",
        "the container's writes did not land in its upper directory: mount an overlay \
         (type \"overlay\") whose options give upperdir= the container's upper directory \
         and workdir= its work directory",
    ),
    (
        r"still mounted at .* after c1 ended",
        "the overlay stays mounted when the container ends: mount must return a Mounted \
         guard holding the target, which it unmounts (umount2(2)) when run is done",
    ),
    (
        r"no lower layer was not refused",
        "options must refuse an Overlay with no lower layer: the kernel would say only \
         EINVAL",
    ),
];

fn main() -> ExitCode {
    cfs_tests::lab::hints(HINTS);
    cfs_tests::main(vec![
        root("not_root_is_a_one_line_error", not_root_is_a_one_line_error),
        root(
            "rm_refuses_a_cgroup_that_is_not_one",
            rm_refuses_a_cgroup_that_is_not_one,
        ),
        check(
            "import_converts_whiteouts",
            "unpacking a layer tar turns etc/.wh.passwd into a character device 0/0 at etc/passwd \
             and opt/.wh..wh..opq into the attribute trusted.overlay.opaque=y on opt, keeping \
             neither marker file; an overlay of that layer over the base hides /etc/passwd and \
             what the base had in /opt",
            "unpack: OPAQUE_MARKER makes its directory opaque (set_opaque: setxattr(2)), .wh.NAME \
             becomes a whiteout at NAME (make_whiteout: mknod(2) S_IFCHR, device 0); lowerdir \
             lists the top layer first",
            import_converts_whiteouts,
        ),
        check(
            "commit_round_trip",
            "in an overlay from Overlay::mount, writing /etc/motd copies it up into the upper \
             directory, deleting /etc/passwd leaves a whiteout there and the replaced /opt is \
             opaque, while the lower layer stays as it was; packed and unpacked again, the upper \
             layer shows the same files and keeps its sha256 digest",
            "options: lowerdir=TOP:...:BOTTOM,upperdir=...,workdir=...; mount(2) with source and \
             type \"overlay\" and that string as data; unpack hashes every byte it reads, to the \
             end of the tar",
            commit_round_trip,
        ),
        root(
            "corrupt_tars_are_clear_errors",
            corrupt_tars_are_clear_errors,
        ),
        root("crafted_layers_stay_inside", crafted_layers_stay_inside),
        root("commit_refuses_device_nodes", commit_refuses_device_nodes),
        check(
            "layouts_are_verified",
            "an image saved as an OCI layout loads into an empty store and runs; with one byte of \
             its top layer's blob changed, or the blob cut to half (an error naming its size), \
             with a manifest whose second layer is the first one's blob (another diff_id than the \
             config's), or with a config naming 1 of the manifest's 2 layers, load exits 1 with \
             one line and the store's directory tree is exactly as before",
            "Verifier::check compares the count and the hash with the descriptor; unpack_image \
             fetches through fetch_json and fetch_verified, gives add_layer the diff_id, and on an \
             error removes the unused layers before it returns",
            layouts_are_verified,
        ),
        check(
            "copy_on_write_in_containers",
            "a container of the base image writes /etc/motd: the change is in its upper directory \
             only, the image's layer is unchanged, its overlay is unmounted when it ends, a second \
             container reads the original, and diff c1 prints C /etc and C /etc/motd; \
             Overlay::options refuses an overlay with no lower layer",
            "import needs unpack; run mounts an Overlay of the init layer and the image's layers \
             (top first) with the container's upper and work directories on merged",
            copy_on_write_in_containers,
        ),
        check(
            "whiteouts_and_opaque_dirs_survive_commit",
            "the app image's layer holds a 0/0 device at etc/rootfs-release (etc/.wh.rootfs-release in \
             its tar); a container that deletes /etc/group and replaces /usr/local/bin commits a tar \
             with etc/.wh.group and usr/local/bin/.wh..wh..opq, and a container of the new image \
             sees exactly that",
            "unpack removes whatever an earlier entry put at NAME before make_whiteout, and creates \
             the directory of an OPAQUE_MARKER before set_opaque",
            whiteouts_and_opaque_dirs_survive_commit,
        ),
        root("hosts_and_the_init_layer", hosts_and_the_init_layer),
        root("failed_runs_leave_nothing", failed_runs_leave_nothing),
        root(
            "rm_after_the_runtime_was_killed",
            rm_after_the_runtime_was_killed,
        ),
        root("two_containers_at_once", two_containers_at_once),
        root(
            "images_share_layers_and_rmi_keeps_what_is_used",
            images_share_layers_and_rmi_keeps_what_is_used,
        ),
    ])
}
