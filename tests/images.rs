//! Chapter 5's images travel: OCI layouts, a real registry, skopeo and umoci.
//!
//! Every test starts what it needs: Debian's `docker-registry` on 127.0.0.1
//! at a free port (`cfs_tests::registry::Registry`), or a fake registry in a
//! thread that misbehaves on purpose (`Fake`), and a ch05 store in a
//! temporary directory. The other side of every interop check is a real
//! tool: `skopeo` copies and inspects, `umoci` builds and unpacks layouts.
//! A refusal is checked three ways: the exit code, one line on stderr, and a
//! store that holds exactly what it held before (no image, no layer, no
//! temporary file).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use cfs_tests::overlay::mount_fresh;
use cfs_tests::paths::{rootfs, workspace};
use cfs_tests::registry::{free_port, ok, Fake, Fault, Registry, Tools};
use cfs_tests::run::{chapter, output, Output};
use cfs_tests::{ensure, root, Context, Result};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const BIN: &str = "ch05-overlay";
const TAG: &str = "h5";

/// A ch05 store in a temporary directory (unmounting what is left on drop).
struct Store {
    dir: TempDir,
    root: String,
}

impl Store {
    fn new() -> Result<Store> {
        let dir = tempfile::Builder::new().prefix("cfs-images-").tempdir()?;
        let root = dir.path().join("store").to_string_lossy().into_owned();
        Ok(Store { dir, root })
    }

    /// With scripts/mkimages' base and app images.
    fn with_images() -> Result<Store> {
        let store = Store::new()?;
        let mut cmd = Command::new(workspace().join("scripts/mkimages"));
        cmd.args(["--root", &store.root]);
        output(cmd)?
            .expect_code(0)
            .context("scripts/mkimages failed")?;
        Ok(store)
    }

    fn run(&self, args: &[&str]) -> Result<Output> {
        let mut all = vec!["--root", self.root.as_str()];
        all.extend(args);
        output(chapter(BIN, &all))
    }

    fn ok(&self, args: &[&str]) -> Result<Output> {
        let out = self.run(args)?;
        out.expect_code(0)
            .with_context(|| format!("ch05-overlay {args:?}"))?;
        Ok(out)
    }

    fn path(&self, rel: &str) -> PathBuf {
        Path::new(&self.root).join(rel)
    }

    /// Every path in the store (but the lock), to compare before and after.
    fn snapshot(&self) -> Result<Vec<String>> {
        let mut all = Vec::new();
        walk(Path::new(&self.root), Path::new(""), &mut all)?;
        all.retain(|p| p != "lock");
        Ok(all)
    }

    /// The layer digests of an image, bottom first.
    fn layers(&self, image: &str) -> Result<Vec<String>> {
        let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(
            self.path(&format!("images/{image}.json")),
        )?)?;
        Ok(json["layers"]
            .as_array()
            .context("no layers")?
            .iter()
            .filter_map(|l| l.as_str().map(str::to_string))
            .collect())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.dir.path().display());
        if let Ok(table) = fs::read_to_string("/proc/self/mountinfo") {
            for point in table.lines().filter_map(|l| l.split(' ').nth(4)) {
                if point.starts_with(&prefix) {
                    let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let rel = rel.join(name);
        out.push(rel.display().to_string());
        if root.join(&rel).symlink_metadata()?.is_dir() {
            walk(root, &rel, out)?;
        }
    }
    Ok(())
}

/// The single line a refused command prints, checked to be one line holding `text`.
fn one_line(out: &Output, text: &str) -> Result<()> {
    ensure!(
        out.code != 0,
        "exit 0 where a refusal was expected: {}",
        out.stdout
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    ensure!(
        lines.len() == 1 && lines[0].contains(text),
        "expected one line with {text:?} on stderr, got {:?}",
        out.stderr
    );
    Ok(())
}

/// What a directory tree holds, comparable across tools: per path, the type,
/// mode, owner, and content hash or link target.
fn tree(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut paths = Vec::new();
    walk(dir, Path::new(""), &mut paths)?;
    let mut out = BTreeMap::new();
    for rel in paths {
        let path = dir.join(&rel);
        let meta = path.symlink_metadata()?;
        let kind = meta.file_type();
        let what = if kind.is_symlink() {
            format!("link {}", fs::read_link(&path)?.display())
        } else if kind.is_file() {
            format!("file {:x}", Sha256::digest(fs::read(&path)?))
        } else if kind.is_dir() {
            "dir".to_string()
        } else if kind.is_char_device() || kind.is_block_device() {
            format!("dev {}", meta.rdev())
        } else {
            "other".to_string()
        };
        let mode = if kind.is_symlink() {
            0
        } else {
            meta.mode() & 0o7777
        };
        out.insert(
            rel,
            format!("{what} {mode:o} {}:{}", meta.uid(), meta.gid()),
        );
    }
    Ok(out)
}

/// The files of `image` as a container sees them: its layers as an overlay
/// (through chapter 5's own Overlay), read into a `tree`.
fn merged_tree(store: &Store, image: &str) -> Result<BTreeMap<String, String>> {
    let lower: Vec<PathBuf> = store
        .layers(image)?
        .iter()
        .rev()
        .map(|d| {
            store
                .path("layers")
                .join(&d["sha256:".len()..])
                .join("diff")
        })
        .collect();
    let lower: Vec<&Path> = lower.iter().map(PathBuf::as_path).collect();
    let (_, mounted) = mount_fresh(store.dir.path(), &format!("view-{image}"), &lower)?;
    let tree = tree(&store.dir.path().join(format!("view-{image}/merged")));
    mounted.unmount()?;
    tree
}

fn differences(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            Some(w) if w == v => {}
            Some(w) => diffs.push(format!("{k}: {v} vs {w}")),
            None => diffs.push(format!("{k}: only in the first")),
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("{k}: only in the second"));
    }
    diffs
}

