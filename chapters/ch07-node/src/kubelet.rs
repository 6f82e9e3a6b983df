//! The kubelet's loop, for static pods: desired state is a directory of Pod
//! manifests, actual state is what the CRI runtime lists (pod sandboxes and
//! containers carrying this kubelet's labels), and each pass makes the one
//! look like the other.
//!
//! New file: ImageStatus for each image, RunPodSandbox, then CreateContainer
//! and StartContainer per container. Changed file (its hash label differs):
//! the pod is torn down and made again. Removed file: StopContainer,
//! RemoveContainer, StopPodSandbox, RemovePodSandbox. An exited container is
//! started again as `restartPolicy` says, after a back-off that doubles with
//! each restart; its `attempt` is the pod's `restartCount`.
//!
//! What it leaves out: the API server (pods come only from files), node
//! status, probes, image pulls and garbage collection, volumes beyond
//! `emptyDir`; a real kubelet keeps one exited container per container for
//! `kubectl logs --previous`, this one removes it on restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use ch01_uts::say;
use k8s_cri::v1;

use crate::cri::Cri;
use crate::pod::{self, Pod};

/// The label every object of this kubelet carries, with the pod's name.
pub const POD_LABEL: &str = "cfs.ch07/pod";
/// The manifest's hash: a changed file is a changed pod.
pub const HASH_LABEL: &str = "cfs.ch07/hash";
/// The container's name in the pod.
pub const CONTAINER_LABEL: &str = "cfs.ch07/container";

/// The settings of the loop.
pub struct Node {
    pub cri: Cri,
    pub manifests: PathBuf,
    /// Pod directories: logs, emptyDirs, /etc/hosts.
    pub root: PathBuf,
    pub cgroup_parent: String,
    /// The first restart's back-off; it doubles with each restart, at most 5 minutes.
    pub backoff: Duration,
    /// Errors and warnings already printed (once per file version).
    told: HashSet<String>,
}

/// A manifest read from the directory.
struct Desired {
    file: PathBuf,
    hash: String,
    pod: Pod,
}

impl Node {
    pub fn new(cri: Cri, manifests: PathBuf, root: PathBuf, cgroup_parent: String) -> Node {
        Node {
            cri,
            manifests,
            root,
            cgroup_parent,
            backoff: Duration::from_secs(10),
            told: HashSet::new(),
        }
    }

    /// Prints `message` once per distinct text: a loop must not repeat
    /// the same complaint every period.
    fn tell(&mut self, message: String) {
        if self.told.insert(message.clone()) {
            eprintln!("{message}");
        }
    }

