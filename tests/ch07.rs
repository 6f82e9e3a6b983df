//! Chapter 7: `ch07-node`, a kubelet for static pods, drives containerd's
//! CRI plugin in a private [`Sandbox`] (the engines harness: its own
//! network, mount, PID and cgroup namespaces beneath the test's cgroup),
//! with chapter 6's runtime as the runtime handler `cfs` (a wrapper logs
//! each of its command lines) and runc as the default handler.
//!
//! One test walks a node's life in steps (each reported `ok`/`FAILED`):
//! manifests appear, the loop starts the pods; the kernel and the runtime
//! are asked what happened (the runtime's command lines, the pod's IP in
//! the CNI subnet, cgroup files, the emptyDir and the shared localhost seen
//! from the other container); restart policies; an OOM kill; bad manifests;
//! the same pod on runc; then the manifests go and nothing may be left.

use std::fs;
use std::time::Duration;

use cfs_tests::cri::Cri;
use cfs_tests::engines::{
    cgroup_file, cgroup_of, cri_containerd, no_pods_left, nothing_left, runtime_calls, wrapper,
    Runtime, Steps, POD_SUBNET,
};
use cfs_tests::run::{output_within, wait_for, Output};
use cfs_tests::sandbox::Sandbox;
use cfs_tests::{ensure, paths, root, Context, Result};

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