// ---- the tests ----

/// commit -> push -> rmi -> pull -> run: the change and the whiteout made it.
fn round_trip_through_a_registry() -> Result<()> {
    let registry = Registry::start(TAG, None)?;
    let store = Store::with_images()?;
    store.ok(&[
        "run",
        "--name",
        "cfs-h5-c1",
        "app",
        "--",
        "sh",
        "-c",
        "echo travelled > /etc/motd && rm /etc/group",
    ])?;
    store.ok(&["commit", "cfs-h5-c1", "app2"])?;
    store.ok(&["rm", "cfs-h5-c1"])?;
    let target = format!("{}/cfs/app:v2", registry.host);
    // Chunks of 100 kB: the base layer goes up in PATCH requests, the rest in one PUT.
    let out = store.ok(&["-v", "push", "--chunk-size", "100000", "app2", &target])?;
    ensure!(
        out.stderr.contains("PATCH /v2/cfs/app/blobs/uploads/"),
        "no chunked upload: {}",
        out.stderr
    );
    ensure!(out.stdout.contains("pushed in"), "{}", out.stdout);
    for image in ["app2", "app", "base"] {
        store.ok(&["rmi", image])?;
    }
    ensure!(
        fs::read_dir(store.path("layers"))?.count() == 0,
        "layers left after rmi"
    );

    let out = store.ok(&["-v", "pull", &target, "back"])?;
    ensure!(
        out.stderr
            .contains(&"GET /v2/cfs/app/manifests/v2 -> 200 (sha256:".to_string()),
        "{}",
        out.stderr
    );
    ensure!(
        store.layers("back")?.len() == 3,
        "pulled {:?}",
        store.layers("back")?
    );
    let top = store.layers("back")?.pop().context("no layer")?;
    let whiteout = store
        .path("layers")
        .join(&top["sha256:".len()..])
        .join("diff/etc/group");
    let meta = whiteout
        .symlink_metadata()
        .context("no whiteout for /etc/group in the pulled layer")?;
    ensure!(
        meta.file_type().is_char_device() && meta.rdev() == 0,
        "etc/group is not a 0/0 device"
    );
    let out = store.ok(&[
        "run",
        "--name",
        "cfs-h5-c2",
        "back",
        "--",
        "sh",
        "-c",
        "cat /etc/motd; test -e /etc/group && echo group is back || echo group is gone",
    ])?;
    ensure!(
        out.stdout == "travelled\ngroup is gone\n",
        "the container sees {:?}",
        out.stdout
    );
    store.ok(&["rm", "cfs-h5-c2"])?;

    // Pulled again under another name: no layer is downloaded twice.
    let out = store.ok(&["-v", "pull", &target, "again"])?;
    let layer_gets = out
        .stderr
        .lines()
        .filter(|l| l.contains("GET /v2/cfs/app/blobs/"))
        .count();
    ensure!(
        layer_gets == 1,
        "expected only the config to be fetched: {}",
        out.stderr
    );
    ensure!(
        out.stdout.matches("already in the store").count() == 3,
        "{}",
        out.stdout
    );
    Ok(())
}

