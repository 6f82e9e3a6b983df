//! `ch05-overlay`: chapter 4's runtime, running containers from layered images.
//!
//! ```text
//! sudo ch05-overlay import base base.tar
//! sudo ch05-overlay import app base.tar app.tar
//! sudo ch05-overlay -v run --name c1 --add-host db:10.0.0.5 app -- sh
//! sudo ch05-overlay diff c1
//! sudo ch05-overlay commit c1 app2
//! sudo ch05-overlay rm c1
//! sudo ch05-overlay push app2 127.0.0.1:5000/cfs/app:v2
//! sudo ch05-overlay pull 127.0.0.1:5000/cfs/app:v2 app3
//! sudo ch05-overlay save app2 ./app2-oci && ch05-overlay load ./app2-oci
//! ```
//!
//! `run` mounts an overlay of the image's layers, an init layer and a fresh
//! read-write layer, then runs the command on it as chapter 4 does, with the
//! same `--cpus`, `--memory` and `--pids` limits. The
//! read-write layer outlives the command until `rm`, so `diff` and `commit`
//! can read it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use ch01_uts::{cli, process, say, uts};
use ch02_pid::init;
use ch03_mount_chroot::rootfs::{self, Root};
use ch04_cgroups::cgroups::Cgroup;
use ch04_cgroups::cli::Resources;
use ch05_overlay::cli::{self as store_cli, StoreCommand};
use ch05_overlay::init_layer::HostEntry;
use ch05_overlay::oci::{self, Process};
use ch05_overlay::overlay::Mounted;
use ch05_overlay::store::{self, Container, Store};
use clap::{Parser, Subcommand};
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Run containers from images made of layers, on overlayfs (chapter 5)
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    common: cli::Common,
    /// The state directory holding images, layers and containers
    #[arg(long, value_name = "DIR", default_value = store::DEFAULT_ROOT)]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command in a new container made from an image
    Run(RunArgs),
    #[command(flatten)]
    Store(StoreCommand),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The container's ID (default: 12 random hex digits)
    #[arg(long, value_name = "ID")]
    name: Option<String>,
    #[command(flatten)]
    uts: cli::Hostname,
    /// Add a line to the container's /etc/hosts (repeatable), like a Pod's hostAliases
    #[arg(long, value_name = "NAME:IP")]
    add_host: Vec<HostEntry>,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals; the command becomes PID 2
    #[arg(long)]
    init: bool,
    #[command(flatten)]
    resources: Resources,
    /// The image to run
    image: String,
    /// The command and its arguments (default: the image's Entrypoint and Cmd)
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::main(&args.common, || {
        process::require_root()?;
        let store = Store::open(&args.root)?;
        match &args.command {
            Command::Run(run_args) => run(&store, run_args),
            Command::Store(command) => command.execute(&store).map(|()| 0),
        }
    })
}

// ANCHOR: run
fn run(store: &Store, args: &RunArgs) -> Result<i32> {
    let id = match &args.name {
        Some(name) => name.clone(),
        None => store_cli::random_id()?,
    };
    // The image's config fills in what the command line leaves out, as Docker does.
    let process = oci::process(store.image(&args.image)?.config.as_ref(), &args.command)?;
    let mut container = store.create_container(
        &id,
        &args.image,
        &args.uts.hostname,
        &args.add_host,
        &process.argv,
    )?;
    // Until the command runs, a failure removes the container again: nothing stays behind.
    let (mounted, cgroup, pid) = match start(store, &mut container, args, &process) {
        Ok(started) => started,
        Err(err) => {
            store.remove_container(&id)?;
            return Err(err);
        }
    };
    let code = init::supervise(pid, false)?;
    args.resources.finish(cgroup)?;
    if !args.resources.keep_cgroup {
        container.cgroup = None;
    }
    container.exit_code = Some(code);
    store.save(&container)?;
    // The read-write layer stays for diff and commit; only the mount goes.
    mounted.unmount()?;
    Ok(code)
}

/// Mounts the container's overlay and starts the command on it, as chapter 4
/// does on a plain rootfs. On error the guards undo what was made: the child
/// is killed, the cgroup removed, the overlay unmounted.
fn start(
    store: &Store,
    container: &mut Container,
    args: &RunArgs,
    process: &Process,
) -> Result<(Mounted, Cgroup, Pid)> {
    let argv = &process.argv;
    let merged = store.dirs(&container.id).merged;
    let mounted = store.overlay(container)?.mount(&merged)?;
    // The merged directory is mounted and absolute: only the command can be missing.
    rootfs::validate(&merged, argv).map_err(|_| {
        let command = argv.first().map(String::as_str).unwrap_or_default();
        anyhow!("command {command} not found in image {}", container.image)
    })?;
    let user = match &process.user {
        Some(user) => Some(oci::resolve_user(&merged, user)?),
        None => None,
    };
    let name = format!("cfs-{}-{}", container.id, std::process::id());
    let cgroup = Cgroup::create(&name, &args.resources.limits())?;
    init::block_signals()?;
    let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
    let child = process::spawn(flags, || {
        uts::set_hostname(&container.hostname)?;
        rootfs::setup(&merged, Root::PivotRoot)?;
        enter_config(process, user)?;
        if args.init {
            init::run(argv)
        } else {
            process::exec(argv)
        }
    })?;
    // The child is still blocked on the sync pipe: it runs nothing unlimited.
    cgroup.add(child.pid())?;
    container.cgroup = Some(cgroup.placement());
    container.pid = Some(child.pid().as_raw());
    container.start_time = process::start_time(child.pid().as_raw());
    store.save(container)?;
    Ok((mounted, cgroup, child.release()?))
}
// ANCHOR_END: run

// ANCHOR: enter_config
/// In the child, after pivot_root: the image config's environment, working
/// directory and user. The user goes last: after `setuid(2)` to a user that
/// is not root, nothing else could be changed.
fn enter_config(process: &Process, user: Option<(u32, u32)>) -> Result<()> {
    if let Some(env) = &process.env {
        say!("environment from the image config: {env:?}");
        for (key, _) in std::env::vars_os() {
            std::env::remove_var(key);
        }
        for pair in env {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            std::env::set_var(key, value);
        }
    }
    if let Some(dir) = &process.cwd {
        say!("chdir({dir:?})");
        std::env::set_current_dir(dir)
            .with_context(|| format!("failed to enter the image's WorkingDir {dir}"))?;
    }
    if let Some((uid, gid)) = user {
        say!("setgroups([{gid}]); setgid({gid}); setuid({uid})");
        let gid = nix::unistd::Gid::from_raw(gid);
        nix::unistd::setgroups(&[gid]).context("failed to set the groups")?;
        nix::unistd::setgid(gid).with_context(|| format!("failed to set gid {gid}"))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid))
            .with_context(|| format!("failed to set uid {uid}"))?;
    }
    Ok(())
}
// ANCHOR_END: enter_config
