//! Pod manifests: a typed subset of Kubernetes' `Pod` (apiVersion v1), read
//! from YAML, and its translation into CRI's `PodSandboxConfig` and
//! `ContainerConfig`.
//!
//! A field this kubelet does not honour is never silently dropped: the YAML
//! is read through `serde_ignored`, and every ignored field comes back as a
//! warning naming it (`spec.nodeSelector`). What it leaves out: most of the
//! Pod (probes, init containers, volumes other than `emptyDir`, pod-level
//! securityContext, DNS policy); a real kubelet takes the Pod from the API
//! server, validates it there, and defaults every field.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use k8s_cri::v1;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    pub runtime_class_name: Option<String>,
    #[serde(default)]
    pub host_aliases: Vec<HostAlias>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// What to do when a container exits: `Always` (the default), `OnFailure`
/// (exit code not 0), `Never`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// Whether a container that exited with `code` is started again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => code != 0,
            RestartPolicy::Never => false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct HostAlias {
    pub ip: String,
    #[serde(default)]
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub empty_dir: Option<EmptyDir>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmptyDir {}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub resources: Resources,
    pub security_context: Option<SecurityContext>,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_user: Option<i64>,
    pub capabilities: Option<Capabilities>,
    #[serde(default)]
    pub read_only_root_filesystem: bool,
    #[serde(default)]
    pub privileged: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

// ANCHOR: parse
/// Reads a manifest; returns the Pod and one warning per field it ignores.
/// Refuses what it cannot run as asked: `privileged`, a volume that is not
/// an `emptyDir`, a mount of an unknown volume.
pub fn parse(text: &str) -> Result<(Pod, Vec<String>)> {
    let mut ignored = Vec::new();
    let pod: Pod = serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |path| {
        ignored.push(path.to_string())
    })?;
    let warnings = ignored
        .into_iter()
        .map(|f| format!("field {f} is not supported and was ignored"))
        .collect();
    if pod.kind != "Pod" {
        bail!("kind: {:?} is not Pod", pod.kind);
    }
    for v in &pod.spec.volumes {
        if v.empty_dir.is_none() {
            bail!(
                "spec.volumes.{}: only emptyDir volumes are supported",
                v.name
            );
        }
    }
    for c in &pod.spec.containers {
        if c.security_context.as_ref().is_some_and(|s| s.privileged) {
            bail!(
                "spec.containers.{}.securityContext.privileged: privileged containers are refused",
                c.name
            );
        }
        for m in &c.volume_mounts {
            if !pod.spec.volumes.iter().any(|v| v.name == m.name) {
                bail!(
                    "spec.containers.{}.volumeMounts.{}: no such volume",
                    c.name,
                    m.name
                );
            }
        }
        for (k, v) in c.resources.limits.iter().chain(&c.resources.requests) {
            quantity(k, v).with_context(|| format!("spec.containers.{}.resources.{k}", c.name))?;
        }
    }
    Ok((pod, warnings))
}
// ANCHOR_END: parse

