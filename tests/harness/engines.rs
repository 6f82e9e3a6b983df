//! Container engines started privately in a [`Sandbox`]: containerd (1.6,
//! driven by `ctr` or by its CRI plugin), Docker (20.10) and podman (4.3).
//!
//! Each gets its own data root, state and exec root, socket and config in
//! the sandbox's temp dir, never the system's (`/var/lib/docker`,
//! `/etc/containers`, ...), no systemd, and the **cgroupfs** cgroup driver:
//! there is no systemd here to ask for cgroups, and the chapter's runtime
//! writes cgroupfs itself (it refuses `--systemd-cgroup`). Images come from
//! the busybox rootfs (`build/rootfs`) offline: an OCI layout made by hand
//! for containerd, `docker import`/`podman import` of a tar for the others.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::run::{output_within, wait_for, Background, Output};
use crate::sandbox::Sandbox;

/// Runs a daemon (`$1` and on) with its output in the log file `$0`: the
/// shims it starts inherit that output and outlive it.
const LOGGED: &str = r#"log=$0; exec "$@" >>"$log" 2>&1"#;

/// How long one engine command may take (image imports, first starts).
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` in the sandbox and returns its output (any exit code).
fn output(cmd: Command) -> Result<Output> {
    output_within(cmd, TIMEOUT)
}

/// The SHA-256 of a file, in hex (`sha256sum`).
fn sha256(file: &Path) -> Result<String> {
    let out = output(command("sha256sum", [file.as_os_str()]))?;
    out.expect_code(0)?;
    Ok(out
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string())
}

fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// A tar of directory `dir` (a root filesystem) at `tar`.
pub fn tar_of(dir: &Path, tar: &Path) -> Result<()> {
    let out = output(command(
        "tar",
        [
            "-C".as_ref(),
            dir.as_os_str(),
            "--exclude=./.mkrootfs-stamp".as_ref(),
            "-cf".as_ref(),
            tar.as_os_str(),
            ".".as_ref(),
        ],
    ))?;
    out.expect_code(0)?;
    Ok(())
}

// ANCHOR: oci_image
/// An OCI image archive at `dir/<file>.tar` holding one layer (a tar of
/// `rootfs`), a config with `config` (`{"Cmd": [...]}`), a manifest and an
/// index naming it `name` (`docker.io/cfs/busybox:latest`): what `ctr images
/// import` reads. No registry, no network.
pub fn oci_image(
    dir: &Path,
    file: &str,
    rootfs: &Path,
    name: &str,
    config: serde_json::Value,
) -> Result<PathBuf> {
    let layout = dir.join(format!("{file}.oci"));
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    let blob = |path: &Path, media: &str| -> Result<serde_json::Value> {
        let digest = sha256(path)?;
        let size = fs::metadata(path)?.len();
        fs::rename(path, blobs.join(&digest))?;
        Ok(
            serde_json::json!({"mediaType": media, "digest": format!("sha256:{digest}"), "size": size}),
        )
    };
    let layer = dir.join(format!("{file}.layer.tar"));
    tar_of(rootfs, &layer)?;
    let diff_id = sha256(&layer)?;
    let layer = blob(&layer, "application/vnd.oci.image.layer.v1.tar")?;
    let image_config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "config": config,
    });
    let path = dir.join(format!("{file}.config.json"));
    fs::write(&path, image_config.to_string())?;
    let config = blob(&path, "application/vnd.oci.image.config.v1+json")?;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer],
    });
    let path = dir.join(format!("{file}.manifest.json"));
    fs::write(&path, manifest.to_string())?;
    let mut manifest = blob(&path, "application/vnd.oci.image.manifest.v1+json")?;
    manifest["platform"] = serde_json::json!({"architecture": "amd64", "os": "linux"});
    manifest["annotations"] = serde_json::json!({"io.containerd.image.name": name});
    fs::write(
        layout.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [manifest]}).to_string(),
    )?;
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let tar = dir.join(format!("{file}.tar"));
    tar_of(&layout, &tar)?;
    Ok(tar)
}
// ANCHOR_END: oci_image

/// A private containerd in the sandbox.
pub struct Containerd {
    pub socket: PathBuf,
    /// Its state dir: the shims' bundles, `io.containerd.runtime.v2.task/<ns>/<id>`.
    pub state: PathBuf,
    log: PathBuf,
    daemon: Background,
}