    /// Reads the manifests; a bad one is an error line naming the file.
    fn desired(&mut self) -> Result<BTreeMap<String, Desired>> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.manifests)
            .with_context(|| {
                format!(
                    "failed to read the manifests in {}",
                    self.manifests.display()
                )
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        let mut pods = BTreeMap::new();
        for file in files {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let hash = hash(&text);
            match pod::parse(&text) {
                Ok((pod, warnings)) => {
                    for w in warnings {
                        self.tell(format!("warning: {}: {w}", file.display()));
                    }
                    let name = pod.metadata.name.clone();
                    if let Some(first) = pods.get(&name).map(|d: &Desired| d.file.clone()) {
                        self.tell(format!(
                            "error: {}: metadata.name: pod {name} is also in {}",
                            file.display(),
                            first.display()
                        ));
                        continue;
                    }
                    pods.insert(name, Desired { file, hash, pod });
                }
                Err(e) => self.tell(format!("error: {}: {e:#}", file.display())),
            }
        }
        Ok(pods)
    }

    // ANCHOR: reconcile
    /// One pass: tear down what no file wants (or wants differently),
    /// start what is missing, restart exited containers as their policy says.
    pub fn reconcile(&mut self) -> Result<()> {
        // LAB:BEGIN reconcile: one pass making the pods CRI lists (this kubelet's only) look like the manifests, with every pod's error told and the pass going on; see containerd(8) and the CRI's ListPodSandbox, Kubernetes' static pods
        let desired = self.desired()?;
        let mut running = HashMap::new();
        for sandbox in self.cri.list_pod_sandboxes(HashMap::new())? {
            let Some(name) = sandbox.labels.get(POD_LABEL).cloned() else {
                continue;
            };
            let why = match desired.get(&name) {
                None => "its manifest is gone",
                Some(d) if sandbox.labels.get(HASH_LABEL) != Some(&d.hash) => {
                    "its manifest changed"
                }
                Some(_) if sandbox.state != v1::PodSandboxState::SandboxReady as i32 => {
                    "its sandbox is not ready"
                }
                Some(_) => {
                    running.insert(name, sandbox.id);
                    continue;
                }
            };
            say!("pod {name}: {why}: removing it");
            self.teardown(&sandbox.id, &name)?;
        }
        for (name, d) in &desired {
            let result = match running.get(name) {
                Some(id) => self.sync(id, d),
                None => self.start(d),
            };
            if let Err(e) = result {
                self.tell(format!("error: {}: {e:#}", d.file.display()));
            }
        }
        Ok(())
        // LAB:END
    }
    // ANCHOR_END: reconcile

    fn pod_dir(&self, name: &str) -> PathBuf {
        self.root.join("pods").join(name)
    }

    // ANCHOR: start
    /// Starts a pod: its images must be present; the sandbox first (the
    /// pause container, its namespaces, CNI), then each container in it.
    fn start(&mut self, d: &Desired) -> Result<()> {
        let pod = &d.pod;
        for c in &pod.spec.containers {
            if !self.cri.image_present(&c.image)? {
                bail!(
                    "spec.containers.{}.image: image {} is not in containerd's k8s.io store: \
                     import it with `ctr --namespace k8s.io images import IMAGE.tar`",
                    c.name,
                    c.image
                );
            }
        }
        let dir = self.pod_dir(&pod.metadata.name);
        fs::create_dir_all(dir.join("logs"))
            .with_context(|| format!("failed to create {}", dir.display()))?;
        for v in &pod.spec.volumes {
            let path = dir.join("volumes").join(&v.name);
            // Mode 0777, as the kubelet makes an emptyDir: any user of any
            // container of the pod may write to it.
            say!("mkdir({:?}, 0777) (emptyDir {})", path.display(), v.name);
            fs::create_dir_all(&path)
                .with_context(|| format!("failed to create {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777))
                .with_context(|| format!("failed to chmod {}", path.display()))?;
        }
        let config = self.sandbox_config(d, &dir);
        let handler = pod.spec.runtime_class_name.clone().unwrap_or_default();
        let id = match self.cri.run_pod_sandbox(&config, &handler) {
            Ok(id) => id,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e).with_context(|| format!("spec.runtimeClassName: {handler:?}"));
            }
        };
        let started = (|| {
            let ip = self
                .cri
                .pod_sandbox_status(&id)?
                .network
                .map(|n| n.ip)
                .unwrap_or_default();
            let hosts = dir.join("etc-hosts");
            say!("write {} (pod IP {ip})", hosts.display());
            fs::write(&hosts, pod::etc_hosts(pod, &ip))
                .with_context(|| format!("failed to write {}", hosts.display()))?;
            for c in &pod.spec.containers {
                self.start_container(&id, &config, d, c, 0)?;
            }
            Ok(())
        })();
        if let Err(e) = started {
            self.teardown(&id, &pod.metadata.name)?;
            return Err(e);
        }
        Ok(())
    }
    // ANCHOR_END: start

    fn sandbox_config(&self, d: &Desired, dir: &Path) -> v1::PodSandboxConfig {
        let name = &d.pod.metadata.name;
        v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: name.clone(),
                uid: format!("{name}-{}", d.hash),
                namespace: d.pod.metadata.namespace.clone(),
                attempt: 0,
            }),
            hostname: name.clone(),
            log_directory: dir.join("logs").display().to_string(),
            labels: HashMap::from([
                (POD_LABEL.to_string(), name.clone()),
                (HASH_LABEL.to_string(), d.hash.clone()),
            ]),
            linux: Some(v1::LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn start_container(
        &mut self,
        pod_id: &str,
        config: &v1::PodSandboxConfig,
        d: &Desired,
        c: &pod::Container,
        attempt: u32,
    ) -> Result<()> {
        let labels = BTreeMap::from([
            (POD_LABEL.to_string(), d.pod.metadata.name.clone()),
            (CONTAINER_LABEL.to_string(), c.name.clone()),
        ]);
        let dir = self.pod_dir(&d.pod.metadata.name);
        let cc = pod::container_config(c, attempt, &dir, labels)?;
        let id = self
            .cri
            .create_container(pod_id, &cc, config)
            .with_context(|| format!("spec.containers.{}", c.name))?;
        self.cri.start_container(&id)?;
        Ok(())
    }

    // ANCHOR: sync
    /// A running pod: each container's latest attempt; an exited one is
    /// started again when the policy says so and its back-off has passed.
    fn sync(&mut self, pod_id: &str, d: &Desired) -> Result<()> {
        // LAB:BEGIN sync: start each exited container of a running pod again when its restartPolicy says so and its doubling back-off has run out, as the next attempt; see wait(2) for exit codes, Kubernetes' "Container restart policy"
        let existing = self.cri.list_containers(pod_id, HashMap::new())?;
        let config = self.sandbox_config(d, &self.pod_dir(&d.pod.metadata.name));
        for c in &d.pod.spec.containers {
            let latest = existing
                .iter()
                .filter(|x| x.labels.get(CONTAINER_LABEL) == Some(&c.name))
                .max_by_key(|x| x.metadata.as_ref().map(|m| m.attempt).unwrap_or(0));
            let Some(latest) = latest else {
                self.start_container(pod_id, &config, d, c, 0)?;
                continue;
            };
            if latest.state != v1::ContainerState::ContainerExited as i32 {
                continue;
            }
            let attempt = latest.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
            let (status, _) = self.cri.container_status(&latest.id)?;
            if !d.pod.spec.restart_policy.restarts(status.exit_code) {
                continue;
            }
            let wait = self
                .backoff
                .saturating_mul(1 << attempt.min(16))
                .min(Duration::from_secs(300));
            let finished = UNIX_EPOCH + Duration::from_nanos(status.finished_at.max(0) as u64);
            if SystemTime::now() < finished + wait {
                continue;
            }
            say!(
                "container {} exited {} ({}), restart {} after {wait:?}",
                c.name,
                status.exit_code,
                status.reason,
                attempt + 1
            );
            self.cri.remove_container(&latest.id)?;
            self.start_container(pod_id, &config, d, c, attempt + 1)?;
        }
        Ok(())
        // LAB:END
    }
    // ANCHOR_END: sync

    // ANCHOR: teardown
    /// Removes a pod: its containers (stopped first), then the sandbox
    /// (which takes the pause container, the network namespace and the
    /// CNI address with it), then the pod's directory.
    fn teardown(&mut self, pod_id: &str, name: &str) -> Result<()> {
        for c in self.cri.list_containers(pod_id, HashMap::new())? {
            if c.state != v1::ContainerState::ContainerExited as i32 {
                // A container may exit on its own between the list and the
                // stop: the runtime's kill then fails, and that is fine.
                if let Err(e) = self.cri.stop_container(&c.id, 10) {
                    let (status, _) = self.cri.container_status(&c.id)?;
                    if status.state != v1::ContainerState::ContainerExited as i32 {
                        return Err(e);
                    }
                }
            }
            self.cri.remove_container(&c.id)?;
        }
        self.cri.stop_pod_sandbox(pod_id)?;
        self.cri.remove_pod_sandbox(pod_id)?;
        let dir = self.pod_dir(name);
        if dir.exists() {
            say!("rm -r {}", dir.display());
            fs::remove_dir_all(&dir)
                .with_context(|| format!("failed to remove {}", dir.display()))?;
        }
        Ok(())
    }
    // ANCHOR_END: teardown

    /// The sandbox of pod `name`, found by its label.
    pub fn find_pod(&mut self, name: &str) -> Result<v1::PodSandbox> {
        let labels = HashMap::from([(POD_LABEL.to_string(), name.to_string())]);
        self.cri
            .list_pod_sandboxes(labels)?
            .into_iter()
            .find(|p| p.state == v1::PodSandboxState::SandboxReady as i32)
            .with_context(|| format!("no pod {name}: see `ch07-node pods`"))
    }

    /// The latest attempt of container `container` of pod `name`.
    pub fn find_container(&mut self, name: &str, container: &str) -> Result<v1::Container> {
        let pod = self.find_pod(name)?;
        let labels = HashMap::from([(CONTAINER_LABEL.to_string(), container.to_string())]);
        self.cri
            .list_containers(&pod.id, labels)?
            .into_iter()
            .max_by_key(|x| x.metadata.as_ref().map(|m| m.attempt).unwrap_or(0))
            .with_context(|| format!("pod {name} has no container {container}"))
    }

    /// One line per container of this kubelet's pods: pod, IP, handler,
    /// container, state, restarts, reason (`OOMKilled`, `Error`) and exit code.
    pub fn pods(&mut self) -> Result<String> {
        let mut out = String::from("POD\tIP\tHANDLER\tCONTAINER\tSTATE\tRESTARTS\tREASON\n");
        for sandbox in self.cri.list_pod_sandboxes(HashMap::new())? {
            let Some(name) = sandbox.labels.get(POD_LABEL).cloned() else {
                continue;
            };
            let status = self.cri.pod_sandbox_status(&sandbox.id)?;
            let ip = status.network.map(|n| n.ip).unwrap_or_default();
            let mut containers = self.cri.list_containers(&sandbox.id, HashMap::new())?;
            containers.sort_by_key(|c| c.labels.get(CONTAINER_LABEL).cloned());
            for c in containers {
                let (st, _) = self.cri.container_status(&c.id)?;
                let state = v1::ContainerState::try_from(st.state)
                    .map(|s| {
                        s.as_str_name()
                            .trim_start_matches("CONTAINER_")
                            .to_lowercase()
                    })
                    .unwrap_or_default();
                let reason = if st.state == v1::ContainerState::ContainerExited as i32 {
                    format!("{} ({})", st.reason, st.exit_code)
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "{name}\t{ip}\t{}\t{}\t{state}\t{}\t{reason}\n",
                    if sandbox.runtime_handler.is_empty() {
                        "default"
                    } else {
                        &sandbox.runtime_handler
                    },
                    c.labels
                        .get(CONTAINER_LABEL)
                        .map(String::as_str)
                        .unwrap_or(""),
                    c.metadata.map(|m| m.attempt).unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }

    /// A container's log: the file the runtime wrote at the LogPath the
    /// kubelet chose (CRI has no call for logs), each line
    /// `TIME STREAM TAG TEXT`; returns the texts.
    pub fn logs(&mut self, name: &str, container: &str) -> Result<String> {
        let c = self.find_container(name, container)?;
        let (status, _) = self.cri.container_status(&c.id)?;
        let text = fs::read_to_string(&status.log_path)
            .with_context(|| format!("failed to read the log {}", status.log_path))?;
        let mut out = String::new();
        for line in text.lines() {
            let text = line.splitn(4, ' ').nth(3).unwrap_or("");
            out.push_str(text);
            out.push('\n');
        }
        Ok(out)
    }
}

/// A short, stable hash of a manifest's text (a label value).
fn hash(text: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}
