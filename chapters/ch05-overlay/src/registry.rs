//! A registry client: `pull` and `push` over the OCI distribution API.
//!
//! A registry is a web server that stores the blobs of [`crate::oci`] by
//! digest and maps tags to manifests. Every request is plain HTTP:
//!
//! ```text
//! GET  /v2/                                    is this a registry? (200, or 401: log in)
//! GET  /v2/REPO/manifests/TAG                  the manifest (Accept: the types we read)
//! GET  /v2/REPO/blobs/DIGEST                   a config or a layer
//! HEAD /v2/REPO/blobs/DIGEST                   does the registry have it? (push)
//! POST /v2/REPO/blobs/uploads/[?mount=D&from=R] start an upload (or mount it from R)
//! PATCH LOCATION                               a chunk of it (Content-Range)
//! PUT  LOCATION?digest=DIGEST                  the rest; the registry checks the digest
//! PUT  /v2/REPO/manifests/TAG                  the manifest last: the tag now exists
//! ```
//!
//! A `401` says how to log in in its `WWW-Authenticate` header: `Basic` (send
//! the user and password with every request) or `Bearer realm=...` (ask the
//! token service at that URL for a token, send the token).
//!
//! What it leaves out: TLS. Registries on this machine (`127.0.0.1`,
//! `localhost`) are spoken to in plain http, as Docker treats them as
//! insecure registries; any other host is refused. Also left out: resuming
//! an interrupted download, parallel layer downloads, a credentials store
//! (`docker login`), and every registry's quirks (Docker Hub's `library/`).

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use ch01_uts::say;
use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use crate::layer::short;
use crate::oci::{self, Blobs, LayerIn, Manifest};
use crate::store::{Image, Store};

/// `HOST[:PORT]/REPO[:TAG|@DIGEST]`, e.g. `127.0.0.1:5000/cfs/app:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repository: String,
    /// A tag, or a digest (`sha256:...`).
    pub tag: String,
}

impl std::str::FromStr for Reference {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Reference> {
        let usage = || {
            anyhow!("{text:?} is not HOST[:PORT]/REPOSITORY[:TAG], e.g. 127.0.0.1:5000/cfs/app:v1")
        };
        let (host, rest) = text.split_once('/').ok_or_else(usage)?;
        if !(host.contains(':') || host.contains('.') || host == "localhost") {
            return Err(usage());
        }
        let (repository, tag) = match rest.split_once('@') {
            Some((repo, digest)) => (repo, digest.to_string()),
            None => match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo, tag.to_string()),
                _ => (rest, "latest".to_string()),
            },
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c));
        if !repo_ok || !tag_ok {
            return Err(usage());
        }
        Ok(Reference {
            host: host.to_string(),
            repository: repository.to_string(),
            tag,
        })
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sep = if self.tag.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        write!(f, "{}/{}{sep}{}", self.host, self.repository, self.tag)
    }
}

impl Reference {
    /// `http://HOST`: only for registries on this machine (no TLS here).
    fn base_url(&self) -> Result<String> {
        let name = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(h, _)| h);
        let local = name == "localhost" || name.starts_with("127.") || name == "[::1]";
        if !local {
            bail!(
                "registry {} is not on this machine: this chapter speaks plain http to \
                 127.0.0.1 and localhost only (no TLS)",
                self.host
            );
        }
        Ok(format!("http://{}", self.host))
    }

    /// The image name `pull` gives by default: the repository's last part.
    pub fn default_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }
}

/// The media types `pull` accepts for a manifest, OCI's and Docker's.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// A request body that can be sent again (after a 401).
enum Body<'a> {
    Empty,
    Bytes(&'a [u8], &'a str),
    /// A file's byte range, as `application/octet-stream`.
    File(&'a Path, u64, u64),
}

/// A connection to one repository of one registry.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    reference: Reference,
    /// `USER:PASSWORD` for a registry that asks.
    credentials: Option<String>,
    /// The `Authorization` header that worked.
    authorization: Option<String>,
    progress: bool,
}

