//! Registries for the image tests: the real one and a fake one.
//!
//! [`Registry`] runs Debian's `docker-registry` (CNCF Distribution, the
//! registry Docker Hub grew from) on `127.0.0.1` at a free port, with its
//! storage and config in a temporary directory, optionally behind htpasswd
//! Basic authentication; dropping it kills it (by its PID) and deletes the
//! directory. [`Fake`] is a tiny HTTP server in a thread, for what a real
//! registry never does: serve a blob with the wrong digest, cut a blob short,
//! answer with a manifest of an unknown type, or ask for a Bearer token. It
//! serves the blobs of an OCI image layout directory. [`Tools::skopeo`] and
//! [`Tools::umoci`] are the other side of every interop check; skopeo gets a
//! policy file and a registries.conf of its own (never the host's
//! /etc/containers).

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

/// A port on 127.0.0.1 that nothing listens on (at the moment of asking).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A running `docker-registry`.
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub host: String,
    dir: TempDir,
    child: Child,
}

impl Registry {
    /// Starts a registry; with `auth`, it wants that user and password.
    pub fn start(tag: &str, auth: Option<(&str, &str)>) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cfs-{tag}-registry-"))
            .tempdir()
            .context("failed to create the registry's directory")?;
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .context("failed to run htpasswd (apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let file = dir.path().join("htpasswd");
            fs::write(&file, &out.stdout)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: cfs\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config)?;
        let log = fs::File::create(dir.path().join("log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("failed to start docker-registry (Debian package docker-registry)")?;
        let registry = Registry { host, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&registry.host).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not listen on {}: {}",
                    registry.host,
                    registry.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    /// What the registry logged.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary signature policy that accepts anything, for skopeo.
pub struct Tools {
    dir: TempDir,
}

impl Tools {
    pub fn new(tag: &str) -> Result<Tools> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cfs-{tag}-skopeo-"))
            .tempdir()?;
        fs::write(
            dir.path().join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )?;
        fs::write(dir.path().join("registries.conf"), "")?;
        Ok(Tools { dir })
    }

    /// `skopeo --policy TMP/policy.json ARGS...`, with an empty registries.conf.
    pub fn skopeo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("skopeo");
        cmd.arg("--policy")
            .arg(self.dir.path().join("policy.json"))
            .args(["--registries-conf"])
            .arg(self.dir.path().join("registries.conf"))
            .args(args)
            .env("TMPDIR", self.dir.path());
        cmd
    }

    /// `umoci ARGS...`
    pub fn umoci(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("umoci");
        cmd.args(args);
        cmd
    }
}

/// Runs a tool and fails with its stderr unless it succeeds; returns stdout.
pub fn ok(mut cmd: Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .with_context(|| format!("failed to run {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the fake registry does wrong (or asks for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a correct, if tiny, registry.
    None,
    /// Serves layer blobs with one byte changed.
    WrongDigest,
    /// Announces a layer's full length, sends half of it, and hangs up.
    Truncated,
    /// Serves the manifest as `application/vnd.cfs.unknown+json`.
    UnknownMediaType,
    /// Wants a Bearer token from its own `/token`, for this `USER:PASSWORD`.
    Bearer(String),
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
}

/// A tiny registry serving, read only, the layout `dir` as repository `cfs/app`.
pub struct Fake {
    pub host: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub fn start(layout: &Path, fault: Fault) -> Result<Fake> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let host = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(Served {
            layout: layout.to_path_buf(),
            fault,
            host: host.clone(),
        });
        let thread = {
            let stop = stop.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // A thread per connection: a client may hold one open while it opens another.
                        let (state, seen) = (state.clone(), seen.clone());
                        std::thread::spawn(move || state.serve(stream, &seen));
                    }
                }
            })
        };
        Ok(Fake {
            host,
            stop,
            thread: Some(thread),
            seen,
        })
    }

    /// The requests made so far, as `METHOD PATH`.
    pub fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|s| {
                s.iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.host);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Served {
    layout: PathBuf,
    fault: Fault,
    host: String,
}

const TOKEN: &str = "cfs-test-token";