impl Containerd {
    /// Starts containerd with `config` (the body of its config.toml after the
    /// root, state and socket lines), waits for its socket.
    pub fn start(sandbox: &Sandbox, extra: &str) -> Result<Containerd> {
        let dir = sandbox.dir.join("containerd");
        fs::create_dir_all(&dir)?;
        let socket = dir.join("containerd.sock");
        let state = dir.join("state");
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n{extra}",
                root = dir.join("root").display(),
                state = state.display(),
                sock = socket.display(),
            ),
        )?;
        let log = dir.join("containerd.log");
        let mut cmd = sandbox.command("sh");
        cmd.arg("-c")
            .arg(LOGGED)
            .arg(&log)
            .arg("containerd")
            .arg("--config")
            .arg(&config)
            .args(["--log-level", "warn"]);
        let daemon = Background::start(cmd)?;
        let containerd = Containerd {
            socket,
            state,
            log,
            daemon,
        };
        let ready = wait_for(Duration::from_secs(60), || {
            containerd
                .ctr(sandbox, &["version"])
                .ok()
                .filter(|o| o.code == 0)
        });
        if ready.is_err() {
            bail!(
                "containerd did not answer on {} within 60 s",
                containerd.socket.display()
            );
        }
        Ok(containerd)
    }

    /// `ctr --address <socket> ARGS` in the sandbox.
    pub fn ctr(&self, sandbox: &Sandbox, args: &[&str]) -> Result<Output> {
        let mut cmd = sandbox.command("ctr");
        cmd.arg("--address").arg(&self.socket).args(args);
        output(cmd)
    }

    /// Stops containerd (SIGTERM) and returns what it logged.
    pub fn stop(self) -> Result<String> {
        let _ = self.daemon.signal(nix::sys::signal::Signal::SIGTERM);
        self.daemon.finish(Duration::from_secs(30))?;
        Ok(fs::read_to_string(&self.log).unwrap_or_default())
    }
}

/// The config.toml lines that register a runtime handler `name` of the CRI
/// plugin running `binary` with the runc shim and cgroupfs.
pub fn cri_runtime(name: &str, binary: &Path) -> String {
    format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}]\n\
         \x20 runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{name}.options]\n\
         \x20 BinaryName = \"{}\"\n\
         \x20 SystemdCgroup = false\n",
        binary.display()
    )
}

/// Docker or podman: a daemon (Docker) or none (podman), a command line
/// with its private paths, and an imported busybox image `cfs/busybox`.
pub struct Cli {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    daemon: Option<Background>,
    log: Option<PathBuf>,
    pub name: &'static str,
}

impl Cli {
    /// `dockerd` with its own data root, exec root, pidfile, socket and
    /// config, cgroupfs, no bridge and no iptables rules (the containers use
    /// `--network none`), and `runtime` registered as runtime `cfs`.
    pub fn docker(sandbox: &Sandbox, runtime: &Path) -> Result<Cli> {
        let dir = sandbox.dir.join("docker");
        fs::create_dir_all(dir.join("config"))?;
        let socket = dir.join("docker.sock");
        let config = dir.join("daemon.json");
        fs::write(
            &config,
            serde_json::json!({"runtimes": {"cfs": {"path": runtime}}}).to_string(),
        )?;
        let mut cmd = sandbox.command("sh");
        cmd.arg("-c")
            .arg(LOGGED)
            .arg(dir.join("dockerd.log"))
            .arg("/usr/sbin/dockerd");
        cmd.arg("--config-file").arg(&config);
        cmd.arg("--data-root").arg(dir.join("data"));
        cmd.arg("--exec-root").arg(dir.join("exec"));
        cmd.arg("--pidfile").arg(dir.join("docker.pid"));
        cmd.arg("--host")
            .arg(format!("unix://{}", socket.display()));
        cmd.args([
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            "--bridge",
            "none",
            "--iptables=false",
            "--ip6tables=false",
            "--storage-driver",
            "overlay2",
        ]);
        let daemon = Background::start(cmd)?;
        let cli = Cli {
            program: "/usr/bin/docker".into(),
            args: vec![],
            env: vec![
                ("DOCKER_HOST".into(), format!("unix://{}", socket.display())),
                (
                    "DOCKER_CONFIG".into(),
                    dir.join("config").display().to_string(),
                ),
            ],
            daemon: Some(daemon),
            log: Some(dir.join("dockerd.log")),
            name: "docker",
        };
        let ready = wait_for(Duration::from_secs(90), || {
            cli.run(sandbox, &["version"]).ok().filter(|o| o.code == 0)
        });
        if ready.is_err() {
            let daemon = cli.stop_daemon();
            bail!("dockerd did not answer within 90 s: {daemon}");
        }
        cli.import(sandbox)?;
        Ok(cli)
    }

