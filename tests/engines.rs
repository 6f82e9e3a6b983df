//! Container engines drive chapter 6's runtime: containerd through `ctr`
//! and through its CRI plugin, each started privately in a [`Sandbox`] (its
//! own network, mount, PID and cgroup namespaces, its cgroup beneath the
//! test's), each once with runc (to show the test itself right) and once
//! with `ch06-full-runtime`. Docker and podman, which take longer, are in
//! `engines_cli.rs`; the steps and checks they share are in
//! `cfs_tests::engines`.
//!
//! Every test walks a list of steps and reports each one (`ok` or `FAILED`
//! with the reason and its time) before it fails with all failures: hello,
//! exit code, `run -d` + `exec`, `ps`, `pause`/`resume` (the freezer state
//! read in the container's cgroup), `stop` of a PID 1 that ignores TERM
//! (TERM, then KILL: exit 137), `rm`, limits read back from the container's
//! cgroup files, and nothing left (runtime state, cgroups, mounts,
//! processes). For CRI: a pod sandbox (the pause image, a CNI bridge) and a
//! container run, stop and are removed.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cfs_tests::engines::{
    cgroup_of, check_limits, cri_containerd, frozen, id, import_busybox, no_pods_left, none_listed,
    nothing_left, pid1_is_sleep, runtime_calls, term_then_kill, wrapper, Containerd, Runtime,
    Steps, BUSYBOX, PAUSE,
};
use cfs_tests::run::wait_for;
use cfs_tests::sandbox::Sandbox;
use cfs_tests::{ensure, root, Context, Result};
use nix::unistd::Pid;

// ---------------------------------------------------------------- containerd

/// The PID (in the sandbox) and status of task `id`, from `ctr task ls`.
fn task(sandbox: &Sandbox, containerd: &Containerd, id: &str) -> Result<Option<(i32, String)>> {
    let out = containerd.ctr(sandbox, &["task", "ls"])?;
    out.expect_code(0)?;
    Ok(out.stdout.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&id)).then(|| (f[1].parse().unwrap_or(0), f[2].to_string()))
    }))
}

