//! Chapter 7: `ch07-node`, a kubelet for static pods, drives containerd's
//! CRI plugin in a private [`Sandbox`] (the engines harness: its own
//! network, mount, PID and cgroup namespaces beneath the test's cgroup),
//! with chapter 6's runtime as the runtime handler `cfs` (a wrapper logs
//! each of its command lines) and runc as the default handler.
//!
//! Three checks (the lab's), each a node of its own walked in steps (each
//! reported `ok`/`FAILED`; the first failure ends the check):
//! - the reconcile loop: manifests appear, the loop starts the pods; the
//!   kernel and the runtime are asked what happened (the runtime's command
//!   lines, the pod's IP in the CNI subnet, the emptyDir and the shared
//!   localhost seen from the other container); the same pod on runc; a
//!   sandbox that is not the kubelet's is left alone; bad manifests; a
//!   changed manifest; then the manifests go and nothing may be left;
//! - resources: limits and requests in the containers' cgroup files, and an
//!   OOM kill;
//! - restarts: each policy, and the back-off that doubles, read from the
//!   attempts' creation times as containerd records them.

use std::collections::BTreeMap;
use std::fs;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cfs_tests::cri::Cri;
use cfs_tests::engines::{
    cgroup_file, cgroup_of, cri_containerd, no_pods_left, nothing_left, runtime_calls,
    runtime_errors, wrapper, Containerd, Runtime, Steps, POD_SUBNET,
};
use cfs_tests::run::{output_within, wait_for, Output};
use cfs_tests::sandbox::Sandbox;
use cfs_tests::{bail, check, ensure, paths, Context, Result};

const CGROUP_PARENT: &str = "/cfs-kubepods-h9";

/// The web pod: a server (httpd on localhost, files from the emptyDir) and
/// a client that fetches from it over the pod's shared loopback and
/// writes into the emptyDir. `class` is its runtimeClassName line.
fn web(name: &str, class: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  {class}
  nodeSelector: {{disk: ssd}}
  hostAliases:
  - ip: 10.1.2.3
    hostnames: [db.cfs-h9.test]
  volumes:
  - name: shared
    emptyDir: {{}}
  containers:
  - name: server
    image: docker.io/cfs/busybox:latest
    command: [sh, -c]
    args: ["echo served-$GREETING >/shared/index.html; exec httpd -f -p 8080 -h /shared"]
    env: [{{name: GREETING, value: hi}}]
    resources:
      limits: {{memory: 64Mi, cpu: 500m}}
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  - name: client
    image: docker.io/cfs/busybox:latest
    workingDir: /shared
    command: [sh, -c, "until wget -q -O - http://127.0.0.1:8080/index.html; do sleep 0.2; done; echo written-by-client >from-client; exec sleep 1000"]
    securityContext:
      runAsUser: 1000
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
    volumeMounts: [{{name: shared, mountPath: /shared}}]
"#
    )
}

fn one_shot(name: &str, policy: &str, limits: &str, script: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  runtimeClassName: cfs\n  restartPolicy: {policy}\n  containers:\n  - name: main\n    image: docker.io/cfs/busybox:latest\n    command: [sh, -c, {script:?}]\n    resources: {{limits: {{{limits}}}}}\n"
    )
}

/// The sized pod: one container per kind of resources, each sleeping.
const SIZED: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: sized}\nspec:\n  runtimeClassName: cfs\n  containers:\n  - name: limited\n    image: docker.io/cfs/busybox:latest\n    command: [sleep, '1000']\n    resources: {limits: {memory: 64Mi, cpu: 500m}}\n  - name: requested\n    image: docker.io/cfs/busybox:latest\n    command: [sleep, '1000']\n    resources: {requests: {cpu: 250m}}\n  - name: besteffort\n    image: docker.io/cfs/busybox:latest\n    command: [sleep, '1000']\n";

/// A private containerd in a sandbox, and the kubelet's paths in it.
struct Node {
    sandbox: Sandbox,
    containerd: Containerd,
    socket: String,
    manifests: std::path::PathBuf,
    root: std::path::PathBuf,
    /// `--backoff`, in seconds.
    backoff: f64,
}