    /// podman with its own storage (`--root`, `--runroot`), `--tmpdir`,
    /// events in a file, cgroupfs, and containers.conf, storage.conf and
    /// registries.conf in the temp dir (through `CONTAINERS_*` variables),
    /// policy.json in a `$HOME` there.
    pub fn podman(sandbox: &Sandbox, runtime: &Path) -> Result<Cli> {
        let dir = sandbox.dir.join("podman");
        fs::create_dir_all(dir.join("tmp"))?;
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
            dir.join("run").display(),
            dir.join("root").display()
        );
        fs::write(dir.join("storage.conf"), storage)?;
        fs::write(
            dir.join("containers.conf"),
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             [containers]\nnetns = \"none\"\n",
        )?;
        // containers/image reads $HOME/.config/containers/policy.json before
        // /etc/containers/policy.json; podman has no global flag for it.
        fs::create_dir_all(dir.join("home/.config/containers"))?;
        fs::write(
            dir.join("home/.config/containers/policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )?;
        fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )?;
        let args = [
            "--root".into(),
            dir.join("root").display().to_string(),
            "--runroot".into(),
            dir.join("run").display().to_string(),
            "--tmpdir".into(),
            dir.join("tmp").display().to_string(),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--runtime".into(),
            runtime.display().to_string(),
        ];
        let cli = Cli {
            program: "/usr/bin/podman".into(),
            args: args.to_vec(),
            env: vec![
                (
                    "CONTAINERS_CONF".into(),
                    dir.join("containers.conf").display().to_string(),
                ),
                (
                    "CONTAINERS_STORAGE_CONF".into(),
                    dir.join("storage.conf").display().to_string(),
                ),
                (
                    "CONTAINERS_REGISTRIES_CONF".into(),
                    dir.join("registries.conf").display().to_string(),
                ),
                ("HOME".into(), dir.join("home").display().to_string()),
                (
                    "XDG_RUNTIME_DIR".into(),
                    dir.join("xdg").display().to_string(),
                ),
                (
                    "XDG_CONFIG_HOME".into(),
                    dir.join("xdg-config").display().to_string(),
                ),
            ],
            daemon: None,
            log: None,
            name: "podman",
        };
        cli.import(sandbox)?;
        Ok(cli)
    }

    /// Imports the busybox rootfs as image `cfs/busybox` (CMD sh).
    fn import(&self, sandbox: &Sandbox) -> Result<()> {
        let tar = sandbox.dir.join(format!("{}-busybox.tar", self.name));
        tar_of(&crate::paths::rootfs()?, &tar)?;
        let tar = tar.display().to_string();
        self.run(
            sandbox,
            &["import", "--change", "CMD [\"sh\"]", &tar, "cfs/busybox"],
        )?
        .expect_code(0)
        .with_context(|| format!("{} import of the busybox rootfs failed", self.name))?;
        Ok(())
    }

    /// The engine's command line with ARGS, in the sandbox.
    pub fn command(&self, sandbox: &Sandbox, args: &[&str]) -> Command {
        let mut cmd = sandbox.command(&self.program);
        cmd.args(&self.args).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs the engine's command line with ARGS to the end.
    pub fn run(&self, sandbox: &Sandbox, args: &[&str]) -> Result<Output> {
        output(self.command(sandbox, args))
    }

    /// Stops the daemon (Docker's), returning its log.
    pub fn stop_daemon(mut self) -> String {
        match self.daemon.take() {
            Some(daemon) => {
                let _ = daemon.signal(nix::sys::signal::Signal::SIGTERM);
                let log = self.log.as_ref().and_then(|l| fs::read_to_string(l).ok());
                match daemon.finish(Duration::from_secs(30)) {
                    Ok(_) => log.unwrap_or_default(),
                    Err(err) => format!("{err:#}"),
                }
            }
            None => String::new(),
        }
    }
}