impl Client {
    pub fn new(reference: &Reference, credentials: Option<String>) -> Result<Client> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_secs(60))
            .redirects(0)
            .build();
        Ok(Client {
            agent,
            base: reference.base_url()?,
            reference: reference.clone(),
            credentials,
            authorization: None,
            progress: std::io::stderr().is_terminal(),
        })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/v2/{}/{rest}", self.reference.repository)
    }

    // ANCHOR: send
    /// Sends one request, narrated as `METHOD PATH -> STATUS (digest)`. A 401
    /// is answered once: with Basic credentials or a Bearer token, as the
    /// registry's `WWW-Authenticate` asks; a second 401 is a refusal.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Body,
    ) -> Result<ureq::Response> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}{url}", self.base)
        };
        let shown = url.strip_prefix(&self.base).unwrap_or(&url);
        let shown = shown.split('?').next().unwrap_or(shown).to_string();
        for attempt in 0..2 {
            let mut request = self.agent.request(method, &url);
            for (name, value) in headers {
                request = request.set(name, value);
            }
            if let Some(auth) = &self.authorization {
                request = request.set("Authorization", auth);
            }
            let result = match body {
                Body::Empty => request.call(),
                Body::Bytes(bytes, kind) => request.set("Content-Type", kind).send_bytes(bytes),
                Body::File(path, offset, len) => {
                    let mut file = File::open(path)
                        .with_context(|| format!("failed to open {}", path.display()))?;
                    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*offset))
                        .with_context(|| format!("failed to read {}", path.display()))?;
                    request
                        .set("Content-Type", "application/octet-stream")
                        .set("Content-Length", &len.to_string())
                        .send(file.take(*len))
                }
            };
            let response = match result {
                Ok(response) => response,
                Err(ureq::Error::Status(code, response)) => {
                    say!("{method} {shown} -> {code}");
                    if code == 401 && attempt == 0 {
                        let challenge = response
                            .header("WWW-Authenticate")
                            .unwrap_or_default()
                            .to_string();
                        self.authorization = Some(self.log_in(&challenge)?);
                        continue;
                    }
                    return Err(self.refusal(method, &shown, code, response));
                }
                Err(ureq::Error::Transport(err)) => {
                    say!("{method} {shown} -> {err}");
                    bail!(
                        "no registry answers at {} ({}): is it running?",
                        self.base,
                        err.kind()
                    );
                }
            };
            let digest = response
                .header("Docker-Content-Digest")
                .map(|d| format!(" ({})", short(d)))
                .unwrap_or_default();
            say!("{method} {shown} -> {}{digest}", response.status());
            return Ok(response);
        }
        bail!(
            "registry {} asked for credentials again after it had them",
            self.reference.host
        )
    }
    // ANCHOR_END: send

    /// The error for a refused request, with the registry's own error code.
    fn refusal(
        &self,
        method: &str,
        path: &str,
        code: u16,
        response: ureq::Response,
    ) -> anyhow::Error {
        let text = response.into_string().unwrap_or_default();
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("errors")?.get(0)?;
                Some(format!(
                    "{}: {}",
                    e.get("code")?.as_str()?,
                    e.get("message")?.as_str().unwrap_or("")
                ))
            })
            .unwrap_or_else(|| format!("HTTP {code}"));
        match code {
            401 => anyhow!(
                "registry {} refused the credentials{} ({reason})",
                self.reference.host,
                match &self.credentials {
                    Some(c) => format!(
                        " of user {}: check --user",
                        c.split(':').next().unwrap_or("")
                    ),
                    None => ": give --user USER:PASSWORD".to_string(),
                }
            ),
            404 if path.contains("/manifests/") => anyhow!(
                "{} does not exist in the registry ({reason})",
                self.reference
            ),
            _ => anyhow!("{method} {path} failed: {reason}"),
        }
    }

    // ANCHOR: log_in
    /// The `Authorization` header a `WWW-Authenticate` challenge asks for.
    fn log_in(&mut self, challenge: &str) -> Result<String> {
        let basic = |credentials: &Option<String>| -> Result<String> {
            match credentials {
                Some(c) => Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(c)
                )),
                None => bail!(
                    "registry {} wants a user name and password: give --user USER:PASSWORD",
                    self.reference.host
                ),
            }
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            say!("the registry asks for Basic credentials");
            return basic(&self.credentials);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            bail!(
                "registry {} asks for {scheme:?} authentication, which this chapter does not speak",
                self.reference.host
            );
        }
        let param = |key: &str| -> Option<String> {
            params.split(',').find_map(|p| {
                let (k, v) = p.trim().split_once('=')?;
                (k == key).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm =
            param("realm").context("the Bearer challenge names no realm (token service)")?;
        let mut request = self.agent.get(&realm);
        for key in ["service", "scope"] {
            if let Some(value) = param(key) {
                request = request.query(key, &value);
            }
        }
        if self.credentials.is_some() {
            request = request.set("Authorization", &basic(&self.credentials)?);
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => {
                say!("GET {realm} -> {code}");
                bail!(
                    "the token service of {} refused us (HTTP {code}): check --user",
                    self.reference.host
                )
            }
            Err(err) => bail!("the token service {realm} does not answer: {err}"),
        };
        say!("GET {realm} -> {} (a token)", response.status());
        let text = response
            .into_string()
            .context("the token service sent nothing")?;
        let json: serde_json::Value =
            serde_json::from_str(&text).context("the token service sent no JSON")?;
        let token = json
            .get("token")
            .or_else(|| json.get("access_token"))
            .and_then(|t| t.as_str())
            .context("the token service sent no token")?;
        Ok(format!("Bearer {token}"))
    }
    // ANCHOR_END: log_in

    /// `GET /v2/`: is there a registry, and does it speak this API?
    pub fn ping(&mut self) -> Result<()> {
        self.send("GET", "/v2/", &[], &Body::Empty)?;
        Ok(())
    }

    /// Fetches a manifest by tag or digest; returns its media type and bytes.
    /// The bytes must have the digest asked for (or the one the registry says).
    fn manifest(&mut self, tag: &str, expected: Option<&Descriptor>) -> Result<Manifest> {
        let path = self.repo_path(&format!("manifests/{tag}"));
        let response = self.send("GET", &path, &[("Accept", ACCEPT)], &Body::Empty)?;
        let kind = response.content_type().to_string();
        let said = response.header("Docker-Content-Digest").map(str::to_string);
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(4 << 20)
            .read_to_end(&mut bytes)
            .context("failed to read the manifest")?;
        let got = oci::sha256(&bytes);
        let wanted = match expected {
            Some(desc) => {
                if desc.size() != bytes.len() as u64 {
                    bail!(
                        "manifest {} has the wrong size: refused",
                        short(desc.digest().as_ref())
                    );
                }
                Some(desc.digest().to_string())
            }
            None if tag.starts_with("sha256:") => Some(tag.to_string()),
            None => said,
        };
        if let Some(wanted) = wanted.filter(|w| *w != got) {
            bail!(
                "manifest {} arrived with digest {}: refused",
                short(&wanted),
                short(&got)
            );
        }
        oci::parse_manifest(Some(&kind), &bytes)
    }
}

// ANCHOR: fetch
impl Blobs for Client {
    /// `GET /v2/REPO/blobs/DIGEST`, streamed to `out` (which verifies), with
    /// a progress line on a terminal.
    fn fetch(&mut self, desc: &Descriptor, out: &mut dyn Write) -> Result<()> {
        let digest = desc.digest().to_string();
        let path = self.repo_path(&format!("blobs/{digest}"));
        let response = self.send("GET", &path, &[], &Body::Empty)?;
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; 64 << 10];
        let mut done = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .with_context(|| format!("the download of blob {} broke off", short(&digest)))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])
                .with_context(|| format!("blob {} refused", short(&digest)))?;
            done += n as u64;
            if self.progress {
                eprint!(
                    "\r{}: {} / {} KiB",
                    short(&digest),
                    done >> 10,
                    desc.size() >> 10
                );
            }
        }
        if self.progress {
            eprintln!();
        }
        Ok(())
    }
}
// ANCHOR_END: fetch

