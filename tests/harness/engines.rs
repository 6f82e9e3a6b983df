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

use anyhow::{anyhow, bail, Context, Result};

use anyhow::ensure;
use nix::unistd::Pid;

use crate::cri::Cri;
use crate::paths;
use crate::run::{output_within, wait_for, Background, Output};
use crate::sandbox::{Sandbox, Tree};

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

    /// Stops containerd (SIGTERM) and returns what it logged. The signal
    /// goes to containerd itself, the child `nsenter` forked into the
    /// sandbox, not to `nsenter`: an `nsenter` killed first would leave
    /// containerd to the nearest subreaper outside the sandbox (a lab
    /// check's test process), and the sandbox's PID 1 could not end until
    /// that one reaped it.
    pub fn stop(self) -> Result<String> {
        let term = nix::sys::signal::Signal::SIGTERM;
        match crate::kernel::children(self.daemon.pid()).first() {
            Some(containerd) => {
                let _ = nix::sys::signal::kill(*containerd, term);
            }
            None => {
                let _ = self.daemon.signal(term);
            }
        }
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

/// The busybox image of the tests (from `build/rootfs`).
pub const BUSYBOX: &str = "docker.io/cfs/busybox:latest";

/// The busybox image, imported into namespace `ns`.
pub fn import_busybox(sandbox: &Sandbox, containerd: &Containerd, ns: &str) -> Result<()> {
    let tar = oci_image(
        &sandbox.dir,
        "busybox",
        &paths::rootfs()?,
        BUSYBOX,
        serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}),
    )?;
    containerd
        .ctr(
            sandbox,
            &[
                "--namespace",
                ns,
                "images",
                "import",
                &tar.display().to_string(),
            ],
        )?
        .expect_code(0)
        .context("ctr images import failed")?;
    Ok(())
}

/// The pause image of the pods' sandboxes (`cfs-pause`, a static program).
pub const PAUSE: &str = "docker.io/cfs/pause:latest";

/// The subnet of the pods' CNI bridge.
pub const POD_SUBNET: &str = "10.88.42.0/24";

/// The CNI network of the pods: a bridge in the sandbox's network namespace,
/// addresses from host-local (its state in the temp dir); containerd adds
/// the loopback plugin itself.
fn cni_conflist(dir: &Path, tag: &str) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": format!("cfs-{tag}"),
        "plugins": [{
            "type": "bridge",
            "bridge": format!("cfs-{tag}-br0"),
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_SUBNET}]],
                "dataDir": dir.join("cni-ipam"),
            },
        }],
    })
    .to_string()
}