impl Node {
    /// A sandbox, containerd in it (handlers `cfs`, chapter 6's runtime
    /// through the logging wrapper, and `runc`), an empty manifest directory.
    fn start(backoff: f64) -> Result<Node> {
        let sandbox = Sandbox::start("h9")?;
        let rt = wrapper(&sandbox, Runtime::Ch06)?;
        let containerd = cri_containerd(&sandbox, "h9", &rt)?;
        let manifests = sandbox.dir.join("manifests");
        fs::create_dir_all(&manifests)?;
        Ok(Node {
            socket: containerd.socket.display().to_string(),
            root: sandbox.dir.join("node"),
            manifests,
            sandbox,
            containerd,
            backoff,
        })
    }

    /// `ch07-node ARGS` in the sandbox, with this node's endpoint and root.
    fn run(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.sandbox.command(paths::bin("ch07-node"));
        cmd.args(["--endpoint", &self.socket, "--root"])
            .arg(&self.root)
            .args(["--cgroup-parent", CGROUP_PARENT, "--backoff"])
            .arg(self.backoff.to_string())
            .args(args);
        output_within(cmd, Duration::from_secs(120))
    }

    /// One pass of the loop over the manifests.
    fn once(&self) -> Result<Output> {
        let dir = self.manifests.display().to_string();
        let out = self.run(&["-v", "--manifests", &dir, "--once"])?;
        eprint!("{}", out.stderr);
        out.expect_code(0)?;
        Ok(out)
    }

    fn write(&self, file: &str, text: &str) -> Result<()> {
        Ok(fs::write(self.manifests.join(file), text)?)
    }

    /// The `pods` line of container `container` of pod `pod`, split at tabs.
    fn pods_line(&self, pod: &str, container: &str) -> Result<Vec<String>> {
        let out = self.run(&["pods"])?;
        out.expect_code(0)?;
        out.stdout
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
            .find(|f| {
                f.first().map(String::as_str) == Some(pod)
                    && f.get(3).map(String::as_str) == Some(container)
            })
            .with_context(|| format!("no {pod}/{container} in `pods`:\n{}", out.stdout))
    }

    /// The check's verdict: its first failed step first (the scoreboard's
    /// `got:` line), then the others, the runtime's stderr and containerd's
    /// log; containerd and the sandbox are stopped either way.
    fn finish(self, steps: Steps) -> Result<()> {
        let failures = steps.failures().to_vec();
        let errors = runtime_errors(&self.sandbox);
        let log = self.containerd.stop()?;
        self.sandbox.stop()?;
        if failures.is_empty() {
            return Ok(());
        }
        bail!(
            "{}\n{errors}\ncontainerd's log:\n{log}",
            failures.join("\n")
        )
    }
}

/// The id of pod `name`'s sandbox and of its containers, by name.
fn pod_ids(cri: &mut Cri, name: &str) -> Result<(String, Vec<(String, String)>)> {
    let labels = [("cfs.ch07/pod".to_string(), name.to_string())].into();
    let pod = cri
        .list_pod_sandboxes(labels)?
        .into_iter()
        .next()
        .with_context(|| format!("no sandbox of pod {name}"))?;
    let containers = cri
        .list_containers(&pod.id, Default::default())?
        .into_iter()
        .map(|c| (c.metadata.map(|m| m.name).unwrap_or_default(), c.id))
        .collect();
    Ok((pod.id, containers))
}

/// The cgroup (in the sandbox) of a running container, from its pid.
fn container_cgroup(sandbox: &Sandbox, cri: &mut Cri, id: &str) -> Result<String> {
    let (_, info) = cri.container_status(id)?;
    let info: serde_json::Value = serde_json::from_str(&info)?;
    let inner = info["pid"].as_i64().context("no pid in the status info")? as i32;
    let pid = sandbox
        .host_pid(inner)
        .context("container's pid not in the sandbox")?;
    cgroup_of(sandbox, pid)
}

