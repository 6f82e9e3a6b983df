//! `ch05-overlay`: chapter 4's runtime, running containers from layered images.
//!
//! ```text
//! sudo ch05-overlay import base base.tar
//! sudo ch05-overlay import app base.tar app.tar
//! sudo ch05-overlay -v run --name c1 --add-host db:10.0.0.5 app -- sh
//! sudo ch05-overlay diff c1
//! sudo ch05-overlay commit c1 app2
//! sudo ch05-overlay rm c1
//! ```
//!
//! `run` mounts an overlay of the image's layers, an init layer and a fresh
//! read-write layer, then runs the command on it as chapter 4 does. The
//! read-write layer outlives the command until `rm`, so `diff` and `commit`
//! can read it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use ch01_uts::{cli, process, say, uts};
use ch02_pid::init;
use ch03_mount_chroot::rootfs::{self, Root};
use ch05_overlay::init_layer::HostEntry;
use ch05_overlay::overlay::Mounted;
use ch05_overlay::store::{self, Container, Store};
use ch05_overlay::{diff, layer};
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
    /// Create an image from layer tars (.tar or .tar.gz), bottom layer first
    Import {
        name: String,
        #[arg(required = true, value_name = "TARBALL")]
        tarballs: Vec<PathBuf>,
    },
    /// List the images
    Images,
    /// Remove an image, and the layers no other image or container uses
    Rmi { name: String },
    /// Run a command in a new container made from an image
    Run(RunArgs),
    /// List the paths a container added (A), changed (C) or deleted (D)
    Diff { id: String },
    /// Save a container's read-write layer as a new image
    Commit { id: String, name: String },
    /// List the containers and their states
    Ps,
    /// Remove a container that is not running: unmount it, delete its layers
    Rm { id: String },
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
    /// The image to run
    image: String,
    #[command(flatten)]
    command: cli::Command,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::main(&args.common, || {
        process::require_root()?;
        let store = Store::open(&args.root)?;
        dispatch(&store, &args.command)
    })
}

// ANCHOR: run
fn run(store: &Store, args: &RunArgs) -> Result<i32> {
    let id = match &args.name {
        Some(name) => name.clone(),
        None => random_id()?,
    };
    let argv = &args.command.argv;
    let mut container =
        store.create_container(&id, &args.image, &args.uts.hostname, &args.add_host, argv)?;
    // Until the command runs, a failure removes the container again: nothing stays behind.
    let (mounted, pid) = match start(store, &mut container, args) {
        Ok(started) => started,
        Err(err) => {
            store.remove_container(&id)?;
            return Err(err);
        }
    };
    let code = init::supervise(pid, false)?;
    container.exit_code = Some(code);
    store.save(&container)?;
    // The read-write layer stays for diff and commit; only the mount goes.
    mounted.unmount()?;
    Ok(code)
}

/// Mounts the container's overlay and starts the command on it, as chapter 4
/// does on a plain rootfs. On error the guards unmount and kill what was made.
fn start(store: &Store, container: &mut Container, args: &RunArgs) -> Result<(Mounted, Pid)> {
    let argv = &args.command.argv;
    let merged = store.dirs(&container.id).merged;
    let mounted = store.overlay(container)?.mount(&merged)?;
    // The merged directory is mounted and absolute: only the command can be missing.
    rootfs::validate(&merged, argv).map_err(|_| {
        let command = argv.first().map(String::as_str).unwrap_or_default();
        anyhow!("command {command} not found in image {}", container.image)
    })?;
    init::block_signals()?;
    let flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
    let child = process::spawn(flags, || {
        uts::set_hostname(&container.hostname)?;
        rootfs::setup(&merged, Root::PivotRoot)?;
        if args.init {
            init::run(argv)
        } else {
            process::exec(argv)
        }
    })?;
    container.pid = Some(child.pid().as_raw());
    container.start_time = store::start_time(child.pid().as_raw());
    store.save(container)?;
    Ok((mounted, child.release()?))
}
// ANCHOR_END: run

/// Runs a subcommand; `run` returns the command's exit code, the others 0.
fn dispatch(store: &Store, command: &Command) -> Result<i32> {
    match command {
        Command::Run(args) => return run(store, args),
        Command::Import { name, tarballs } => {
            let (image, summaries) = store.import(name, tarballs)?;
            for summary in &summaries {
                println!("{summary}");
            }
            println!("image {}: {}", image.name, layers(image.layers.len()));
        }
        Command::Images => {
            println!("{:<16} {:>6} {:>10}  TOP LAYER", "NAME", "LAYERS", "SIZE");
            for image in store.images()? {
                let top = image.layers.last().map(String::as_str).unwrap_or("-");
                println!(
                    "{:<16} {:>6} {:>10}  {}",
                    image.name,
                    image.layers.len(),
                    human(store.image_size(&image)?),
                    layer::short(top)
                );
            }
        }
        Command::Rmi { name } => {
            for layer in store.remove_image(name)? {
                println!("removed layer {}", layer::short(&layer));
            }
            println!("removed image {name}");
        }
        Command::Diff { id } => {
            let container = store.container(id)?;
            let lower = store.lower_layers(&container)?;
            for change in diff::changes(&store.dirs(id).upper, &lower)? {
                println!("{change}");
            }
        }
        Command::Commit { id, name } => {
            let (image, summary) = store.commit(id, name)?;
            println!("{summary}, init-layer files left out {}", summary.skipped);
            println!("image {}: {}", image.name, layers(image.layers.len()));
        }
        Command::Ps => {
            println!("{:<14} {:<12} {:<34} COMMAND", "ID", "IMAGE", "STATE");
            for container in store.containers()? {
                let mut state = store.state(&container).to_string();
                if store.is_mounted(&container.id)? && !state.starts_with("running") {
                    state.push_str(", mounted");
                }
                println!(
                    "{:<14} {:<12} {:<34} {}",
                    container.id,
                    container.image,
                    state,
                    container.command.join(" ")
                );
            }
        }
        Command::Rm { id } => {
            store.remove_container(id)?;
            println!("{id}");
        }
    }
    Ok(0)
}

/// Twelve random hex digits, as Docker's short container IDs.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    let mut urandom = std::fs::File::open("/dev/urandom").context("failed to open /dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).context("failed to read /dev/urandom")?;
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    say!("container id {id}");
    Ok(id)
}

/// `1 layer`, `2 layers`.
fn layers(n: usize) -> String {
    format!("{n} layer{}", if n == 1 { "" } else { "s" })
}

/// `1.9M`, `740K`: sizes as `du -h` prints them.
fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1}M", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{}K", b >> 10),
        b => format!("{b}B"),
    }
}