/// containerd with its CRI plugin in the sandbox: runtime handlers `runc`
/// (the default) and `cfs` (`rt`, through the runc shim), a CNI bridge, the
/// pause and busybox images imported into `k8s.io`.
pub fn cri_containerd(sandbox: &Sandbox, tag: &str, rt: &Path) -> Result<Containerd> {
    let cni = sandbox.dir.join("cni");
    fs::create_dir_all(&cni)?;
    fs::write(
        cni.join(format!("10-cfs-{tag}.conflist")),
        cni_conflist(&sandbox.dir, tag),
    )?;
    // ANCHOR: cri_config
    let config = format!(
        "[plugins.\"io.containerd.grpc.v1.cri\"]\n\
         \x20 sandbox_image = \"{PAUSE}\"\n\
         \x20 disable_apparmor = true\n\
         \x20 restrict_oom_score_adj = true\n\
         \x20 stream_server_address = \"127.0.0.1\"\n\
         \x20 stream_server_port = \"0\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
         \x20 bin_dir = \"/usr/lib/cni\"\n\
         \x20 conf_dir = \"{}\"\n\
         {}{}",
        cni.display(),
        cri_runtime("runc", Path::new("runc")),
        cri_runtime("cfs", rt),
    );
    // ANCHOR_END: cri_config
    let containerd = Containerd::start(sandbox, &config)?;
    import_busybox(sandbox, &containerd, "k8s.io")?;
    let pause_root = sandbox.dir.join("pause-rootfs");
    fs::create_dir_all(&pause_root)?;
    fs::copy(
        paths::static_dir().join("cfs-pause"),
        pause_root.join("pause"),
    )?;
    let tar = oci_image(
        &sandbox.dir,
        "pause",
        &pause_root,
        PAUSE,
        serde_json::json!({"Entrypoint": ["/pause"]}),
    )?;
    containerd
        .ctr(
            sandbox,
            &[
                "--namespace",
                "k8s.io",
                "images",
                "import",
                &tar.display().to_string(),
            ],
        )?
        .expect_code(0)
        .context("ctr images import of the pause image failed")?;
    Ok(containerd)
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

// ------------------------------------------- what the engine tests share

/// Which runtime an engine runs: runc, the reference, or the chapter's.
#[derive(Clone, Copy)]
pub enum Runtime {
    Runc,
    Ch06,
}

impl Runtime {
    pub fn path(self) -> PathBuf {
        match self {
            Runtime::Runc => PathBuf::from("/usr/sbin/runc"),
            Runtime::Ch06 => paths::bin("ch06-full-runtime"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Ch06 => "ch06",
        }
    }
}

/// A wrapper around the runtime that appends each command line to
/// `runtime.args` in the sandbox's temp dir, then becomes the runtime. Its
/// stderr goes to `runtime.args.err`, except for `create`, `run` and
/// `exec`, whose stderr the container's process inherits (an `ExecSync`
/// answers with it).
pub fn wrapper(sandbox: &Sandbox, runtime: Runtime) -> Result<PathBuf> {
    let path = sandbox.dir.join(format!("{}-runtime", runtime.name()));
    let log = sandbox.dir.join("runtime.args");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$*\" >>{log}\n\
             for a; do case $a in create|run|exec) exec {rt} \"$@\";; esac; done\n\
             exec {rt} \"$@\" 2>>{log}.err\n",
            rt = runtime.path().display(),
            log = log.display(),
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// The runtime's command lines so far.
pub fn runtime_calls(sandbox: &Sandbox) -> Vec<String> {
    fs::read_to_string(sandbox.dir.join("runtime.args"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What the runtime wrote on stderr, for a failure's message.
pub fn runtime_errors(sandbox: &Sandbox) -> String {
    let text = fs::read_to_string(sandbox.dir.join("runtime.args.err")).unwrap_or_default();
    format!("the runtime's stderr:\n{text}")
}

/// Runs named steps, reporting each, and keeps going after a failure so a
/// run shows every step's result.
pub struct Steps {
    label: String,
    failures: Vec<String>,
    /// Whether a failure ends the run: the steps after it are not run.
    first_failure_ends: bool,
}

impl Steps {
    pub fn new(label: &str) -> Steps {
        Steps {
            label: label.to_string(),
            failures: Vec::new(),
            first_failure_ends: false,
        }
    }

    /// Steps of a lab check: after a failure the others are not run (they
    /// build on it, and a skeleton would only wait out their timeouts).
    pub fn until_a_failure(mut self) -> Steps {
        self.first_failure_ends = true;
        self
    }

    /// The failed steps so far, each `name: message`.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> bool {
        if self.first_failure_ends && !self.failures.is_empty() {
            eprintln!("  {} {name}: not run", self.label);
            return false;
        }
        let start = std::time::Instant::now();
        let result = f();
        let took = start.elapsed().as_secs_f32();
        match result {
            Ok(()) => {
                eprintln!("  {} {name}: ok ({took:.1} s)", self.label);
                true
            }
            Err(err) => {
                let first = format!("{err:#}");
                eprintln!("  {} {name}: FAILED ({took:.1} s): {first}", self.label);
                self.failures.push(format!("{name}: {first}"));
                false
            }
        }
    }

    /// The verdict: every failed step, with the runtime's stderr in the
    /// sandbox ([`runtime_errors`]).
    pub fn finish(self, sandbox: &Sandbox) -> Result<()> {
        if self.failures.is_empty() {
            return Ok(());
        }
        Err(anyhow!(
            "{} step(s) failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        ))
        .with_context(|| runtime_errors(sandbox))
    }

    /// Ends a test of containerd: the verdict ([`Steps::finish`]), then
    /// containerd stopped (its log added to a failure) and the sandbox.
    pub fn stop_containerd(self, containerd: Containerd, sandbox: Sandbox) -> Result<()> {
        let result = self.finish(&sandbox);
        let log = containerd.stop()?;
        sandbox.stop()?;
        result.with_context(|| format!("containerd's log:\n{log}"))
    }
}

/// Checks that an engine's listing (`ctr task ls -q`, `docker ps --all
/// --quiet`) is empty: no `what` left.
pub fn none_listed(listing: &Output, what: &str) -> Result<()> {
    ensure!(
        listing.stdout.trim().is_empty(),
        "{what} left: {}",
        listing.stdout
    );
    Ok(())
}

/// The container's cgroup, as a path in the sandbox (`/docker/<id>`), read
/// on the host from `/proc/<pid>/cgroup`; fails unless it lies beneath the
/// sandbox's root in every tree.
pub fn cgroup_of(sandbox: &Sandbox, pid: Pid) -> Result<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("failed to read /proc/{pid}/cgroup"))?;
    let mut found: Option<String> = None;
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        let list = line.split(':').nth(1).unwrap_or("");
        // The hierarchies whose controllers a container's limits use (on a
        // hybrid machine the cgroup2 tree holds none of them).
        let used = ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"];
        let v1 = sandbox.trees.iter().any(|t| !t.v2());
        if (list.is_empty() && v1)
            || (!list.is_empty() && !list.split(',').any(|c| used.contains(&c)))
        {
            continue;
        }
        let tree = sandbox
            .trees
            .iter()
            .find(|t| {
                if list.is_empty() {
                    t.v2()
                } else {
                    list.split(',').all(|c| t.has(c))
                }
            })
            .with_context(|| format!("no sandbox tree for {line}"))?;
        let inner = path
            .strip_prefix(&tree.root_path)
            .filter(|rest| rest.starts_with('/'))
            .with_context(|| {
                format!(
                    "process {pid} is in {line}, outside the sandbox's cgroup {} \
                     (host /proc/{pid}/cgroup: {text})",
                    tree.root_path
                )
            })?;
        match &found {
            Some(f) if f != inner => bail!("process {pid} is in {f} and in {inner}: {text}"),
            _ => found = Some(inner.to_string()),
        }
    }
    found.with_context(|| format!("no cgroup lines in /proc/{pid}/cgroup"))
}

/// A cgroup file of the container's group `path`, read on the host: on v1
/// in the hierarchy with `controller`, on v2 in the one tree.
pub fn cgroup_file(sandbox: &Sandbox, controller: &str, path: &str, file: &str) -> Result<String> {
    let tree: &Tree = sandbox.tree(controller)?;
    let full = tree.root.join(&path[1..]).join(file);
    Ok(fs::read_to_string(&full)
        .with_context(|| format!("failed to read {}", full.display()))?
        .trim()
        .to_string())
}

/// Whether the container's group is frozen, on the host: v1 `freezer.state`,
/// v2 `frozen` in `cgroup.events`.
pub fn frozen(sandbox: &Sandbox, path: &str) -> Result<bool> {
    if sandbox.tree("freezer")?.v2() {
        let events = cgroup_file(sandbox, "freezer", path, "cgroup.events")?;
        Ok(events.lines().any(|l| l == "frozen 1"))
    } else {
        Ok(cgroup_file(sandbox, "freezer", path, "freezer.state")? == "FROZEN")
    }
}

/// Checks the limits `--memory 64m --cpus 0.5 --pids-limit 20` (or without
/// pids) in the container's cgroup files.
pub fn check_limits(sandbox: &Sandbox, path: &str, pids: bool) -> Result<()> {
    let v2 = sandbox.tree("memory")?.v2();
    let (memory, cpu) = if v2 {
        (
            cgroup_file(sandbox, "memory", path, "memory.max")?,
            cgroup_file(sandbox, "cpu", path, "cpu.max")?,
        )
    } else {
        (
            cgroup_file(sandbox, "memory", path, "memory.limit_in_bytes")?,
            format!(
                "{} {}",
                cgroup_file(sandbox, "cpu", path, "cpu.cfs_quota_us")?,
                cgroup_file(sandbox, "cpu", path, "cpu.cfs_period_us")?
            ),
        )
    };
    ensure!(
        memory == "67108864",
        "memory limit {memory}, not 67108864 (64m)"
    );
    ensure!(
        cpu == "50000 100000",
        "cpu quota and period {cpu}, not 50000 100000 (0.5 CPU)"
    );
    if pids {
        let max = cgroup_file(sandbox, "pids", path, "pids.max")?;
        ensure!(max == "20", "pids.max {max}, not 20");
    }
    Ok(())
}

/// Checks the output of `cat /proc/1/cmdline` exec'd in a container whose
/// command is `sleep 1000`: the exec joined the container's PID namespace,
/// where PID 1 is that command.
pub fn pid1_is_sleep(out: &Output) -> Result<()> {
    out.expect_code(0)?;
    ensure!(
        out.stdout.starts_with("sleep\u{0}1000"),
        "PID 1 is {:?}",
        out.stdout
    );
    Ok(())
}

/// Nothing of the CRI's pods left: no pod sandbox or container listed, no
/// veth in the sandbox's network namespace, no network namespace in its
/// `/run/netns` (seen through `/proc/<init>/root`).
pub fn no_pods_left(sandbox: &Sandbox, cri: &mut Cri) -> Result<()> {
    ensure!(cri.pod_sandboxes()?.is_empty(), "pods left");
    ensure!(cri.containers()?.is_empty(), "containers left");
    let mut cmd = sandbox.command("ip");
    cmd.args(["-o", "link"]);
    let links = crate::run::output(cmd)?;
    ensure!(
        !links.stdout.contains("veth"),
        "links left: {}",
        links.stdout
    );
    let netns = fs::read_dir(format!("/proc/{}/root/run/netns", sandbox.init))?.count();
    ensure!(netns == 0, "{netns} network namespaces left in /run/netns");
    Ok(())
}

/// Nothing of containers `ids` left: no cgroup, no new overlay or mount
/// named after a container (in the sandbox's mount namespace), no runtime process or shim, and the runtime's state
/// dirs (each `--root` it was given, seen through `/proc/<init>/root`) empty.
pub fn nothing_left(sandbox: &Sandbox, ids: &[String]) -> Result<()> {
    let groups: Vec<String> = sandbox
        .cgroups()
        .into_iter()
        .filter(|g| ids.iter().any(|id| g.contains(id.as_str())))
        .collect();
    ensure!(groups.is_empty(), "cgroups left: {groups:?}");
    let mounts: Vec<String> = sandbox
        .mounts()?
        .difference(&sandbox.mounts_at_start)
        .filter(|m| m.contains(" overlay ") || ids.iter().any(|id| m.contains(id.as_str())))
        .cloned()
        .collect();
    ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
    let procs: Vec<String> = sandbox
        .ps()
        .lines()
        .filter(|l| {
            ["shim", "sleep", "runtime", "runc", "ch06", "while"]
                .iter()
                .any(|w| l.contains(w))
        })
        .map(str::to_string)
        .collect();
    ensure!(procs.is_empty(), "processes left: {procs:?}");
    let mut roots: Vec<String> = runtime_calls(sandbox)
        .iter()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "--root")?;
            words.get(at + 1).map(|s| s.to_string())
        })
        .collect();
    roots.sort();
    roots.dedup();
    for dir in &roots {
        let seen = PathBuf::from(format!("/proc/{}/root{dir}", sandbox.init));
        let left: Vec<String> = fs::read_dir(&seen)
            .map(|e| {
                e.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ensure!(left.is_empty(), "runtime state left in {dir}: {left:?}");
    }
    Ok(())
}

/// Checks that the runtime was asked to stop `id` with TERM, then with KILL.
pub fn term_then_kill(sandbox: &Sandbox, id: &str) -> Result<()> {
    let calls = runtime_calls(sandbox);
    let kills: Vec<&String> = calls
        .iter()
        .filter(|l| l.contains(" kill ") || l.starts_with("kill "))
        .filter(|l| l.contains(id))
        .collect();
    let signal = |l: &str, names: &[&str]| {
        l.split_whitespace()
            .last()
            .is_some_and(|s| names.contains(&s))
    };
    let term = kills
        .iter()
        .position(|l| signal(l, &["15", "TERM", "SIGTERM"]));
    let kill = kills
        .iter()
        .position(|l| signal(l, &["9", "KILL", "SIGKILL"]));
    match (term, kill) {
        (Some(t), Some(k)) if t < k => Ok(()),
        _ => bail!("the runtime was not asked for TERM then KILL: {kills:?}"),
    }
}

/// A name for a container, unique to this run.
pub fn id(what: &str) -> String {
    format!("cfs-h3-{what}-{}", std::process::id())
}