// ANCHOR: pull
/// Pulls `reference` into the store as image `name`: the manifest (from an
/// index, the one for this machine), the config, and the layers the store
/// does not have yet, each verified before it is used.
pub fn pull(
    store: &Store,
    reference: &Reference,
    name: &str,
    credentials: Option<String>,
) -> Result<(Image, Vec<LayerIn>)> {
    let mut client = Client::new(reference, credentials)?;
    client.ping()?;
    let manifest: ImageManifest = match client.manifest(&reference.tag, None)? {
        Manifest::Image(m) => *m,
        Manifest::Index(index) => {
            let desc = oci::pick_platform(&index)?;
            match client.manifest(desc.digest().as_ref(), Some(&desc))? {
                Manifest::Image(m) => *m,
                Manifest::Index(_) => bail!("an index inside an index: refused"),
            }
        }
    };
    let source = format!("{}/{}", reference.host, reference.repository);
    oci::unpack_image(store, name, &manifest, &mut client, Some(source))
}
// ANCHOR_END: pull

/// What `push` did with one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The registry had it already (`HEAD` said 200).
    Exists,
    /// Mounted from another repository of the same registry, no bytes sent.
    Mounted(String),
    /// Uploaded in this many requests (1: monolithic; more: chunks).
    Uploaded(usize),
}