/// A resource quantity in its base unit: cpu in millicores (`500m`, `1`,
/// `0.5`), memory in bytes (`64Mi`, `1G`, `1000`).
pub fn quantity(resource: &str, text: &str) -> Result<i64> {
    let bad = || format!("{resource}: bad quantity {text:?}");
    if resource == "cpu" {
        return if let Some(m) = text.strip_suffix('m') {
            m.parse().with_context(bad)
        } else {
            let cores: f64 = text.parse().with_context(bad)?;
            Ok((cores * 1000.0).round() as i64)
        };
    }
    if resource != "memory" {
        bail!("{resource}: only cpu and memory are supported");
    }
    let units: [(&str, i64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = text.strip_suffix(suffix) {
            return Ok(n.parse::<i64>().with_context(bad)? * factor);
        }
    }
    text.parse().with_context(bad)
}

// ANCHOR: resources
/// What the kubelet asks of the runtime for `resources`: a cpu limit is a
/// CFS quota per 100 ms period, a cpu request a share of 1024 per core, a
/// memory limit the cgroup's limit in bytes.
pub fn linux_resources(r: &Resources) -> Result<v1::LinuxContainerResources> {
    // LAB:BEGIN linux_resources: the CRI resources of a container's limits and requests, as the kubelet computes them for the cgroup; see cgroups(7), the CRI's LinuxContainerResources
    let mut out = v1::LinuxContainerResources {
        cpu_shares: 2,
        ..Default::default()
    };
    if let Some(cpu) = r.limits.get("cpu") {
        out.cpu_period = 100_000;
        out.cpu_quota = quantity("cpu", cpu)? * 100;
    }
    if let Some(cpu) = r.requests.get("cpu").or(r.limits.get("cpu")) {
        out.cpu_shares = (quantity("cpu", cpu)? * 1024 / 1000).max(2);
    }
    if let Some(mem) = r.limits.get("memory") {
        out.memory_limit_in_bytes = quantity("memory", mem)?;
    }
    Ok(out)
    // LAB:END
}
// ANCHOR_END: resources

/// The pod's /etc/hosts, as the kubelet writes it: localhost, the pod's own
/// name at its IP, then the `hostAliases`. CRI has no field for it: the
/// kubelet mounts this file into every container.
pub fn etc_hosts(pod: &Pod, ip: &str) -> String {
    let mut hosts = String::from("# Kubernetes-managed hosts file (ch07-node).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if !ip.is_empty() {
        hosts.push_str(&format!("{ip}\t{}\n", pod.metadata.name));
    }
    for a in &pod.spec.host_aliases {
        hosts.push_str(&format!("{}\t{}\n", a.ip, a.hostnames.join("\t")));
    }
    hosts
}

/// The CRI config of container `c`: command and args, env, working dir,
/// resources, security context, and mounts (the pod's /etc/hosts, its
/// emptyDirs, which live under `pod_dir/volumes`).
pub fn container_config(
    c: &Container,
    attempt: u32,
    pod_dir: &Path,
    labels: BTreeMap<String, String>,
) -> Result<v1::ContainerConfig> {
    let mut mounts = vec![v1::Mount {
        container_path: "/etc/hosts".into(),
        host_path: pod_dir.join("etc-hosts").display().to_string(),
        ..Default::default()
    }];
    for m in &c.volume_mounts {
        mounts.push(v1::Mount {
            container_path: m.mount_path.clone(),
            host_path: pod_dir.join("volumes").join(&m.name).display().to_string(),
            readonly: m.read_only,
            ..Default::default()
        });
    }
    let security = c
        .security_context
        .as_ref()
        .map(|s| v1::LinuxContainerSecurityContext {
            run_as_user: s.run_as_user.map(|value| v1::Int64Value { value }),
            readonly_rootfs: s.read_only_root_filesystem,
            capabilities: s.capabilities.as_ref().map(|caps| v1::Capability {
                add_capabilities: caps.add.clone(),
                drop_capabilities: caps.drop.clone(),
                ..Default::default()
            }),
            ..Default::default()
        });
    Ok(v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: c.name.clone(),
            attempt,
        }),
        image: Some(v1::ImageSpec {
            image: c.image.clone(),
            ..Default::default()
        }),
        command: c.command.clone(),
        args: c.args.clone(),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: c
            .env
            .iter()
            .map(|e| v1::KeyValue {
                key: e.name.clone(),
                value: e.value.clone(),
            })
            .collect(),
        mounts,
        labels: labels.into_iter().collect(),
        log_path: format!("{}/{attempt}.log", c.name),
        linux: Some(v1::LinuxContainerConfig {
            resources: Some(linux_resources(&c.resources)?),
            security_context: security,
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity("memory", "64Mi").ok(), Some(64 << 20));
        assert_eq!(quantity("cpu", "500m").ok(), Some(500));
        assert_eq!(quantity("cpu", "0.5").ok(), Some(500));
        assert!(quantity("memory", "lots").is_err());
    }

    #[test]
    fn unknown_fields_warn_and_privileged_is_refused() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  nodeSelector: {x: y}\n  containers: [{name: c, image: i}]\n";
        let (_, warnings) = parse(text).expect("parses");
        assert_eq!(
            warnings,
            vec!["field spec.nodeSelector is not supported and was ignored"]
        );
        let text = "kind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: i, securityContext: {privileged: true}}]\n";
        let err = parse(text).expect_err("refused").to_string();
        assert!(err.contains("privileged"), "{err}");
    }
}