/// skopeo and umoci read what ch05 pushed; ch05 reads what they wrote.
fn skopeo_and_umoci_read_our_push() -> Result<()> {
    let registry = Registry::start(TAG, None)?;
    let tools = Tools::new(TAG)?;
    let store = Store::with_images()?;
    let target = format!("{}/cfs/app:latest", registry.host);
    store.ok(&["push", "app", &target])?;

    // skopeo inspect: the config and the layers are the ones we made.
    let docker = format!("docker://{target}");
    let raw = ok(tools.skopeo(&["inspect", "--tls-verify=false", "--raw", &docker]))?;
    let manifest: serde_json::Value = serde_json::from_str(&raw)?;
    let config = ok(tools.skopeo(&["inspect", "--tls-verify=false", "--config", &docker]))?;
    let config: serde_json::Value = serde_json::from_str(&config)?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .context("no diff_ids")?
        .iter()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    ensure!(
        diff_ids == store.layers("app")?,
        "skopeo sees diff_ids {diff_ids:?}"
    );
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let config_bytes = ok(tools.skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        "--config",
        &docker,
    ]))?;
    ensure!(
        format!("sha256:{:x}", Sha256::digest(config_bytes.as_bytes())) == config_digest,
        "the config's digest is not the manifest's"
    );
    let layers = manifest["layers"].as_array().context("no layers")?;
    ensure!(layers.len() == 2, "{raw}");

    // skopeo copies it into a layout, umoci unpacks it: the files the container sees.
    let work = tempfile::Builder::new()
        .prefix("cfs-h5-interop-")
        .tempdir()?;
    let layout = work.path().join("oci");
    ok(tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &docker,
        &format!("oci:{}:app", layout.display()),
    ]))?;
    let bundle = work.path().join("bundle");
    ok(tools.umoci(&[
        "unpack",
        "--image",
        &format!("{}:app", layout.display()),
        &bundle.display().to_string(),
    ]))?;
    let theirs = tree(&bundle.join("rootfs"))?;
    let ours = merged_tree(&store, "app")?;
    let diffs = differences(&ours, &theirs);
    ensure!(
        diffs.is_empty(),
        "umoci's rootfs differs from ch05's merged view: {diffs:?}"
    );
    ensure!(
        !theirs.contains_key("etc/rootfs-release"),
        "the whiteout did not reach umoci"
    );

    // And back: ch05 imports the layout skopeo wrote.
    let other = Store::new()?;
    let out = other.ok(&["import", "fromskopeo", &layout.display().to_string()])?;
    ensure!(
        out.stdout.contains("image fromskopeo: 2 layers"),
        "{}",
        out.stdout
    );
    ensure!(
        other.layers("fromskopeo")? == store.layers("app")?,
        "other layers"
    );
    Ok(())
}