fn reconcile_loop() -> Result<()> {
    let node = Node::start(0.3)?;
    let sandbox = &node.sandbox;
    let mut cri = Cri::connect(&node.containerd.socket)?;
    let mut steps = Steps::new("ch07 node").until_a_failure();
    let mut ids: Vec<String> = Vec::new();
    let subnet = POD_SUBNET.trim_end_matches("0/24");
    let mut foreign = String::new();

    steps.step(
        "web pod on cfs: ch06 ran the sandbox and both containers",
        || {
            // A sandbox of someone else's on the same containerd (crictl's,
            // another kubelet's): no label of ours.
            let config = cfs_tests::cri::v1::PodSandboxConfig {
                metadata: Some(cfs_tests::cri::v1::PodSandboxMetadata {
                    name: "foreign".into(),
                    uid: "foreign-h9".into(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                linux: Some(cfs_tests::cri::v1::LinuxPodSandboxConfig {
                    cgroup_parent: CGROUP_PARENT.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            foreign = cri.run_pod_sandbox(&config, "cfs")?;
            ids.push(foreign.clone());
            node.write("web.yaml", &web("web", "runtimeClassName: cfs"))?;
            node.write("web-runc.yaml", &web("web-runc", ""))?;
            let out = node.once()?;
            ensure!(
                out.stderr
                    .contains("web.yaml: field spec.nodeSelector is not supported"),
                "no warning naming spec.nodeSelector: {}",
                out.stderr
            );
            let (pod, containers) = pod_ids(&mut cri, "web")?;
            ensure!(containers.len() == 2, "containers: {containers:?}");
            let calls = runtime_calls(sandbox);
            for id in std::iter::once(&pod).chain(containers.iter().map(|(_, id)| id)) {
                ids.push(id.clone());
                ensure!(
                    calls
                        .iter()
                        .any(|l| l.contains(" create ") && l.contains(id.as_str())),
                    "ch06 was never asked to create {id}: {calls:?}"
                );
            }
            Ok(())
        },
    );
    steps.step(
        "pod IP in the CNI subnet; shared localhost; emptyDir",
        || {
            let (pod, _) = pod_ids(&mut cri, "web")?;
            let ip = cri
                .pod_sandbox_status(&pod)?
                .network
                .map(|n| n.ip)
                .unwrap_or_default();
            ensure!(ip.starts_with(subnet), "pod IP {ip:?} not in {POD_SUBNET}");
            let line = node.pods_line("web", "server")?;
            ensure!(line[1] == ip && line[2] == "cfs", "pods: {line:?}");
            let log = wait_for(Duration::from_secs(30), || {
                node.run(&["logs", "web", "client"])
                    .ok()
                    .filter(|o| o.stdout.contains("served-hi"))
            })
            .context("the client never read served-hi from the server over localhost")?;
            ensure!(log.stdout.contains("served-hi"), "{}", log.stdout);
            let out = wait_for(Duration::from_secs(10), || {
                node.run(&["exec", "web", "server", "--", "cat", "/shared/from-client"])
                    .ok()
                    .filter(|o| o.code == 0)
            })
            .context("the server never saw the client's file in the emptyDir")?;
            ensure!(out.stdout == "written-by-client\n", "{out:?}");
            let hosts = node.run(&["exec", "web", "client", "--", "cat", "/etc/hosts"])?;
            ensure!(
                hosts.stdout.contains("10.1.2.3\tdb.cfs-h9.test")
                    && hosts.stdout.contains(&format!("{ip}\tweb")),
                "/etc/hosts: {}",
                hosts.stdout
            );
            Ok(())
        },
    );
    steps.step(
        "securityContext: uid 1000, no capabilities, read-only root",
        || {
            let script = "id -u; grep CapEff /proc/self/status; cat /proc/self/mountinfo; echo to-stderr >&2";
            let out = node.run(&["exec", "web", "client", "--", "sh", "-c", script])?;
            out.expect_code(0)?;
            let runc = node.run(&["exec", "web-runc", "client", "--", "sh", "-c", "echo to-stderr >&2"])?;
            ensure!(out.stderr == "to-stderr\n", "ExecSync's stderr: {:?}, on runc: {:?}", out.stderr, runc.stderr);
            ensure!(out.stdout.starts_with("1000\n"), "uid: {out:?}");
            ensure!(
                out.stdout.contains("CapEff:\t0000000000000000"),
                "caps: {out:?}"
            );
            let root = out
                .stdout
                .lines()
                .map(|l| l.split(' ').collect::<Vec<_>>())
                .find(|f| f.len() > 5 && f[4] == "/")
                .context("no / in the container's mountinfo")?;
            ensure!(
                root[5].split(',').any(|o| o == "ro"),
                "/ is mounted {}",
                root[5]
            );
            Ok(())
        },
    );
    steps.step("same pod on runc (default handler): not ch06", || {
        let (pod, containers) = pod_ids(&mut cri, "web-runc")?;
        ids.push(pod.clone());
        ensure!(
            !runtime_calls(sandbox).iter().any(|l| l.contains(&pod)),
            "ch06 was called for the runc pod"
        );
        let line = node.pods_line("web-runc", "client")?;
        ensure!(
            line[2] == "default" && line[1].starts_with(subnet),
            "pods: {line:?}"
        );
        let log = wait_for(Duration::from_secs(30), || {
            node.run(&["logs", "web-runc", "client"])
                .ok()
                .filter(|o| o.stdout.contains("served-hi"))
        })
        .context("on runc too, the client reads the server")?;
        ensure!(containers.len() == 2 && log.code == 0, "{containers:?}");
        Ok(())
    });
    steps.step(
        "a sandbox without the kubelet's label is left alone",
        || {
            node.once()?;
            let left = cri
                .list_pod_sandboxes(Default::default())?
                .into_iter()
                .find(|p| p.id == foreign);
            ensure!(
                left.as_ref().is_some_and(
                    |p| p.state == cfs_tests::cri::v1::PodSandboxState::SandboxReady as i32
                ),
                "the sandbox {foreign} without the label cfs.ch07/pod was removed or stopped \
             ({left:?}): a sandbox without it is not this kubelet's and must be left alone"
            );
            Ok(())
        },
    );
    steps.step("bad manifests: one line each naming file and field; others run", || {
        node.write("a-broken.yaml", "kind: Pod\nmetadata: {name: broken\nspec: [")?;
        node.write("b-class.yaml", &one_shot("badclass", "Never", "memory: 64Mi", "true").replace("runtimeClassName: cfs", "runtimeClassName: nope"))?;
        node.write("c-image.yaml", &web("noimage", "runtimeClassName: cfs").replace("image: docker.io/cfs/busybox:latest\n    command: [sh, -c]", "image: docker.io/cfs/absent:latest\n    command: [sh, -c]"))?;
        node.write("d-late.yaml", &one_shot("late", "Never", "memory: 64Mi", "sleep 1000"))?;
        let out = node
            .once()
            .context("a pass with bad manifests in the directory failed")?;
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("error:")).collect();
        ensure!(errors.len() == 3, "errors: {errors:#?}");
        ensure!(errors[0].contains("a-broken.yaml"), "{}", errors[0]);
        ensure!(errors[1].contains("b-class.yaml: spec.runtimeClassName: \"nope\""), "{}", errors[1]);
        ensure!(
            errors[2].contains("c-image.yaml: spec.containers.server.image: image docker.io/cfs/absent:latest is not in")
                && errors[2].contains("ctr --namespace k8s.io images import"),
            "{}",
            errors[2]
        );
        node.pods_line("web", "server")?;
        node.pods_line("late", "main")
            .context("the pod after the bad manifests (late) did not start")?;
        for f in ["a-broken.yaml", "b-class.yaml", "c-image.yaml"] {
            fs::remove_file(node.manifests.join(f))?;
        }
        Ok(())
    });
    steps.step("changed manifest: the pod is made again", || {
        let (before, _) = pod_ids(&mut cri, "web-runc")?;
        node.write(
            "web-runc.yaml",
            &web("web-runc", "").replace("value: hi", "value: again"),
        )?;
        node.once()?;
        let (after, _) = pod_ids(&mut cri, "web-runc")?;
        ensure!(
            before != after,
            "web-runc.yaml changed but its sandbox {before} stayed: a sandbox whose \
             cfs.ch07/hash label is not the file's hash must be torn down and made again"
        );
        let sandboxes = cri.pod_sandboxes()?;
        ensure!(sandboxes.len() == 4, "sandboxes: {sandboxes:?}");
        wait_for(Duration::from_secs(30), || {
            node.run(&["logs", "web-runc", "client"])
                .ok()
                .filter(|o| o.stdout.contains("served-again"))
        })
        .context("the new web-runc never served the new manifest's greeting")?;
        Ok(())
    });
    steps.step("manifests removed: nothing left", || {
        for (_, containers) in ["web", "web-runc", "late"]
            .iter()
            .filter_map(|n| pod_ids(&mut cri, n).ok())
        {
            ids.extend(containers.into_iter().map(|(_, id)| id));
        }
        for e in fs::read_dir(&node.manifests)? {
            fs::remove_file(e?.path())?;
        }
        node.once()?;
        let pods = node.run(&["pods"])?;
        ensure!(
            pods.stdout.lines().count() == 1,
            "pods still listed after their manifests were removed: {}: a pod whose \
             manifest is gone must be torn down",
            pods.stdout
        );
        cri.stop_pod_sandbox(&foreign)?;
        cri.remove_pod_sandbox(&foreign)?;
        no_pods_left(sandbox, &mut cri)?;
        let dirs = node.root.join("pods");
        ensure!(
            fs::read_dir(&dirs)?.count() == 0,
            "pod directories left in {}",
            dirs.display()
        );
        ensure!(
            !sandbox
                .cgroups()
                .iter()
                .any(|c| c.starts_with(&format!("{CGROUP_PARENT}/"))),
            "cgroups left: {:?}",
            sandbox.cgroups()
        );
        nothing_left(sandbox, &ids)
    });
    drop(cri);
    node.finish(steps)
}

/// A container's cgroup file, by the container's name in pod `pod`.
fn cgroup_value(
    node: &Node,
    cri: &mut Cri,
    pod: &str,
    container: &str,
    controller: &str,
    file: &str,
) -> Result<String> {
    let (_, containers) = pod_ids(cri, pod)?;
    let id = &containers
        .iter()
        .find(|(n, _)| n == container)
        .with_context(|| format!("no container {container} in {pod}"))?
        .1;
    let path = container_cgroup(&node.sandbox, cri, id)?;
    ensure!(path.starts_with(CGROUP_PARENT), "{container} is in {path}");
    cgroup_file(&node.sandbox, controller, &path, file)
}

fn resources() -> Result<()> {
    let node = Node::start(0.3)?;
    let mut cri = Cri::connect(&node.containerd.socket)?;
    let mut steps = Steps::new("ch07 resources").until_a_failure();
    let v2 = node.sandbox.tree("memory")?.v2();
    // What the cgroup shows for CRI's cpu shares: v1's file, or v2's weight.
    let (shares_file, shares) = if v2 {
        (
            "cpu.weight",
            ch04_cgroups::cgroups::v2::weight as fn(u64) -> u64,
        )
    } else {
        ("cpu.shares", (|s| s) as fn(u64) -> u64)
    };
    steps.step("sized pod started", || {
        node.write("sized.yaml", SIZED)?;
        let out = node.once()?;
        let pods = node.run(&["pods"])?;
        let running = pods
            .stdout
            .lines()
            .filter(|l| l.starts_with("sized\t") && l.contains("\trunning\t"))
            .count();
        ensure!(
            running == 3,
            "the sized pod's three containers are not all running:\n{}{}",
            pods.stdout,
            out.stderr
        );
        Ok(())
    });
    steps.step(
        "limits: memory 64Mi and cpu 500m in the container's cgroup",
        || {
            let mut c =
                |f: &str, ctl: &str| cgroup_value(&node, &mut cri, "sized", "limited", ctl, f);
            let (memory, cpu) = if v2 {
                (c("memory.max", "memory")?, c("cpu.max", "cpu")?)
            } else {
                (
                    c("memory.limit_in_bytes", "memory")?,
                    format!(
                        "{} {}",
                        c("cpu.cfs_quota_us", "cpu")?,
                        c("cpu.cfs_period_us", "cpu")?
                    ),
                )
            };
            ensure!(
                cpu == "50000 100000",
                "cpu quota and period {cpu}, not 50000 100000: a limit of 500m (millicores) \
                 is 50000 µs of each 100000 µs period"
            );
            ensure!(
                memory == "67108864",
                "memory limit {memory}, not 67108864: limits.memory 64Mi is the cgroup's \
                 limit in bytes"
            );
            Ok(())
        },
    );
    steps.step(
        "cpu shares: 512 from the limit, 256 from a request, 2 with neither",
        || {
            for (container, want, why) in [
                (
                    "limited",
                    512,
                    "with no cpu request, the limit stands in for it",
                ),
                ("requested", 256, "a request of 250m is 1024 × 0.25"),
                (
                    "besteffort",
                    2,
                    "with no cpu request nor limit, a container gets the kubelet's minimum",
                ),
            ] {
                let got = cgroup_value(&node, &mut cri, "sized", container, "cpu", shares_file)?;
                ensure!(
                    got == shares(want).to_string(),
                    "{shares_file} of {container} is {got}, not {} ({want} shares): {why}",
                    shares(want)
                );
            }
            let quota = if v2 {
                cgroup_value(&node, &mut cri, "sized", "requested", "cpu", "cpu.max")?
            } else {
                cgroup_value(
                    &node,
                    &mut cri,
                    "sized",
                    "requested",
                    "cpu",
                    "cpu.cfs_quota_us",
                )?
            };
            ensure!(
                quota.starts_with("max") || quota == "-1",
                "a request alone set a cpu quota: {quota}"
            );
            Ok(())
        },
    );
    steps.step("memory limit enforced: the hog is OOMKilled", || {
        node.write(
            "hog.yaml",
            &one_shot("hog", "Never", "memory: 32Mi", "tail /dev/zero"),
        )?;
        node.once()?;
        let hog = wait_for(Duration::from_secs(30), || {
            node.pods_line("hog", "main")
                .ok()
                .filter(|l| l[4] == "exited")
        })
        .context("the memory hog never exited")?;
        ensure!(hog[6].starts_with("OOMKilled"), "hog: {hog:?}");
        Ok(())
    });
    steps.step("manifests removed: no pod left", || {
        remove_every_pod(&node, &mut cri)
    });
    drop(cri);
    node.finish(steps)
}

/// Removes every manifest, runs one pass, and requires that no pod is left.
fn remove_every_pod(node: &Node, cri: &mut Cri) -> Result<()> {
    for e in fs::read_dir(&node.manifests)? {
        fs::remove_file(e?.path())?;
    }
    node.once()?;
    no_pods_left(&node.sandbox, cri)
}

/// What the test saw of one container's attempts: attempt → (id, created_at in ns).
type Attempts = BTreeMap<u32, (String, i64)>;

fn restarts() -> Result<()> {
    let backoff = 0.5;
    let node = Node::start(backoff)?;
    let mut cri = Cri::connect(&node.containerd.socket)?;
    let mut steps = Steps::new("ch07 restarts").until_a_failure();
    let mut seen: BTreeMap<&str, Attempts> = BTreeMap::new();
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let pods = [
        ("onfailure", "OnFailure", "exit 1"),
        ("never", "Never", "exit 1"),
        ("always", "Always", "exit 0"),
        ("succeeds", "OnFailure", "exit 0"),
    ];
    steps.step("passes until onfailure's attempt 3", || {
        for (name, policy, script) in pods {
            node.write(
                &format!("{name}.yaml"),
                &one_shot(name, policy, "memory: 64Mi", script),
            )?;
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            node.once()?;
            for (name, _, _) in pods {
                let Ok((pod, _)) = pod_ids(&mut cri, name) else {
                    continue;
                };
                for c in cri.list_containers(&pod, Default::default())? {
                    let attempt = c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0);
                    let known = ids.entry(name).or_default();
                    if !known.contains(&c.id) {
                        known.push(c.id.clone());
                    }
                    seen.entry(name)
                        .or_default()
                        .entry(attempt)
                        .or_insert((c.id, c.created_at));
                }
            }
            let tries = ids.get("onfailure").map_or(0, Vec::len);
            if seen.get("onfailure").is_some_and(|a| a.contains_key(&3)) || tries > 4 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    });
    steps.step("a restart is the next attempt: the restart count", || {
        let tries = ids.get("onfailure").cloned().unwrap_or_default();
        let attempts: Vec<u32> = seen
            .get("onfailure")
            .map(|a| a.keys().copied().collect())
            .unwrap_or_default();
        ensure!(
            tries.len() >= 2,
            "onfailure (exit 1, restartPolicy OnFailure) was never started again: {tries:?}"
        );
        ensure!(
            attempts == (0..attempts.len() as u32).collect::<Vec<_>>()
                && attempts.len() == tries.len(),
            "onfailure was started {} times, with attempts {attempts:?}: each restart must be \
             the latest attempt + 1 (the pod's restart count)",
            tries.len()
        );
        ensure!(
            attempts.contains(&3),
            "onfailure never reached attempt 3 within 90 s: {attempts:?}"
        );
        let line = node.pods_line("onfailure", "main")?;
        ensure!(line[5].parse::<u32>()? >= 3, "pods: {line:?}");
        Ok(())
    });
    steps.step(
        "the back-off doubles: attempt n+1 starts at least 0.5 s × 2^n after attempt n",
        || {
            let attempts = seen.get("onfailure").cloned().unwrap_or_default();
            for (n, (_, created)) in &attempts {
                let Some((_, next)) = attempts.get(&(n + 1)) else {
                    continue;
                };
                let gap = (next - created) as f64 / 1e9;
                let want = backoff * f64::from(1u32 << n);
                ensure!(
                    gap >= want,
                    "attempt {} of onfailure was created {gap:.2} s after attempt {n}, \
                     before its back-off of {want} s ran out: the wait is --backoff {backoff} \
                     doubled once per earlier attempt, counted from the exit",
                    n + 1
                );
            }
            Ok(())
        },
    );
    steps.step(
        "restartPolicy: Never and OnFailure after exit 0 stay exited; Always restarts",
        || {
            let never = node.pods_line("never", "main")?;
            ensure!(
                never[5] == "0" && never[4] == "exited" && never[6] == "Error (1)",
                "never (restartPolicy Never, exit 1) was started again or is not exited: \
                 {never:?}: the restartPolicy decides whether an exited container restarts"
            );
            let succeeds = node.pods_line("succeeds", "main")?;
            ensure!(
                succeeds[5] == "0" && succeeds[4] == "exited" && succeeds[6] == "Completed (0)",
                "succeeds (restartPolicy OnFailure, exit 0) was started again: {succeeds:?}: \
                 the restartPolicy decides whether an exited container restarts"
            );
            let always = node.pods_line("always", "main")?;
            ensure!(
                always[5].parse::<u32>()? >= 1,
                "always (restartPolicy Always, exit 0) was never started again: {always:?}"
            );
            Ok(())
        },
    );
    steps.step("manifests removed: no pod left", || {
        remove_every_pod(&node, &mut cri)
    });
    drop(cri);
    node.finish(steps)
}

/// Hints that follow the failure (see `cfs_tests::lab::hints`).
const HINTS: &[(&str, &str)] = &[
    (
        r"without the label cfs\.ch07/pod was removed",
        "a sandbox without the pod label is not this kubelet's (crictl's, another kubelet's): \
         reconcile must skip it, never tear it down",
    ),
    (
        r"stayed: a sandbox whose",
        "a changed manifest is a different pod: compare each sandbox's hash label with its \
         file's hash, and tear the pod down when they differ",
    ),
    (
        r"pods still listed after their manifests were removed",
        "a pod whose manifest is gone must be torn down: a sandbox with the pod label and no \
         file wanting it goes, containers first",
    ),
    (
        r"cpu quota and period \d+ \d+, not 50000 100000",
        "the quota is in µs of each 100000 µs period: a limit's millicores times 100 (500m: \
         50000), with the period 100000",
    ),
    (
        r"memory limit \S+, not 67108864",
        "limits.memory is the cgroup's memory limit, in bytes; a request limits nothing",
    ),
    (
        r"of limited is \d+, not",
        "with no cpu request, the limit stands in for it: shares from requests.cpu, or else \
         limits.cpu",
    ),
    (
        r"of besteffort is \d+, not",
        "a container that asks for no cpu still gets the kubelet's minimum of 2 shares, not \
         the cgroup's default",
    ),
    (
        r"with attempts \[",
        "each restart must be the latest attempt + 1: that number is the pod's restart count",
    ),
    (
        r"was started again or is not exited|\(restartPolicy OnFailure, exit 0\) was started again",
        "the restartPolicy decides whether an exited container restarts: Never never, OnFailure \
         only after a non-zero exit code, Always always",
    ),
    (
        r"a pass with bad manifests in the directory failed",
        "one pod's error ended the whole pass: reconcile must report each pod's error (once, \
         naming the file) and go on with the next pod",
    ),
    (
        r"was created [0-9.]+ s after attempt",
        "sync restarted before the back-off ran out: compare now with the exit time \
         (finished_at) plus --backoff doubled once per earlier attempt, and skip the container \
         until then",
    ),
];

fn main() -> ExitCode {
    cfs_tests::lab::hints(HINTS);
    cfs_tests::main(vec![
        check(
            "reconcile_starts_changes_and_removes_pods",
            "from the manifests, the pods CRI lists: a new file is a sandbox and its containers \
             (the runtime's create, the pod IP, localhost and emptyDir shared); a sandbox \
             without the label cfs.ch07/pod is left alone; a bad manifest is one error line \
             and the pass goes on; a changed file is a new sandbox; a removed file leaves no \
             sandbox, container, cgroup, mount, veth, network namespace or pod directory",
            "reconcile lists the sandboxes, skips those without the pod label, tears down those \
             whose manifest is gone, changed (hash label) or not ready, then starts what is \
             missing and syncs the rest, reporting each pod's error and going on",
            reconcile_loop,
        ),
        check(
            "resources_become_cgroup_limits",
            "the containers' cgroup files: limits {memory: 64Mi, cpu: 500m} are a memory limit \
             of 67108864 and a quota of 50000 per 100000 µs; cpu shares (v2: cpu.weight) are 512 \
             from the limit, 256 from a request of 250m, 2 with neither; a hog limited to 32Mi \
             is OOMKilled",
            "linux_resources: a cpu limit in millicores times 100 is the quota per 100 ms \
             period; the request (or else the limit) times 1024 / 1000 the shares, at least 2; \
             the memory limit in bytes",
            resources,
        ),
        check(
            "restarts_follow_the_policy_with_backoff",
            "with --backoff 0.5, a container that exits 1 under OnFailure is created again as \
             attempts 1, 2, 3, each at least 0.5 s × 2^n after the one before (containerd's \
             created_at); Never and OnFailure after exit 0 stay exited, Always restarts",
            "sync looks at each container's latest attempt: an exited one whose policy says \
             restart, once its back-off (doubling per attempt) has run out since finished_at, \
             is removed and created again as attempt + 1",
            restarts,
        ),
    ])
}
