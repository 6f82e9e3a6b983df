//! OCI images: the form in which an image leaves the machine.
//!
//! In the store an image is a name for a list of unpacked layers. To travel
//! (to a file, to a registry) it becomes three kinds of *blobs*, each named
//! by the SHA-256 of its bytes:
//!
//! ```text
//! manifest (JSON) ──config──▶ config (JSON: Env, Cmd, Entrypoint, WorkingDir,
//!    │                                User, rootfs.diff_ids = uncompressed digests)
//!    └──layers──▶ layer 1 (tar+gzip), layer 2, ...   (digests of the gzip bytes)
//! ```
//!
//! A layer has two names: its *diff_id*, the digest of the uncompressed tar
//! (the store's name for it), and the digest of the compressed blob that
//! travels. The manifest names the blobs, the config names the diff_ids, and
//! the manifest's own digest names the whole image: change one byte of one
//! layer and every name above it changes. An *index* lists manifests, one per
//! platform (linux/amd64, linux/arm64, ...).
//!
//! On disk the same blobs form an *OCI image layout* ([`save`], [`load`]):
//! `oci-layout`, `index.json` and `blobs/sha256/<hex>`, what `skopeo copy
//! ... oci:DIR:TAG` and `umoci` write. [`unpack_image`] is the one way in,
//! for a layout and for a registry ([`crate::registry`]) alike: every blob is
//! checked against its digest and size before it is used, and nothing is
//! stored unless the whole image arrived.
//!
//! What it leaves out: zstd layers, foreign layers, signatures, and the
//! history and creation dates a config may carry (a saved config holds only
//! what `run` uses).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use flate2::write::GzEncoder;
use oci_spec::image::{
    Arch, Descriptor, Digest, ImageConfiguration, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::layer::{self, short};
use crate::store::{Image, Store};

/// The annotation that gives a manifest of an index its tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Docker's media types, which registries still serve (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// What a manifest's bytes turned out to be.
#[derive(Debug)]
pub enum Manifest {
    Image(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Parses a manifest by its media type (the registry's `Content-Type`, or
/// the `mediaType` field inside). An unknown type is refused.
pub fn parse_manifest(media_type: Option<&str>, bytes: &[u8]) -> Result<Manifest> {
    let inner: Option<String> = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
    let kind = media_type
        .filter(|t| !t.is_empty() && *t != "application/json")
        .map(str::to_string)
        .or(inner)
        .unwrap_or_default();
    let image = MediaType::ImageManifest.to_string();
    let index = MediaType::ImageIndex.to_string();
    match kind.as_str() {
        k if k == image || k == DOCKER_MANIFEST => Ok(Manifest::Image(Box::new(
            ImageManifest::from_reader(bytes).context("the image manifest is not valid")?,
        ))),
        k if k == index || k == DOCKER_MANIFEST_LIST => Ok(Manifest::Index(Box::new(
            ImageIndex::from_reader(bytes).context("the image index is not valid")?,
        ))),
        other => bail!("a manifest of unknown media type {other:?}: not an image"),
    }
}

/// The manifest of an index for linux on this machine's architecture.
pub fn pick_platform(index: &ImageIndex) -> Result<Descriptor> {
    let (os, arch) = (Os::default(), Arch::default());
    let found = index.manifests().iter().find(|m| {
        m.platform()
            .as_ref()
            .is_some_and(|p| *p.os() == os && *p.architecture() == arch)
    });
    match found {
        Some(desc) => Ok(desc.clone()),
        None => bail!("the image has no manifest for {os}/{arch}"),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The hex part of a descriptor's digest; anything but sha256 is refused
/// (and so is a "digest" that is a path: `../..`).
pub fn digest_hex(digest: &Digest) -> Result<&str> {
    let text = digest.digest();
    let ok = digest.algorithm().as_ref() == "sha256"
        && text.len() == 64
        && text.chars().all(|c| c.is_ascii_hexdigit());
    if !ok {
        bail!("digest {digest} is not sha256:<64 hex digits>");
    }
    Ok(text)
}

// ANCHOR: verify
/// A writer that counts and hashes, and refuses to take more than `limit`
/// bytes: a blob larger than its descriptor says is cut off at once.
pub struct Verifier<W> {
    inner: W,
    hash: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Verifier<W> {
    pub fn new(inner: W, limit: u64) -> Self {
        Verifier {
            inner,
            hash: Sha256::new(),
            written: 0,
            limit,
        }
    }

    /// Fails unless exactly `desc.size` bytes with `desc.digest` went through.
    pub fn check(self, desc: &Descriptor) -> Result<W> {
        // LAB:BEGIN check: accept a blob only if it is what its descriptor promised; see the OCI image spec's descriptors, sha256sum(1)
        let got = format!("sha256:{}", hex_of(self.hash));
        if self.written != desc.size() {
            bail!(
                "blob {} is {} bytes, not the {} its descriptor says: refused",
                short(desc.digest().as_ref()),
                self.written,
                desc.size()
            );
        }
        if got != desc.digest().to_string() {
            bail!(
                "blob {} has digest {}: refused (corrupt or forged)",
                short(desc.digest().as_ref()),
                short(&got)
            );
        }
        Ok(self.inner)
        // LAB:END
    }
}

impl<W: Write> Write for Verifier<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::other(format!(
                "the blob is larger than the {} bytes its descriptor says",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
// ANCHOR_END: verify

fn hex_of(hash: Sha256) -> String {
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where blobs come from: a layout's `blobs/` directory or a registry.
pub trait Blobs {
    /// Writes the bytes of the blob `desc` to `out` (unverified: the caller checks).
    fn fetch(&mut self, desc: &Descriptor, out: &mut dyn Write) -> Result<()>;
}

/// Fetches a blob into a temporary file in `dir` and checks its size and
/// digest; the file is deleted when dropped.
pub fn fetch_verified(
    blobs: &mut dyn Blobs,
    desc: &Descriptor,
    dir: &Path,
) -> Result<NamedTempFile> {
    digest_hex(desc.digest())?;
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempfile_in(dir)
        .with_context(|| format!("failed to create a temporary file in {}", dir.display()))?;
    let mut verifier = Verifier::new(BufWriter::new(tmp.as_file()), desc.size());
    blobs.fetch(desc, &mut verifier)?;
    let mut out = verifier.check(desc)?;
    out.flush()
        .with_context(|| format!("failed to write {}", tmp.path().display()))?;
    drop(out);
    Ok(tmp)
}

/// Reads a small JSON blob (manifest, config) into memory, verified.
pub fn fetch_json(blobs: &mut dyn Blobs, desc: &Descriptor) -> Result<Vec<u8>> {
    digest_hex(desc.digest())?;
    if desc.size() > 4 << 20 {
        bail!("blob {} is too large for JSON", desc.digest());
    }
    let mut verifier = Verifier::new(Vec::new(), desc.size());
    blobs.fetch(desc, &mut verifier)?;
    verifier.check(desc)
}

/// What happened to one layer of an image that came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerIn {
    pub diff_id: String,
    /// false: the store had it already and it was not fetched.
    pub fetched: bool,
}

// ANCHOR: unpack_image
/// Stores the image `manifest` as `name`, fetching its config and the layers
/// the store lacks from `blobs`. Every blob is verified before it is used and
/// every layer's uncompressed digest must be the config's diff_id; on any
/// error the layers stored so far are removed again and no image is made.
pub fn unpack_image(
    store: &Store,
    name: &str,
    manifest: &ImageManifest,
    blobs: &mut dyn Blobs,
    source: Option<String>,
) -> Result<(Image, Vec<LayerIn>)> {
    // LAB:BEGIN unpack_image: add an image's verified layers to the store, and the image last, leaving nothing on failure; see the OCI image spec's manifest and config, flock(2)
    let config_bytes = fetch_json(blobs, manifest.config())?;
    let config = ImageConfiguration::from_reader(&config_bytes[..])
        .context("the image config is not valid")?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        bail!(
            "the manifest has {} layers but the config names {}: refused",
            manifest.layers().len(),
            diff_ids.len()
        );
    }
    let _lock = store.lock()?;
    store.check_new_image(name)?;
    let mut done = Vec::new();
    let mut fetch_all = || -> Result<()> {
        for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let stored = store.layer_files(diff_id)?.is_dir();
            if !stored {
                check_layer_type(desc)?;
                let tmp = fetch_verified(blobs, desc, &store.root().join("layers"))?;
                say!(
                    "unpack layer {} (diff_id {})",
                    short(desc.digest().as_ref()),
                    short(diff_id)
                );
                store.add_layer(layer::open(tmp.path())?, Some(diff_id))?;
            }
            done.push(LayerIn {
                diff_id: diff_id.clone(),
                fetched: !stored,
            });
        }
        Ok(())
    };
    if let Err(err) = fetch_all() {
        store.remove_unused_layers()?;
        return Err(err);
    }
    let image = Image {
        name: name.to_string(),
        layers: diff_ids.clone(),
        comment: source
            .clone()
            .map_or("load".to_string(), |s| format!("pull {s}")),
        config: config.config().clone(),
        source,
    };
    store.write_image(&image)?;
    Ok((image, done))
    // LAB:END
}
// ANCHOR_END: unpack_image

/// Layer blobs this chapter can unpack: tar, gzip'd tar (OCI or Docker).
fn check_layer_type(desc: &Descriptor) -> Result<()> {
    match desc.media_type() {
        MediaType::ImageLayer | MediaType::ImageLayerGzip => Ok(()),
        MediaType::Other(t) if t == DOCKER_LAYER_GZIP => Ok(()),
        other => bail!(
            "layer {} has media type {other}, which this chapter cannot unpack",
            desc.digest()
        ),
    }
}

// ---- out: the image as blobs ----

/// An image of the store as OCI blobs, ready to be written or pushed.
#[derive(Debug)]
pub struct Blobbed {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub config: Vec<u8>,
    pub config_desc: Descriptor,
    /// The gzip'd layers, bottom first, with where their bytes are.
    pub layers: Vec<(Descriptor, PathBuf)>,
}

// ANCHOR: to_blobs
/// Turns `image` into blobs: each layer tar gzip'd into `dir/<hex>`, the
/// config (with the diff_ids) and the manifest (with the blobs' digests).
/// gzip here is deterministic (no name, no time in its header), so the same
/// layer always gives the same blob and a registry that has it says so.
pub fn to_blobs(store: &Store, image: &Image, dir: &Path) -> Result<Blobbed> {
    let mut layers = Vec::new();
    for diff_id in &image.layers {
        let tar = store.layer_tar(diff_id)?;
        say!("gzip layer {} into a blob", short(diff_id));
        let tmp = NamedTempFile::new_in(dir)
            .with_context(|| format!("failed to create a file in {}", dir.display()))?;
        let mut input = BufReader::new(
            File::open(&tar).with_context(|| format!("failed to open {}", tar.display()))?,
        );
        let hashing = HashCount::new(BufWriter::new(tmp.as_file()));
        let mut gz = GzEncoder::new(hashing, flate2::Compression::default());
        io::copy(&mut input, &mut gz)
            .with_context(|| format!("failed to compress {}", tar.display()))?;
        let hashing = gz.finish().context("failed to finish the gzip stream")?;
        let (digest, size) = hashing.done()?;
        let path = dir.join(&digest["sha256:".len()..]);
        tmp.persist(&path)
            .with_context(|| format!("failed to write {}", path.display()))?;
        let desc = Descriptor::new(MediaType::ImageLayerGzip, size, parse_digest(&digest)?);
        layers.push((desc, path));
    }
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(image.layers.clone())
        .build()
        .context("failed to build the rootfs of the config")?;
    let mut config = ImageConfigurationBuilder::default()
        .architecture(Arch::default())
        .os(Os::default())
        .rootfs(rootfs)
        .build()
        .context("failed to build the image config")?;
    config.set_config(Some(image.config.clone().unwrap_or_default()));
    let config = config
        .to_string()
        .context("failed to encode the image config")?
        .into_bytes();
    let config_desc = Descriptor::new(
        MediaType::ImageConfig,
        config.len() as u64,
        parse_digest(&sha256(&config))?,
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(layers.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>())
        .build()
        .context("failed to build the manifest")?;
    let manifest = manifest
        .to_string()
        .context("failed to encode the manifest")?
        .into_bytes();
    Ok(Blobbed {
        manifest_digest: sha256(&manifest),
        manifest,
        config,
        config_desc,
        layers,
    })
}
// ANCHOR_END: to_blobs

pub fn parse_digest(text: &str) -> Result<Digest> {
    Digest::from_str(text).with_context(|| format!("{text:?} is not a digest"))
}

/// A writer that hashes and counts.
struct HashCount<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> HashCount<W> {
    fn new(inner: W) -> Self {
        HashCount {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    fn done(mut self) -> Result<(String, u64)> {
        self.inner.flush().context("failed to write a blob")?;
        Ok((format!("sha256:{}", hex_of(self.hash)), self.count))
    }
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---- the image layout on disk ----

const LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// Writes `image` to the new directory `dir` as an OCI image layout whose
/// index names the manifest by the image's name.
pub fn save(store: &Store, image: &Image, dir: &Path) -> Result<String> {
    if dir.exists()
        && fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: choose a new directory",
            dir.display()
        );
    }
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).with_context(|| format!("failed to create {}", blobs.display()))?;
    let written = to_blobs(store, image, &blobs)?;
    let put = |digest: &str, bytes: &[u8]| -> Result<()> {
        let path = blobs.join(&digest["sha256:".len()..]);
        say!("write {}", path.display());
        fs::write(&path, bytes).with_context(|| format!("failed to write {}", path.display()))
    };
    put(written.config_desc.digest().as_ref(), &written.config)?;
    put(&written.manifest_digest, &written.manifest)?;
    let mut desc = Descriptor::new(
        MediaType::ImageManifest,
        written.manifest.len() as u64,
        parse_digest(&written.manifest_digest)?,
    );
    desc.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        image.name.clone(),
    )])));
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![desc])
        .build()
        .context("failed to build the index")?;
    let index = index.to_string().context("failed to encode the index")?;
    fs::write(dir.join("index.json"), index)
        .with_context(|| format!("failed to write {}/index.json", dir.display()))?;
    fs::write(dir.join("oci-layout"), LAYOUT)
        .with_context(|| format!("failed to write {}/oci-layout", dir.display()))?;
    Ok(written.manifest_digest)
}

/// The blobs of a layout directory.
pub struct Layout {
    dir: PathBuf,
}

impl Blobs for Layout {
    fn fetch(&mut self, desc: &Descriptor, out: &mut dyn Write) -> Result<()> {
        let path = self
            .dir
            .join("blobs/sha256")
            .join(digest_hex(desc.digest())?);
        say!("read {}", path.display());
        let mut file = File::open(&path)
            .with_context(|| format!("the layout lacks blob {}", desc.digest()))?;
        io::copy(&mut file, out).with_context(|| format!("failed to read {}", path.display()))?;
        Ok(())
    }
}

/// Stores the image of the layout `dir` whose index entry is tagged
/// `reference` (or its only entry) as `name` (default: that tag).
pub fn load(
    store: &Store,
    dir: &Path,
    reference: Option<&str>,
    name: Option<&str>,
) -> Result<(Image, Vec<LayerIn>)> {
    let marker = dir.join("oci-layout");
    let text = fs::read_to_string(&marker).with_context(|| {
        format!(
            "{} is not an OCI image layout (no oci-layout file)",
            dir.display()
        )
    })?;
    if !text.contains("imageLayoutVersion") {
        bail!("{} is not an OCI image layout file", marker.display());
    }
    let index_path = dir.join("index.json");
    let index = ImageIndex::from_file(&index_path)
        .with_context(|| format!("{} is not valid", index_path.display()))?;
    let tag =
        |d: &Descriptor| -> Option<String> { d.annotations().as_ref()?.get(REF_NAME).cloned() };
    let entries = index.manifests();
    let desc = match reference {
        Some(r) => entries.iter().find(|d| tag(d).as_deref() == Some(r)),
        None if entries.len() == 1 => entries.first(),
        None => None,
    };
    let Some(desc) = desc else {
        let tags: Vec<String> = entries.iter().filter_map(tag).collect();
        bail!(
            "{} holds {}: choose one with --tag: {}",
            dir.display(),
            match reference {
                Some(r) => format!("no image tagged {r}"),
                None => "several images".to_string(),
            },
            tags.join(", ")
        );
    };
    let name = match (name, tag(desc)) {
        (Some(n), _) => n.to_string(),
        (None, Some(t)) => t,
        (None, None) => bail!("the image in {} has no tag: give it a name", dir.display()),
    };
    let mut blobs = Layout {
        dir: dir.to_path_buf(),
    };
    let bytes = fetch_json(&mut blobs, desc)?;
    let manifest = match parse_manifest(Some(desc.media_type().as_ref()), &bytes)? {
        Manifest::Image(m) => m,
        Manifest::Index(i) => {
            let inner = pick_platform(&i)?;
            match parse_manifest(None, &fetch_json(&mut blobs, &inner)?)? {
                Manifest::Image(m) => m,
                Manifest::Index(_) => bail!("an index inside an index inside an index: refused"),
            }
        }
    };
    unpack_image(store, &name, &manifest, &mut blobs, None)
}

// ---- the config, honoured by run ----

/// What `run` starts, from the image's config and the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub argv: Vec<String>,
    /// The config's `Env` (`KEY=VALUE`): the whole environment when given.
    pub env: Option<Vec<String>>,
    pub cwd: Option<String>,
    /// The config's `User`: `uid`, `uid:gid`, `name` or `name:group`.
    pub user: Option<String>,
}

// ANCHOR: process
/// Docker's rule: the command line replaces `Cmd` but not `Entrypoint`;
/// with neither an entrypoint nor a command there is nothing to run.
pub fn process(
    config: Option<&oci_spec::image::Config>,
    argv: &[String],
) -> anyhow::Result<Process> {
    let empty = oci_spec::image::Config::default();
    let config = config.unwrap_or(&empty);
    let mut full: Vec<String> = config.entrypoint().clone().unwrap_or_default();
    if argv.is_empty() {
        full.extend(config.cmd().clone().unwrap_or_default());
    } else {
        full.extend(argv.iter().cloned());
    }
    if full.is_empty() {
        bail!("no command given and the image has no Cmd or Entrypoint: add one after --");
    }
    Ok(Process {
        argv: full,
        env: config.env().clone().filter(|e| !e.is_empty()),
        cwd: config.working_dir().clone().filter(|d| !d.is_empty()),
        user: config.user().clone().filter(|u| !u.is_empty()),
    })
}
// ANCHOR_END: process

// ANCHOR: enter_config
/// In the child, after pivot_root: the image config's environment, working
/// directory and user. The user goes last: after `setuid(2)` to a user that
/// is not root, nothing else could be changed.
pub fn enter_config(process: &Process, user: Option<(u32, u32)>) -> Result<()> {
    if let Some(env) = &process.env {
        say!("environment from the image config: {env:?}");
        for (key, _) in std::env::vars_os() {
            std::env::remove_var(key);
        }
        for pair in env {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            std::env::set_var(key, value);
        }
    }
    if let Some(dir) = &process.cwd {
        say!("chdir({dir:?})");
        std::env::set_current_dir(dir)
            .with_context(|| format!("failed to enter the image's WorkingDir {dir}"))?;
    }
    if let Some((uid, gid)) = user {
        say!("setgroups([{gid}]); setgid({gid}); setuid({uid})");
        let gid = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setgroups(&[gid]).context("failed to set the groups")?;
        nix::unistd::setgid(gid).with_context(|| format!("failed to set gid {gid}"))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
            .with_context(|| format!("failed to set uid {uid}"))?;
    }
    Ok(())
}
// ANCHOR_END: enter_config

/// The numeric uid and gid of a config's `User`, names looked up in the
/// container's own `/etc/passwd` and `/etc/group` (never the host's).
pub fn resolve_user(root: &Path, user: &str) -> Result<(u32, u32)> {
    let (name, group) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    let lookup = |file: &str, key: &str| -> Result<Option<(u32, u32)>> {
        let path = root.join(file);
        let text = fs::read_to_string(&path).unwrap_or_default();
        Ok(text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&key)).then(|| {
                let id = fields.get(2)?.parse().ok()?;
                let gid = fields.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
                Some((id, gid))
            })?
        }))
    };
    let (uid, mut gid) = match name.parse::<u32>() {
        Ok(uid) => (uid, lookup_by_uid(root, uid).unwrap_or(0)),
        Err(_) => lookup("etc/passwd", name)?.with_context(|| {
            format!("user {name} of the image's config is not in its /etc/passwd")
        })?,
    };
    if let Some(group) = group {
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup("etc/group", group)?
                .map(|(g, _)| g)
                .with_context(|| {
                    format!("group {group} of the image's config is not in its /etc/group")
                })?,
        };
    }
    Ok((uid, gid))
}