/// An image built with umoci from the busybox rootfs, pushed by skopeo,
/// pulled and run by ch05 with its config (Cmd, Env, WorkingDir, User).
fn we_pull_and_run_what_skopeo_pushed() -> Result<()> {
    let registry = Registry::start(TAG, None)?;
    let tools = Tools::new(TAG)?;
    let work = tempfile::Builder::new().prefix("cfs-h5-umoci-").tempdir()?;
    let layout = work.path().join("oci");
    let image = format!("{}:busybox", layout.display());
    let bundle = work.path().join("bundle");
    ok(tools.umoci(&["init", "--layout", &layout.display().to_string()]))?;
    ok(tools.umoci(&["new", "--image", &image]))?;
    ok(tools.umoci(&["unpack", "--image", &image, &bundle.display().to_string()]))?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs()?.display()))
        .arg(bundle.join("rootfs"))
        .status()?;
    ensure!(status.success(), "cp -a of the rootfs failed");
    ok(tools.umoci(&["repack", "--image", &image, &bundle.display().to_string()]))?;
    ok(tools.umoci(&[
        "config",
        "--image",
        &image,
        "--config.env=GREETING=hello from the config",
        "--config.workingdir=/tmp",
        "--config.user=65534:65534",
        "--config.entrypoint=/bin/sh",
        "--config.cmd=-c",
        "--config.cmd=echo \"$GREETING in $(pwd) as $(id -u):$(id -g)\"",
    ]))?;
    let target = format!("{}/cfs/busybox:1", registry.host);
    ok(tools.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{image}"),
        &format!("docker://{target}"),
    ]))?;

    let store = Store::new()?;
    // umoci's own layout, imported directly, holds the same layers.
    store.ok(&["import", "direct", &layout.display().to_string()])?;
    store.ok(&["pull", &target])?;
    ensure!(
        store.layers("direct")? == store.layers("busybox")?,
        "umoci's layout and the pull differ"
    );
    // The same image as a Docker schema 2 manifest (skopeo converts it): pulled alike.
    let docker = format!("{}/cfs/busybox:v2s2", registry.host);
    ok(tools.skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{image}"),
        &format!("docker://{docker}"),
    ]))?;
    let raw = ok(tools.skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{docker}"),
    ]))?;
    ensure!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "not schema 2: {raw}"
    );
    store.ok(&["pull", &docker, "schema2"])?;
    ensure!(
        store.layers("schema2")? == store.layers("busybox")?,
        "the schema 2 pull differs"
    );
    let out = store.ok(&["run", "--name", "cfs-h5-bb", "busybox"])?;
    ensure!(
        out.stdout == "hello from the config in /tmp as 65534:65534\n",
        "the config was not honoured: {:?}",
        out.stdout
    );
    store.ok(&["rm", "cfs-h5-bb"])?;
    // A command on the command line replaces Cmd, not Entrypoint.
    let out = store.ok(&[
        "run",
        "--name",
        "cfs-h5-bb2",
        "busybox",
        "--",
        "-c",
        "echo replaced",
    ])?;
    ensure!(out.stdout == "replaced\n", "{:?}", out.stdout);
    store.ok(&["rm", "cfs-h5-bb2"])?;
    Ok(())
}

/// save writes a layout umoci can unpack; load reads it back into a store.
fn save_and_load_an_oci_layout() -> Result<()> {
    let tools = Tools::new(TAG)?;
    let store = Store::with_images()?;
    let work = tempfile::Builder::new().prefix("cfs-h5-save-").tempdir()?;
    let dir = work.path().join("app-oci");
    store.ok(&["save", "app", &dir.display().to_string()])?;
    ensure!(
        fs::read_to_string(dir.join("oci-layout"))?.contains("1.0.0"),
        "no oci-layout"
    );
    // skopeo reads it as a layout too.
    let inspect = ok(tools.skopeo(&["inspect", &format!("oci:{}:app", dir.display())]))?;
    ensure!(inspect.contains("\"Layers\""), "{inspect}");
    let bundle = work.path().join("bundle");
    ok(tools.umoci(&[
        "unpack",
        "--image",
        &format!("{}:app", dir.display()),
        &bundle.display().to_string(),
    ]))?;
    let diffs = differences(&merged_tree(&store, "app")?, &tree(&bundle.join("rootfs"))?);
    ensure!(diffs.is_empty(), "umoci unpacked other files: {diffs:?}");

    let other = Store::new()?;
    other.ok(&["load", &dir.display().to_string()])?;
    ensure!(
        other.layers("app")? == store.layers("app")?,
        "load made other layers"
    );
    let out = other.ok(&["run", "--name", "cfs-h5-l", "app", "--", "hello"])?;
    ensure!(out.stdout == "hello from the app layer\n", "{}", out.stdout);
    other.ok(&["rm", "cfs-h5-l"])?;
    // A saved layout is saved again to the same bytes: the names are digests.
    let again = work.path().join("again");
    store.ok(&["save", "app", &again.display().to_string()])?;
    ensure!(
        fs::read(dir.join("index.json"))? == fs::read(again.join("index.json"))?,
        "saving twice gave two different images"
    );
    Ok(())
}