impl Served {
    fn serve(&self, mut stream: TcpStream, seen: &Mutex<Vec<Seen>>) -> Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or("").to_string();
            let path = parts.next().unwrap_or("").to_string();
            let mut headers = HashMap::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header)?;
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            let authorization = headers.get("authorization").cloned();
            if let Ok(mut seen) = seen.lock() {
                seen.push(Seen {
                    method: method.clone(),
                    path: path.clone(),
                    authorization: authorization.clone(),
                });
            }
            let reply = self.answer(&method, &path, authorization.as_deref());
            let keep = reply.write(&mut stream, method == "HEAD")?;
            if !keep {
                return Ok(());
            }
        }
    }

    fn answer(&self, method: &str, path: &str, authorization: Option<&str>) -> Reply {
        if let Fault::Bearer(credentials) = &self.fault {
            if path.starts_with("/token") {
                let want = format!("Basic {}", base64(credentials.as_bytes()));
                if authorization != Some(want.as_str()) {
                    return Reply::status(401);
                }
                return Reply::json(
                    200,
                    format!("{{\"token\":\"{TOKEN}\"}}").into_bytes(),
                    "application/json",
                );
            }
            if authorization != Some(&format!("Bearer {TOKEN}")) {
                let mut reply = Reply::json(
                    401,
                    b"{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"token needed\"}]}"
                        .to_vec(),
                    "application/json",
                );
                reply.headers.push((
                    "WWW-Authenticate".into(),
                    format!(
                        "Bearer realm=\"http://{}/token\",service=\"cfs-fake\",scope=\"repository:cfs/app:pull\"",
                        self.host
                    ),
                ));
                return reply;
            }
        }
        if method != "GET" && method != "HEAD" {
            return Reply::status(405);
        }
        if path == "/v2/" {
            return Reply::json(200, b"{}".to_vec(), "application/json");
        }
        let blob = |digest: &str| -> Option<Vec<u8>> {
            let hex = digest.strip_prefix("sha256:")?;
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return None;
            }
            fs::read(self.layout.join("blobs/sha256").join(hex)).ok()
        };
        if let Some(tag) = path.strip_prefix("/v2/cfs/app/manifests/") {
            let Some(bytes) = self.manifest(tag) else {
                return Reply::json(404, b"{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}".to_vec(), "application/json");
            };
            let kind = if self.fault == Fault::UnknownMediaType {
                "application/vnd.cfs.unknown+json"
            } else {
                "application/vnd.oci.image.manifest.v1+json"
            };
            return Reply::json(200, bytes, kind);
        }
        if let Some(digest) = path.strip_prefix("/v2/cfs/app/blobs/") {
            let Some(mut bytes) = blob(digest) else {
                return Reply::status(404);
            };
            let is_layer = bytes.starts_with(&[0x1f, 0x8b]);
            let mut reply = Reply::json(200, Vec::new(), "application/octet-stream");
            if is_layer && self.fault == Fault::WrongDigest {
                let last = bytes.len() - 1;
                bytes[last] ^= 0xff;
            }
            if is_layer && self.fault == Fault::Truncated {
                reply.cut = Some(bytes.len() / 2);
            }
            reply.body = bytes;
            return reply;
        }
        Reply::status(404)
    }

    /// The manifest tagged `tag` in the layout's index.json.
    fn manifest(&self, tag: &str) -> Option<Vec<u8>> {
        let index: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(self.layout.join("index.json")).ok()?).ok()?;
        let desc = index.get("manifests")?.as_array()?.iter().find(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name")
                .and_then(|v| v.as_str())
                == Some(tag)
        })?;
        let digest = desc.get("digest")?.as_str()?.strip_prefix("sha256:")?;
        fs::read(self.layout.join("blobs/sha256").join(digest)).ok()
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many bytes of the body, then close.
    cut: Option<usize>,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut: None,
        }
    }

    fn json(status: u16, body: Vec<u8>, kind: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), kind.into())],
            body,
            cut: None,
        }
    }

    /// Writes the reply; false if the connection must close.
    fn write(&self, stream: &mut TcpStream, head: bool) -> Result<bool> {
        let mut text = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            self.status,
            self.body.len()
        );
        for (k, v) in &self.headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.cut.is_some() {
            text.push_str("Connection: close\r\n");
        }
        text.push_str("\r\n");
        stream.write_all(text.as_bytes())?;
        if !head {
            let end = self.cut.unwrap_or(self.body.len());
            stream.write_all(&self.body[..end])?;
        }
        stream.flush()?;
        Ok(self.cut.is_none())
    }
}

/// Standard base64 (RFC 4648), for the Basic credentials the fake checks.
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