/// The primary group of uid in the container's `/etc/passwd`.
fn lookup_by_uid(root: &Path, uid: u32) -> Option<u32> {
    let text = fs::read_to_string(root.join("etc/passwd")).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields.get(3)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::ConfigBuilder;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_command_line_replaces_cmd_not_entrypoint() -> Result<()> {
        let config = ConfigBuilder::default()
            .entrypoint(strings(&["/bin/sh", "-c"]))
            .cmd(strings(&["echo default"]))
            .env(strings(&["A=1"]))
            .working_dir("/srv")
            .build()?;
        let p = process(Some(&config), &[])?;
        assert_eq!(p.argv, strings(&["/bin/sh", "-c", "echo default"]));
        assert_eq!(
            (p.env, p.cwd),
            (Some(strings(&["A=1"])), Some("/srv".to_string()))
        );
        let p = process(Some(&config), &strings(&["echo given"]))?;
        assert_eq!(p.argv, strings(&["/bin/sh", "-c", "echo given"]));
        assert!(process(None, &[]).is_err());
        assert_eq!(process(None, &strings(&["true"]))?.argv, strings(&["true"]));
        Ok(())
    }

    #[test]
    fn manifests_are_read_by_media_type() {
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(Some("application/vnd.oci.image.manifest.v1+json"), manifest),
            Ok(Manifest::Image(_))
        ));
        assert!(matches!(
            parse_manifest(Some(DOCKER_MANIFEST), manifest),
            Ok(Manifest::Image(_))
        ));
        let err = parse_manifest(Some("application/vnd.cfs.unknown+json"), manifest);
        assert!(
            format!("{:#}", err.err().map(|e| e.to_string()).unwrap_or_default())
                .contains("unknown media type")
        );
    }

    #[test]
    fn a_blob_must_have_its_size_and_digest() -> Result<()> {
        let desc = Descriptor::new(MediaType::ImageConfig, 2, parse_digest(&sha256(b"{}"))?);
        let mut good = Verifier::new(Vec::new(), 2);
        good.write_all(b"{}")?;
        assert_eq!(good.check(&desc)?, b"{}");
        let mut changed = Verifier::new(Vec::new(), 2);
        changed.write_all(b"[]")?;
        assert!(changed.check(&desc).is_err());
        let mut short = Verifier::new(Vec::new(), 2);
        short.write_all(b"{")?;
        assert!(short.check(&desc).is_err());
        let mut long = Verifier::new(Vec::new(), 2);
        assert!(long.write_all(b"{} ").is_err());
        assert!(digest_hex(&parse_digest(&sha256(b""))?).is_ok());
        // Another algorithm is refused, even with 64 hex digits: the store
        // names its files after sha256 digests only.
        let other = format!("blake3:{}", "ab".repeat(32));
        assert!(digest_hex(&parse_digest(&other)?).is_err(), "{other}");
        Ok(())
    }
}
