//! The bundle: a directory with `config.json` and the root filesystem it names.
//!
//! An OCI bundle is how an engine hands a container to a runtime: containerd
//! unpacks the image into `rootfs/` and writes `config.json` beside it. The
//! config says everything about the container: the process (its arguments,
//! user, capabilities...), the mounts, the namespaces, the cgroup limits, the
//! hooks. The runtime's first job is to read it and refuse what it cannot do
//! *before* creating anything, with an error that names the field.
//!
//! Parsing uses the `oci-spec` crate's types. Two wrappers around serde say
//! *where* a problem is: `serde_path_to_error` names the field of an invalid
//! value (`process.capabilities.bounding[0]`), `serde_ignored` the fields the
//! types do not know. The runtime spec requires runtimes to ignore unknown
//! properties (newer engines write newer fields), so those are warnings.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use crate::logging;

/// The versions of the runtime spec this runtime reads: 1.0 to 1.2.
pub const SUPPORTED: &str = "1.0.0 to 1.2.x";

/// The version this runtime reports (`--version`, `state`): oci-spec's.
pub const VERSION: &str = oci_spec::runtime::VERSION;

// ANCHOR: load
/// Reads and checks `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "failed to read {}: a bundle needs a config.json (write one with `ch06-full-runtime spec`)",
            path.display()
        )
    })?;
    let spec = parse(&text).with_context(|| format!("invalid {}", path.display()))?;
    validate(&spec, bundle)?;
    Ok(spec)
}

/// Parses config.json text; an error names the field (`process.user.uid`).
pub fn parse(text: &str) -> Result<Spec> {
    let mut unknown = Vec::new();
    let mut json = serde_json::Deserializer::from_str(text);
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let ignoring = serde_ignored::Deserializer::new(&mut json, &mut note);
    let spec: Spec = serde_path_to_error::deserialize(ignoring).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            anyhow::anyhow!("not valid JSON: {inner}")
        } else if field == "." {
            anyhow::anyhow!("{inner}")
        } else {
            anyhow::anyhow!("field `{field}`: {inner}")
        }
    })?;
    for field in unknown {
        logging::warn(&format!("config.json: unknown field `{field}` ignored"));
    }
    Ok(spec)
}
// ANCHOR_END: load

/// What the types cannot say: supported version, a root that exists, a
/// process with a command, a hostname only with a UTS namespace (new or joined).
fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    let version = spec.version();
    let mut parts = version.split(['.', '-', '+']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    if major != Some(1) || !matches!(minor, Some(0..=2)) {
        bail!(
            "config.json: ociVersion {version:?} is not supported: this runtime reads {SUPPORTED}"
        );
    }
    let root = rootfs(spec, bundle)?;
    if !root.is_dir() {
        bail!(
            "config.json: root.path {}: no such directory (unpack the image there first)",
            root.display()
        );
    }
    let process = spec
        .process()
        .as_ref()
        .context("config.json: `process` is missing: it says what to run")?;
    if process.args().as_ref().map_or(true, |a| a.is_empty()) {
        bail!("config.json: process.args is empty: it must name the command to run");
    }
    if process.cwd().is_relative() {
        bail!(
            "config.json: process.cwd {}: must be an absolute path",
            process.cwd().display()
        );
    }
    if let Some(name) = spec.hostname() {
        ch01_uts::uts::validate_hostname(name).context("config.json: hostname")?;
        // New or joined by path (runc allows both): never the host's.
        let plan = crate::namespaces::Plan::from_spec(spec)?;
        let uts = crate::namespaces::Kind::Uts;
        if !plan.owns(uts) && !plan.join.iter().any(|(kind, _)| *kind == uts) {
            bail!(
                "config.json: hostname is set but linux.namespaces has no uts namespace: add one"
            );
        }
    }
    Ok(())
}

/// The container's root filesystem: `root.path`, relative to the bundle.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .context("config.json: `root` is missing: it names the root filesystem")?;
    Ok(bundle.join(root.path()))
}

/// Writes a default `config.json` into `bundle`, as `runc spec` does; with
/// `rootless`, the variant for a user without root (a user namespace mapping
/// that user to root, no cgroup limits).
pub fn write_default(bundle: &Path, rootless: bool) -> Result<PathBuf> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} exists already: remove it first", path.display());
    }
    let mut spec = if rootless {
        Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("container".to_string()));
    let text = serde_json::to_string_pretty(&spec).context("failed to serialize the spec")?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_json() -> serde_json::Value {
        serde_json::to_value(Spec::default()).expect("serializes")
    }

    #[test]
    fn names_the_bad_field() {
        let mut json = default_json();
        json["process"]["capabilities"]["bounding"][0] = "CAP_NOPE".into();
        let err = parse(&json.to_string()).expect_err("bad capability");
        let text = format!("{err:#}");
        assert!(text.contains("process.capabilities.bounding[0]"), "{text}");

        let mut json = default_json();
        json["process"]["user"]["uid"] = "root".into();
        let text = format!("{:#}", parse(&json.to_string()).expect_err("bad uid"));
        assert!(text.contains("process.user.uid"), "{text}");
    }

    #[test]
    fn bad_json_says_so() {
        let text = format!("{:#}", parse("{ not json").expect_err("bad json"));
        assert!(text.starts_with("not valid JSON"), "{text}");
    }

    #[test]
    fn checks_the_version_and_root() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("rootfs"))?;
        let mut json = default_json();
        json["process"]["terminal"] = false.into();
        std::fs::write(dir.path().join("config.json"), json.to_string())?;
        load(dir.path())?;

        json["ociVersion"] = "2.0.0".into();
        std::fs::write(dir.path().join("config.json"), json.to_string())?;
        let text = format!("{:#}", load(dir.path()).expect_err("version"));
        assert!(text.contains("ociVersion \"2.0.0\""), "{text}");

        json["ociVersion"] = "1.0.2".into();
        json["root"]["path"] = "missing".into();
        std::fs::write(dir.path().join("config.json"), json.to_string())?;
        let text = format!("{:#}", load(dir.path()).expect_err("root"));
        assert!(text.contains("root.path"), "{text}");
        Ok(())
    }
}