/// htpasswd Basic auth: the right password works, a wrong one is one line.
fn basic_auth() -> Result<()> {
    let registry = Registry::start(TAG, Some(("alice", "s3cret")))?;
    let store = Store::with_images()?;
    let target = format!("{}/cfs/app:latest", registry.host);
    let out = store.ok(&["-v", "push", "--user", "alice:s3cret", "base", &target])?;
    ensure!(out.stderr.contains("GET /v2/ -> 401"), "{}", out.stderr);
    ensure!(out.stderr.contains("GET /v2/ -> 200"), "{}", out.stderr);

    let before = store.snapshot()?;
    let out = store.run(&["pull", "--user", "alice:wrong", &target, "x"])?;
    ensure!(out.code == 1, "exit {}", out.code);
    one_line(&out, "refused the credentials of user alice: check --user")?;
    let out = store.run(&["pull", &target, "x"])?;
    one_line(&out, "wants a user name and password")?;
    let out = store.run(&["push", "--user", "alice:wrong", "base", &target])?;
    one_line(&out, "refused the credentials")?;
    ensure!(
        store.snapshot()? == before,
        "a refused pull changed the store"
    );

    let out = store.ok(&["pull", "--user", "alice:s3cret", &target, "x"])?;
    ensure!(out.stdout.contains("image x: 1 layer"), "{}", out.stdout);
    Ok(())
}

/// The Bearer flow against a fake registry with its own token endpoint.
fn bearer_token() -> Result<()> {
    let store = Store::with_images()?;
    let work = tempfile::Builder::new()
        .prefix("cfs-h5-bearer-")
        .tempdir()?;
    let layout = work.path().join("oci");
    store.ok(&["save", "app", &layout.display().to_string()])?;
    let fake = Fake::start(&layout, Fault::Bearer("bob:pw".into()))?;
    let target = format!("{}/cfs/app:app", fake.host);
    let other = Store::new()?;
    let out = other.run(&["pull", "--user", "bob:bad", &target])?;
    one_line(&out, "token service")?;
    let out = other.ok(&["-v", "pull", "--user", "bob:pw", &target])?;
    ensure!(
        out.stderr.contains("/token -> 200 (a token)"),
        "{}",
        out.stderr
    );
    ensure!(
        other.layers("app")? == store.layers("app")?,
        "pulled other layers"
    );
    let seen = fake
        .seen
        .lock()
        .map_err(|_| cfs_tests::anyhow!("poisoned"))?
        .clone();
    ensure!(
        seen.iter()
            .filter(|r| r.path.contains("/blobs/"))
            .all(|r| r.authorization.as_deref() == Some("Bearer cfs-test-token")),
        "a blob was fetched without the token: {:?}",
        fake.requests()
    );
    Ok(())
}

/// Registries that lie, break off or are not there: one line, exit non-zero,
/// the store as it was.
fn bad_registries_leave_nothing() -> Result<()> {
    let source = Store::with_images()?;
    let work = tempfile::Builder::new().prefix("cfs-h5-bad-").tempdir()?;
    let layout = work.path().join("oci");
    source.ok(&["save", "app", &layout.display().to_string()])?;
    let store = Store::new()?;
    store.ok(&["images"])?;
    let before = store.snapshot()?;
    let cases = [
        (Fault::WrongDigest, "app", "refused (corrupt or forged)"),
        (Fault::Truncated, "app", "broke off"),
        (
            Fault::UnknownMediaType,
            "app",
            "unknown media type \"application/vnd.cfs.unknown+json\"",
        ),
        (Fault::None, "nosuchtag", "does not exist in the registry"),
    ];
    for (fault, tag, text) in cases {
        let fake = Fake::start(&layout, fault.clone())?;
        let out = store.run(&["pull", &format!("{}/cfs/app:{tag}", fake.host)])?;
        one_line(&out, text).with_context(|| format!("{fault:?}"))?;
        ensure!(
            store.snapshot()? == before,
            "{fault:?} left {:?}",
            store.snapshot()?
        );
    }
    // The same fake, told nothing bad: the pull works, so the cases above
    // failed for their faults and not for the fake.
    let fake = Fake::start(&layout, Fault::None)?;
    store.ok(&["pull", &format!("{}/cfs/app:app", fake.host)])?;
    store.ok(&["rmi", "app"])?;

    // A real registry without the tag, and no registry at all.
    let registry = Registry::start(TAG, None)?;
    let out = store.run(&["pull", &format!("{}/cfs/none:latest", registry.host)])?;
    one_line(&out, "does not exist in the registry (MANIFEST_UNKNOWN")?;
    let port = free_port()?;
    let out = store.run(&["pull", &format!("127.0.0.1:{port}/cfs/app:latest")])?;
    one_line(&out, "no registry answers at http://127.0.0.1")?;
    let out = store.run(&["pull", "registry.example.com/cfs/app:latest"])?;
    one_line(&out, "not on this machine")?;
    ensure!(store.snapshot()? == before, "left {:?}", store.snapshot()?);
    Ok(())
}

