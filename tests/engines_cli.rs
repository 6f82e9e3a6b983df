//! Docker (20.10) and podman (4.3) drive chapter 6's runtime, each started
//! privately in a [`Sandbox`], each once with runc and once with
//! `ch06-full-runtime`, through the steps of `engines.rs` plus `top`,
//! `--pids-limit` and `--cgroup-parent`. Host only (scripts/vm/host-only):
//! see there why.

use cfs_tests::engines::{
    cgroup_of, check_limits, frozen, id, none_listed, nothing_left, pid1_is_sleep, runtime_calls,
    term_then_kill, wrapper, Cli, Runtime, Steps,
};
use cfs_tests::sandbox::Sandbox;
use cfs_tests::{ensure, root, Context, Result};
use nix::unistd::Pid;

// ------------------------------------------------------------ docker, podman

fn cli(engine: &str, runtime: Runtime) -> Result<()> {
    let sandbox = Sandbox::start("h3")?;
    let rt = wrapper(&sandbox, runtime)?;
    let cli = match engine {
        "docker" => Cli::docker(&sandbox, &rt)?,
        _ => Cli::podman(&sandbox, &rt)?,
    };
    let mut steps = Steps::new(&format!("{engine}/{}", runtime.name()));
    let e = |args: &[&str]| cli.run(&sandbox, args);
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--network", "none"];
        if engine == "docker" {
            args.extend(["--runtime", "cfs"]);
        }
        args.extend_from_slice(extra);
        args.push("cfs/busybox");
        args.extend_from_slice(cmd);
        e(&args)
    };
    let inspect = |id: &str, format: &str| -> Result<String> {
        let out = e(&["inspect", "--format", format, id])?;
        out.expect_code(0)?;
        Ok(out.stdout.trim().to_string())
    };
    let started = |id: &str| -> Result<(Pid, String)> {
        let inner: i32 = inspect(id, "{{.State.Pid}}")?.parse()?;
        let pid = sandbox
            .host_pid(inner)
            .context("container's pid not in the sandbox")?;
        Ok((pid, cgroup_of(&sandbox, pid)?))
    };
    // The cgroupsPath each engine gives with cgroupfs, as runc places it:
    // Docker `<parent>/<id>` (parent /docker), podman `<parent>/libpod-<id>`
    // (parent /libpod_parent).
    let named = |id: &str, path: &str, parent: Option<&str>| -> Result<()> {
        let full = inspect(id, "{{.Id}}")?;
        let want = match (engine, parent) {
            ("docker", p) => format!("{}/{full}", p.unwrap_or("/docker")),
            (_, p) => format!("{}/libpod-{full}", p.unwrap_or("/libpod_parent")),
        };
        ensure!(path == want, "container's cgroup is {path}, not {want}");
        Ok(())
    };
    // `rm --force` stops a container first: Docker with KILL, podman with
    // TERM, then KILL after 10 s, unless told otherwise.
    let rm_force = match engine {
        "docker" => ["rm", "--force", "--volumes"],
        _ => ["rm", "--force", "--time=0"],
    };
    let mut ids: Vec<String> = Vec::new();

    steps.step("hello", || {
        let out = run(&["--rm"], &["echo", "hello"])?;
        out.expect_code(0)?;
        ensure!(out.stdout.trim() == "hello", "printed {:?}", out.stdout);
        ensure!(
            !runtime_calls(&sandbox).is_empty(),
            "the runtime was never called"
        );
        Ok(())
    });
    steps.step("exit code", || {
        run(&["--rm"], &["sh", "-c", "exit 3"])?.expect_code(3)?;
        Ok(())
    });
    let main = id("main");
    let mut path = String::new();
    let ok = steps.step("run -d", || {
        let out = run(&["-d", "--name", &main], &["sleep", "1000"])?;
        out.expect_code(0)?;
        ids.push(out.stdout.trim().to_string());
        path = started(&main)?.1;
        Ok(())
    });
    if ok {
        steps.step(
            "cgroup named after the id (cgroupsPath) beneath the sandbox's",
            || named(&main, &path, None),
        );
        steps.step("exec", || {
            let out = e(&["exec", &main, "cat", "/proc/1/cmdline"])?;
            pid1_is_sleep(&out)
        });
        steps.step("top", || {
            let out = e(&["top", &main])?;
            out.expect_code(0)?;
            ensure!(out.stdout.contains("sleep 1000"), "top: {}", out.stdout);
            Ok(())
        });
        steps.step("pause/unpause", || {
            e(&["pause", &main])?.expect_code(0)?;
            ensure!(frozen(&sandbox, &path)?, "not frozen after pause");
            let status = inspect(&main, "{{.State.Status}}")?;
            ensure!(status == "paused", "status {status} after pause");
            e(&["unpause", &main])?.expect_code(0)?;
            ensure!(!frozen(&sandbox, &path)?, "still frozen after unpause");
            Ok(())
        });
        steps.step("rm", || {
            e(&[rm_force[0], rm_force[1], rm_force[2], &main])?.expect_code(0)?;
            ensure!(!sandbox.cgroups().contains(&path), "cgroup {path} left");
            Ok(())
        });
    }
    steps.step("stop: TERM ignored, then KILL: 137", || {
        let id = id("stop");
        let out = run(
            &["-d", "--name", &id],
            &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        )?;
        out.expect_code(0)?;
        let full = out.stdout.trim().to_string();
        ids.push(full.clone());
        e(&["stop", "--time", "1", &id])?.expect_code(0)?;
        let code = inspect(&id, "{{.State.ExitCode}}")?;
        let result = (|| {
            ensure!(code == "137", "exit code {code}, not 137");
            term_then_kill(&sandbox, &full)
        })();
        e(&["rm", &id])?.expect_code(0)?;
        result
    });
    steps.step(
        "limits: --memory 64m --cpus 0.5 --pids-limit 20 in cgroup files",
        || {
            let id = id("limits");
            let out = run(
                &[
                    "-d",
                    "--name",
                    &id,
                    "--memory",
                    "64m",
                    "--cpus",
                    "0.5",
                    "--pids-limit",
                    "20",
                ],
                &["sleep", "1000"],
            )?;
            out.expect_code(0)?;
            ids.push(out.stdout.trim().to_string());
            let result = started(&id).and_then(|(_, path)| check_limits(&sandbox, &path, true));
            e(&[rm_force[0], rm_force[1], rm_force[2], &id])?.expect_code(0)?;
            result
        },
    );
    steps.step("--cgroup-parent", || {
        let id = id("parent");
        let parent = "/cfs-parent-h3";
        let out = run(
            &["-d", "--name", &id, "--cgroup-parent", parent],
            &["sleep", "1000"],
        )?;
        out.expect_code(0)?;
        ids.push(out.stdout.trim().to_string());
        let result = started(&id).and_then(|(_, path)| named(&id, &path, Some(parent)));
        e(&[rm_force[0], rm_force[1], rm_force[2], &id])?.expect_code(0)?;
        result
    });
    steps.step("nothing left", || {
        none_listed(&e(&["ps", "--all", "--quiet"])?, "containers")?;
        nothing_left(&sandbox, &ids)
    });
    let result = steps.finish(&sandbox);
    let _ = cli.stop_daemon();
    sandbox.stop()?;
    result
}

fn main() -> std::process::ExitCode {
    let mut trials = Vec::new();
    for runtime in [Runtime::Runc, Runtime::Ch06] {
        let name = runtime.name();
        trials.push(root(&format!("docker_{name}"), move || {
            cli("docker", runtime)
        }));
        trials.push(root(&format!("podman_{name}"), move || {
            cli("podman", runtime)
        }));
    }
    cfs_tests::main(trials)
}