fn ctr(runtime: Runtime) -> Result<()> {
    let sandbox = Sandbox::start("h3")?;
    let containerd = Containerd::start(
        &sandbox,
        "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
    )?;
    import_busybox(&sandbox, &containerd, "default")?;
    let rt = wrapper(&sandbox, runtime)?.display().to_string();
    let mut steps = Steps::new(&format!("ctr/{}", runtime.name()));
    let c = |args: &[&str]| containerd.ctr(&sandbox, args);
    let run = |id: &str, extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--runc-binary", rt.as_str()];
        args.extend_from_slice(extra);
        args.push(BUSYBOX);
        args.push(id);
        args.extend_from_slice(cmd);
        c(&args)
    };
    let mut ids = Vec::new();

    steps.step("hello", || {
        let id = id("hello");
        let out = run(&id, &["--rm"], &["echo", "hello"])?;
        out.expect_code(0)?;
        ensure!(out.stdout.trim() == "hello", "printed {:?}", out.stdout);
        ensure!(
            runtime_calls(&sandbox).iter().any(|l| l.contains(&id)),
            "the runtime was never called for {id}"
        );
        Ok(())
    });
    steps.step("exit code", || {
        run(&id("exit"), &["--rm"], &["sh", "-c", "exit 3"])?.expect_code(3)?;
        Ok(())
    });
    let main = id("main");
    ids.push(main.clone());
    let mut path = String::new();
    let mut pid = Pid::from_raw(0);
    let started = steps.step("run -d", || {
        run(&main, &["-d"], &["sleep", "1000"])?.expect_code(0)?;
        let (inner, status) = task(&sandbox, &containerd, &main)?.context("no task")?;
        ensure!(status == "RUNNING", "task is {status}");
        pid = sandbox
            .host_pid(inner)
            .context("task's pid not in the sandbox")?;
        path = cgroup_of(&sandbox, pid)?;
        Ok(())
    });
    if started {
        steps.step(
            "cgroup /default/<id> (cgroupsPath) beneath the sandbox's",
            || {
                ensure!(
                    path == format!("/default/{main}"),
                    "container's cgroup is {path}, not /default/{main}"
                );
                Ok(())
            },
        );
        steps.step("exec", || {
            let out = c(&[
                "task",
                "exec",
                "--exec-id",
                "e1",
                &main,
                "cat",
                "/proc/1/cmdline",
            ])?;
            pid1_is_sleep(&out)
        });
        steps.step("ps", || {
            let out = c(&["task", "ps", &main])?;
            out.expect_code(0)?;
            let inner = task(&sandbox, &containerd, &main)?.context("no task")?.0;
            ensure!(
                out.stdout.contains(&inner.to_string()),
                "ps: {}",
                out.stdout
            );
            Ok(())
        });
        steps.step("pause/resume", || {
            c(&["task", "pause", &main])?.expect_code(0)?;
            ensure!(frozen(&sandbox, &path)?, "not frozen after pause");
            let status = task(&sandbox, &containerd, &main)?.context("no task")?.1;
            ensure!(status == "PAUSED", "task is {status} after pause");
            c(&["task", "resume", &main])?.expect_code(0)?;
            ensure!(!frozen(&sandbox, &path)?, "still frozen after resume");
            Ok(())
        });
        steps.step("stop: TERM ignored, then KILL: 137", || {
            c(&["task", "kill", &main])?.expect_code(0)?;
            std::thread::sleep(Duration::from_millis(500));
            let status = task(&sandbox, &containerd, &main)?.context("no task")?.1;
            ensure!(
                status == "RUNNING",
                "task is {status} after TERM, which PID 1 ignores"
            );
            c(&["task", "kill", "--signal", "KILL", &main])?.expect_code(0)?;
            wait_for(Duration::from_secs(20), || {
                task(&sandbox, &containerd, &main)
                    .ok()
                    .flatten()
                    .filter(|t| t.1 == "STOPPED")
            })
            .context("task not STOPPED after KILL")?;
            term_then_kill(&sandbox, &main)?;
            let out = c(&["task", "delete", &main])?;
            out.expect_code(0)?;
            ensure!(
                out.stdout.contains("137") || out.stderr.contains("137"),
                "exit status: {out:?}"
            );
            Ok(())
        });
        steps.step("rm", || {
            c(&["container", "delete", &main])?.expect_code(0)?;
            ensure!(
                !path.is_empty() && !sandbox.cgroups().contains(&path),
                "cgroup {path} left"
            );
            Ok(())
        });
    }
    if !started {
        // Whatever half of it exists, so that the next steps start clean.
        let _ = c(&["task", "kill", "--signal", "KILL", &main]);
        let _ = wait_for(Duration::from_secs(10), || {
            task(&sandbox, &containerd, &main)
                .ok()
                .flatten()
                .filter(|t| t.1 == "STOPPED")
        });
        let _ = c(&["task", "delete", &main]);
        let _ = c(&["container", "delete", &main]);
    }
    steps.step(
        "limits: --memory-limit 64m --cpus 0.5 in cgroup files",
        || {
            let id = id("limits");
            ids.push(id.clone());
            run(
                &id,
                &["-d", "--memory-limit", "67108864", "--cpus", "0.5"],
                &["sleep", "1000"],
            )?
            .expect_code(0)?;
            let result = (|| {
                let inner = task(&sandbox, &containerd, &id)?.context("no task")?.0;
                let pid = sandbox.host_pid(inner).context("no pid")?;
                check_limits(&sandbox, &cgroup_of(&sandbox, pid)?, false)
            })();
            c(&["task", "kill", "--signal", "KILL", &id])?;
            wait_for(Duration::from_secs(20), || {
                task(&sandbox, &containerd, &id)
                    .ok()
                    .flatten()
                    .filter(|t| t.1 == "STOPPED")
            })?;
            c(&["task", "delete", &id])?.expect_code(0)?;
            c(&["container", "delete", &id])?.expect_code(0)?;
            result
        },
    );
    steps.step("nothing left", || {
        none_listed(&c(&["task", "ls", "-q"])?, "tasks")?;
        none_listed(&c(&["container", "ls", "-q"])?, "containers")?;
        nothing_left(&sandbox, &ids)
    });
    steps.stop_containerd(containerd, sandbox)
}