/// A layer pushed to one repository is mounted, not uploaded, into another.
fn cross_repository_mount() -> Result<()> {
    let registry = Registry::start(TAG, None)?;
    let store = Store::with_images()?;
    store.ok(&["push", "app", &format!("{}/cfs/one:1", registry.host)])?;
    let other = Store::new()?;
    other.ok(&["pull", &format!("{}/cfs/one:1", registry.host), "app"])?;
    let out = other.ok(&["-v", "push", "app", &format!("{}/cfs/two:1", registry.host)])?;
    ensure!(
        out.stdout.matches("mounted from cfs/one").count() == 2,
        "{}",
        out.stdout
    );
    ensure!(
        out.stderr
            .contains("POST /v2/cfs/two/blobs/uploads/ -> 201"),
        "{}",
        out.stderr
    );
    // Pushed again: everything is there already.
    let out = other.ok(&["push", "app", &format!("{}/cfs/two:1", registry.host)])?;
    ensure!(
        out.stdout.matches("already in the registry").count() == 3,
        "{}",
        out.stdout
    );
    Ok(())
}

/// An index (a manifest list) with one manifest per platform: `load` and
/// `pull` take the one for linux on this machine's architecture. The other
/// platform's entry is the base image (1 layer), ours is app (2 layers).
fn an_index_gives_this_machines_platform() -> Result<()> {
    let registry = Registry::start(TAG, None)?;
    let tools = Tools::new(TAG)?;
    let store = Store::with_images()?;
    let work = tempfile::Builder::new().prefix("cfs-h5-index-").tempdir()?;
    let multi = work.path().join("multi");
    let mut entries = Vec::new();
    let here = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let elsewhere = if here == "s390x" { "riscv64" } else { "s390x" };
    for (image, arch) in [("base", elsewhere), ("app", here)] {
        let dir = work.path().join(image);
        store.ok(&["save", image, &dir.display().to_string()])?;
        fs::create_dir_all(multi.join("blobs/sha256"))?;
        for blob in fs::read_dir(dir.join("blobs/sha256"))? {
            let blob = blob?;
            fs::copy(
                blob.path(),
                multi.join("blobs/sha256").join(blob.file_name()),
            )?;
        }
        let index: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("index.json"))?)?;
        let mut entry = index["manifests"][0].clone();
        entry["annotations"] = serde_json::Value::Null;
        entry["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        entries.push(entry);
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))?;
    let digest = format!("sha256:{:x}", Sha256::digest(&index));
    fs::write(multi.join("blobs/sha256").join(&digest[7..]), &index)?;
    fs::write(
        multi.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::write(
        multi.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest,
                "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }],
        }))?,
    )?;
    let other = Store::new()?;
    other.ok(&["load", &multi.display().to_string()])?;
    ensure!(
        other.layers("multi")? == store.layers("app")?,
        "load took the other platform's image"
    );

    let target = format!("{}/cfs/multi:1", registry.host);
    ok(tools.skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", multi.display()),
        &format!("docker://{target}"),
    ]))?;
    let out = other.ok(&["-v", "pull", &target, "pulled"])?;
    ensure!(
        out.stderr.contains("GET /v2/cfs/multi/manifests/sha256:"),
        "no manifest fetched by digest from the index: {}",
        out.stderr
    );
    ensure!(
        other.layers("pulled")? == store.layers("app")?,
        "pull took the other platform's image"
    );
    Ok(())
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        root(
            "round_trip_through_a_registry",
            round_trip_through_a_registry,
        ),
        root(
            "skopeo_and_umoci_read_our_push",
            skopeo_and_umoci_read_our_push,
        ),
        root(
            "we_pull_and_run_what_skopeo_pushed",
            we_pull_and_run_what_skopeo_pushed,
        ),
        root("save_and_load_an_oci_layout", save_and_load_an_oci_layout),
        root("basic_auth", basic_auth),
        root("bearer_token", bearer_token),
        root("bad_registries_leave_nothing", bad_registries_leave_nothing),
        root("cross_repository_mount", cross_repository_mount),
        root(
            "an_index_gives_this_machines_platform",
            an_index_gives_this_machines_platform,
        ),
    ])
}