impl std::fmt::Display for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sent::Exists => write!(f, "already in the registry"),
            Sent::Mounted(from) => write!(f, "mounted from {from}"),
            Sent::Uploaded(1) => write!(f, "pushed"),
            Sent::Uploaded(n) => write!(f, "pushed in {n} chunks"),
        }
    }
}

impl Client {
    // ANCHOR: upload
    /// Makes sure the registry has blob `desc` (bytes at `path`): `HEAD`, else
    /// a mount from `from`, else an upload, in chunks of `chunk` bytes.
    fn upload(
        &mut self,
        desc: &Descriptor,
        path: &Path,
        from: Option<&str>,
        chunk: u64,
    ) -> Result<Sent> {
        let digest = desc.digest().to_string();
        let head = self.repo_path(&format!("blobs/{digest}"));
        match self.send("HEAD", &head, &[], &Body::Empty) {
            Ok(_) => return Ok(Sent::Exists),
            Err(err) if err.to_string().contains("HTTP 404") => {}
            Err(err) => return Err(err),
        }
        let start = match from {
            Some(from) => self.repo_path(&format!("blobs/uploads/?mount={digest}&from={from}")),
            None => self.repo_path("blobs/uploads/"),
        };
        let response = self.send("POST", &start, &[], &Body::Empty)?;
        if response.status() == 201 {
            return Ok(Sent::Mounted(from.unwrap_or_default().to_string()));
        }
        let mut location = location(&response)?;
        let size = desc.size();
        let mut chunks = 0;
        let mut offset = 0;
        if size > chunk {
            while offset < size {
                let len = chunk.min(size - offset);
                let range = format!("{}-{}", offset, offset + len - 1);
                let response = self.send(
                    "PATCH",
                    &location,
                    &[("Content-Range", &range)],
                    &Body::File(path, offset, len),
                )?;
                location = location_of(&response, &location)?;
                offset += len;
                chunks += 1;
            }
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let body = if offset < size {
            Body::File(path, 0, size)
        } else {
            Body::Empty
        };
        self.send("PUT", &put, &[], &body)?;
        Ok(Sent::Uploaded(chunks.max(1)))
    }
    // ANCHOR_END: upload
}

fn location(response: &ureq::Response) -> Result<String> {
    response
        .header("Location")
        .map(str::to_string)
        .context("the registry started an upload without a Location")
}

fn location_of(response: &ureq::Response, old: &str) -> Result<String> {
    Ok(response
        .header("Location")
        .map(str::to_string)
        .unwrap_or_else(|| old.to_string()))
}

/// The result of a push: per blob what happened, and the manifest's digest.
#[derive(Debug)]
pub struct Pushed {
    pub layers: Vec<(String, Sent)>,
    pub config: (String, Sent),
    pub digest: String,
}

// ANCHOR: push
/// Pushes image `name` to `reference`: each layer gzip'd and uploaded unless
/// the registry has it, then the config, then the manifest under the tag.
pub fn push(
    store: &Store,
    name: &str,
    reference: &Reference,
    credentials: Option<String>,
    chunk: u64,
) -> Result<Pushed> {
    if reference.tag.starts_with("sha256:") {
        bail!("push to a tag, not a digest: the digest is the manifest's own");
    }
    let image = store.image(name)?;
    let _lock = store.lock()?;
    let tmp = tempfile::Builder::new()
        .prefix(".push-")
        .tempdir_in(store.root())
        .context("failed to create a directory for the blobs")?;
    let blobs = oci::to_blobs(store, &image, tmp.path())?;
    let mut client = Client::new(reference, credentials)?;
    client.ping()?;
    // A layer pulled from another repository of this registry can be mounted.
    let from = image
        .source
        .as_deref()
        .and_then(|s| s.strip_prefix(&format!("{}/", reference.host)));
    let from = from.filter(|f| *f != reference.repository);
    let mut layers = Vec::new();
    for (desc, path) in &blobs.layers {
        let sent = client.upload(desc, path, from, chunk.max(1))?;
        println!("layer {}: {sent}", short(desc.digest().as_ref()));
        layers.push((desc.digest().to_string(), sent));
    }
    let config_path = tmp.path().join("config.json");
    std::fs::write(&config_path, &blobs.config)
        .with_context(|| format!("failed to write {}", config_path.display()))?;
    let sent = client.upload(&blobs.config_desc, &config_path, None, chunk.max(1))?;
    println!(
        "config {}: {sent}",
        short(blobs.config_desc.digest().as_ref())
    );
    let config = (blobs.config_desc.digest().to_string(), sent);
    let path = client.repo_path(&format!("manifests/{}", reference.tag));
    let kind = MediaType::ImageManifest.to_string();
    let response = client.send("PUT", &path, &[], &Body::Bytes(&blobs.manifest, &kind))?;
    if let Some(said) = response.header("Docker-Content-Digest") {
        if said != blobs.manifest_digest {
            bail!(
                "the registry stored the manifest as {said}, not {}",
                blobs.manifest_digest
            );
        }
    }
    Ok(Pushed {
        layers,
        config,
        digest: blobs.manifest_digest,
    })
}
// ANCHOR_END: push

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_host_a_repository_and_a_tag() -> Result<()> {
        let r: Reference = "127.0.0.1:5000/cfs/app:v1".parse()?;
        assert_eq!(
            (r.host.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "cfs/app", "v1")
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/cfs/app:v1");
        let r: Reference = "localhost/app".parse()?;
        assert_eq!((r.tag.as_str(), r.default_name()), ("latest", "app"));
        let digest = format!("sha256:{}", "ab".repeat(32));
        let r: Reference = format!("localhost:5000/a/b@{digest}").parse()?;
        assert_eq!(r.tag, digest);
        assert_eq!(r.to_string(), format!("localhost:5000/a/b@{digest}"));
        // A repository's parts may hold digits, dots, dashes, underscores.
        let r: Reference = "localhost/my-org/app_2.0".parse()?;
        assert_eq!(r.repository, "my-org/app_2.0");
        // No registry host, upper case, empty parts, a path in the tag.
        for bad in [
            "app:v1",
            "127.0.0.1:5000/App",
            "127.0.0.1:5000//x",
            "localhost/a:b/c",
            "localhost/a:",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad} was accepted");
        }
        Ok(())
    }

    #[test]
    fn only_registries_on_this_machine_are_spoken_to() -> Result<()> {
        let local: Reference = "127.0.0.1:5000/a".parse()?;
        assert_eq!(local.base_url()?, "http://127.0.0.1:5000");
        let remote: Reference = "registry.example.com/a".parse()?;
        assert!(remote.base_url().is_err());
        Ok(())
    }
}