struct Node<'a> {
    sandbox: &'a Sandbox,
    socket: String,
    manifests: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl Node<'_> {
    /// `ch07-node ARGS` in the sandbox, with this node's endpoint and root.
    fn run(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = self.sandbox.command(paths::bin("ch07-node"));
        cmd.args(["--endpoint", &self.socket, "--root"])
            .arg(&self.root)
            .args(["--cgroup-parent", CGROUP_PARENT, "--backoff", "0.3"])
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

fn node_lifecycle() -> Result<()> {
    let sandbox = Sandbox::start("h9")?;
    let rt = wrapper(&sandbox, Runtime::Ch06)?;
    let containerd = cri_containerd(&sandbox, "h9", &rt)?;
    let node = Node {
        sandbox: &sandbox,
        socket: containerd.socket.display().to_string(),
        manifests: sandbox.dir.join("manifests"),
        root: sandbox.dir.join("node"),
    };
    fs::create_dir_all(&node.manifests)?;
    let mut cri = Cri::connect(&containerd.socket)?;
    let mut steps = Steps::new("ch07 node");
    let mut ids: Vec<String> = Vec::new();
    let subnet = POD_SUBNET.trim_end_matches("0/24");

    steps.step(
        "web pod on cfs: ch06 ran the sandbox and both containers",
        || {
            node.write("web.yaml", &web("web", "runtimeClassName: cfs"))?;
            node.write("web-runc.yaml", &web("web-runc", ""))?;
            let out = node.once()?;
            eprintln!("{}", out.stderr);
            ensure!(
                out.stderr
                    .contains("web.yaml: field spec.nodeSelector is not supported"),
                "no warning naming spec.nodeSelector: {}",
                out.stderr
            );
            let (pod, containers) = pod_ids(&mut cri, "web")?;
            ensure!(containers.len() == 2, "containers: {containers:?}");
            let calls = runtime_calls(&sandbox);
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
    steps.step(
        "limits: memory 64Mi and cpu 500m in the server's cgroup",
        || {
            let (_, containers) = pod_ids(&mut cri, "web")?;
            let server = &containers
                .iter()
                .find(|(n, _)| n == "server")
                .context("no server")?
                .1;
            let path = container_cgroup(&sandbox, &mut cri, server)?;
            ensure!(path.starts_with(CGROUP_PARENT), "server is in {path}");
            if sandbox.tree("memory")?.v2() {
                ensure!(
                    cgroup_file(&sandbox, "memory", &path, "memory.max")? == "67108864",
                    "memory.max"
                );
                let max = cgroup_file(&sandbox, "cpu", &path, "cpu.max")?;
                ensure!(max == "50000 100000", "cpu.max {max}");
            } else {
                let limit = cgroup_file(&sandbox, "memory", &path, "memory.limit_in_bytes")?;
                ensure!(limit == "67108864", "memory.limit_in_bytes {limit}");
                let quota = cgroup_file(&sandbox, "cpu", &path, "cpu.cfs_quota_us")?;
                ensure!(quota == "50000", "cpu.cfs_quota_us {quota}");
            }
            Ok(())
        },
    );
    steps.step("same pod on runc (default handler): not ch06", || {
        let (pod, containers) = pod_ids(&mut cri, "web-runc")?;
        ids.push(pod.clone());
        ensure!(
            !runtime_calls(&sandbox).iter().any(|l| l.contains(&pod)),
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
        "restart: OnFailure restarts exit 1, Never does not; OOMKilled",
        || {
            node.write(
                "onfailure.yaml",
                &one_shot("onfailure", "OnFailure", "memory: 64Mi", "exit 1"),
            )?;
            node.write(
                "never.yaml",
                &one_shot("never", "Never", "memory: 64Mi", "exit 1"),
            )?;
            node.write(
                "hog.yaml",
                &one_shot("hog", "Never", "memory: 32Mi", "tail /dev/zero"),
            )?;
            for _ in 0..6 {
                node.once()?;
                std::thread::sleep(Duration::from_millis(700));
            }
            let on = node.pods_line("onfailure", "main")?;
            let restarts: u32 = on[5].parse()?;
            ensure!(
                restarts >= 2,
                "onfailure restarted {restarts} times: {on:?}"
            );
            let never = node.pods_line("never", "main")?;
            ensure!(
                never[5] == "0" && never[4] == "exited" && never[6].contains("(1)"),
                "never: {never:?}"
            );
            let hog = wait_for(Duration::from_secs(30), || {
                node.pods_line("hog", "main")
                    .ok()
                    .filter(|l| l[4] == "exited")
            })
            .context("the memory hog never exited")?;
            ensure!(hog[6].starts_with("OOMKilled"), "hog: {hog:?}");
            Ok(())
        },
    );
    steps.step("bad manifests: one line each naming file and field; others run", || {
        node.write("a-broken.yaml", "kind: Pod\nmetadata: {name: broken\nspec: [")?;
        node.write("b-class.yaml", &one_shot("badclass", "Never", "memory: 64Mi", "true").replace("runtimeClassName: cfs", "runtimeClassName: nope"))?;
        node.write("c-image.yaml", &web("noimage", "runtimeClassName: cfs").replace("image: docker.io/cfs/busybox:latest\n    command: [sh, -c]", "image: docker.io/cfs/absent:latest\n    command: [sh, -c]"))?;
        let out = node.once()?;
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
        for f in ["a-broken.yaml", "b-class.yaml", "c-image.yaml"] {
            fs::remove_file(node.manifests.join(f))?;
        }
        Ok(())
    });
    steps.step("changed manifest: the pod is made again", || {
        let (before, _) = pod_ids(&mut cri, "never")?;
        node.write(
            "never.yaml",
            &one_shot("never", "Never", "memory: 64Mi", "exit 2"),
        )?;
        node.once()?;
        let (after, _) = pod_ids(&mut cri, "never")?;
        ensure!(before != after, "same sandbox {before}");
        ensure!(
            cri.pod_sandboxes()?.len() == 5,
            "{:?}",
            cri.pod_sandboxes()?
        );
        Ok(())
    });
    steps.step("manifests removed: nothing left", || {
        for (_, containers) in ["web", "never", "onfailure", "hog"]
            .iter()
            .filter_map(|n| pod_ids(&mut cri, n).ok())
        {
            ids.extend(containers.into_iter().map(|(_, id)| id));
        }
        for e in fs::read_dir(&node.manifests)? {
            fs::remove_file(e?.path())?;
        }
        node.once()?;
        no_pods_left(&sandbox, &mut cri)?;
        let pods = node.root.join("pods");
        ensure!(
            fs::read_dir(&pods)?.count() == 0,
            "pod directories left in {}",
            pods.display()
        );
        ensure!(
            !sandbox
                .cgroups()
                .iter()
                .any(|c| c.starts_with(&format!("{CGROUP_PARENT}/"))),
            "cgroups left: {:?}",
            sandbox.cgroups()
        );
        nothing_left(&sandbox, &ids)
    });
    drop(cri);
    steps.stop_containerd(containerd, sandbox)
}

fn main() -> std::process::ExitCode {
    cfs_tests::main(vec![root("node_lifecycle", node_lifecycle)])
}