// ------------------------------------------------------ containerd's CRI plugin

fn cri(runtime: Runtime) -> Result<()> {
    use cfs_tests::cri::{v1, Cri};
    let sandbox = Sandbox::start("h3")?;
    let rt = wrapper(&sandbox, runtime)?;
    let containerd = cri_containerd(&sandbox, "h3", &rt)?;
    let mut steps = Steps::new(&format!("cri/{}", runtime.name()));
    let mut cri = Cri::connect(&containerd.socket)?;
    let parent = "/cfs-pods-h3";
    let pod_config = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: "cfs-h3-pod".into(),
            uid: format!("cfs-h3-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "cfs-h3-pod".into(),
        log_directory: sandbox.dir.join("pod-logs").display().to_string(),
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: parent.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut ids: Vec<String> = Vec::new();
    let mut pod = String::new();
    steps.step("version: runtime.v1", || {
        let version = cri.version()?;
        ensure!(version.runtime_api_version == "v1", "{version:?}");
        let images = cri.images()?;
        ensure!(
            images.iter().any(|i| i == PAUSE),
            "no pause image among {images:?}"
        );
        Ok(())
    });
    let ran = steps.step("run pod sandbox (pause, CNI bridge)", || {
        pod = cri.run_pod_sandbox(&pod_config, "cfs")?;
        ids.push(pod.clone());
        ensure!(
            runtime_calls(&sandbox).iter().any(|l| l.contains(&pod)),
            "the runtime was never called for the pod's sandbox {pod}"
        );
        Ok(())
    });
    let mut container = String::new();
    if ran {
        steps.step("pause container's cgroup <parent>/<id>", || {
            let pid = sandbox
                .processes()
                .into_iter()
                .find(|p| {
                    fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c.starts_with("/pause\0"))
                })
                .context("no /pause process in the sandbox")?;
            let path = cgroup_of(&sandbox, pid)?;
            ensure!(path == format!("{parent}/{pod}"), "pause is in {path}");
            Ok(())
        });
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: "hello".into(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: vec![
                "sh".into(),
                "-c".into(),
                "trap '' TERM; echo hello; ip -o -4 addr; while :; do sleep 1; done".into(),
            ],
            log_path: "hello.log".into(),
            linux: Some(v1::LinuxContainerConfig {
                resources: Some(v1::LinuxContainerResources {
                    cpu_period: 100_000,
                    cpu_quota: 50_000,
                    memory_limit_in_bytes: 64 << 20,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let started = steps.step("create and start a container", || {
            container = cri.create_container(&pod, &config, &pod_config)?;
            ids.push(container.clone());
            cri.start_container(&container)?;
            let log = sandbox.dir.join("pod-logs/hello.log");
            wait_for(Duration::from_secs(20), || {
                fs::read_to_string(&log)
                    .ok()
                    .filter(|l| l.contains("10.88.42."))
            })
            .with_context(|| format!("no hello and pod address in {}", log.display()))?;
            let log = fs::read_to_string(&log)?;
            ensure!(log.contains(" stdout F hello"), "log: {log}");
            Ok(())
        });
        if started {
            let mut path = String::new();
            steps.step("container's cgroup <parent>/<id>", || {
                let (status, info) = cri.container_status(&container)?;
                ensure!(
                    status.state == v1::ContainerState::ContainerRunning as i32,
                    "{status:?}"
                );
                let info: serde_json::Value = serde_json::from_str(&info)?;
                let inner = info["pid"].as_i64().context("no pid in the status info")? as i32;
                let pid = sandbox
                    .host_pid(inner)
                    .context("container's pid not in the sandbox")?;
                path = cgroup_of(&sandbox, pid)?;
                ensure!(
                    path == format!("{parent}/{container}"),
                    "container is in {path}"
                );
                Ok(())
            });
            steps.step("limits: memory 64m, cpu quota 0.5 in cgroup files", || {
                ensure!(!path.is_empty(), "no cgroup found");
                check_limits(&sandbox, &path, false)
            });
            steps.step("stop: TERM ignored, then KILL: 137", || {
                cri.stop_container(&container, 1)?;
                let (status, _) = cri.container_status(&container)?;
                ensure!(
                    status.state == v1::ContainerState::ContainerExited as i32,
                    "{status:?}"
                );
                ensure!(status.exit_code == 137, "exit code {}", status.exit_code);
                term_then_kill(&sandbox, &container)
            });
        }
        steps.step("remove container, stop and remove pod", || {
            if !container.is_empty() {
                cri.remove_container(&container)?;
            }
            cri.stop_pod_sandbox(&pod)?;
            cri.remove_pod_sandbox(&pod)?;
            Ok(())
        });
    }
    steps.step("nothing left", || {
        no_pods_left(&sandbox, &mut cri)?;
        nothing_left(&sandbox, &ids)
    });
    drop(cri);
    steps.stop_containerd(containerd, sandbox)
}

/// The sandbox itself: an engine-free check that its cgroup namespace is
/// rooted at the test's cgroup, that a cgroup made in it lands beneath ours
/// on the host, and that nothing is left after it.
fn sandbox_is_beneath_our_cgroup() -> Result<()> {
    let sandbox = Sandbox::start("h3")?;
    let mut cmd = sandbox.command("sh");
    cmd.args(["-c", "cat /proc/self/cgroup; mkdir /sys/fs/cgroup/pids/probe 2>/dev/null || mkdir /sys/fs/cgroup/probe; ip -o link"]);
    let out = cfs_tests::run::output(cmd)?;
    out.expect_code(0)?;
    for line in out.stdout.lines().filter(|l| l.contains(":/")) {
        ensure!(
            line.ends_with(":/init"),
            "inside, the sandbox's processes are in {line}, not /init"
        );
    }
    ensure!(
        out.stdout.contains("lo:") && !out.stdout.contains("eth"),
        "links: {}",
        out.stdout
    );
    ensure!(
        sandbox.cgroups().contains(&"/probe".to_string()),
        "{:?}",
        sandbox.cgroups()
    );
    let pids = sandbox.tree("pids")?.root.join("probe");
    ensure!(pids.exists(), "{} missing on the host", pids.display());
    let dir = sandbox.dir.clone();
    let roots: Vec<PathBuf> = sandbox.trees.iter().map(|t| t.root.clone()).collect();
    let init = sandbox.init;
    sandbox.stop()?;
    ensure!(!dir.exists(), "{} left", dir.display());
    ensure!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "PID 1 {init} left"
    );
    for root in roots {
        ensure!(!root.exists(), "cgroup {} left", root.display());
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut trials = vec![root(
        "sandbox_is_beneath_our_cgroup",
        sandbox_is_beneath_our_cgroup,
    )];
    for runtime in [Runtime::Runc, Runtime::Ch06] {
        let name = runtime.name();
        trials.push(root(&format!("containerd_ctr_{name}"), move || {
            ctr(runtime)
        }));
        trials.push(root(&format!("containerd_cri_{name}"), move || {
            cri(runtime)
        }));
    }
    cfs_tests::main(trials)
}
