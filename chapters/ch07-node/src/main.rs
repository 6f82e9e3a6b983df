//! `ch07-node`: a kubelet for static pods, speaking CRI to containerd.
//!
//! ```text
//! sudo ch07-node --manifests /etc/cfs/pods --endpoint /run/containerd/containerd.sock
//! sudo ch07-node pods   # or CONTAINER_RUNTIME_ENDPOINT=unix:///path/to.sock, as crictl reads it
//! sudo ch07-node logs web server
//! sudo ch07-node exec web server -- cat /etc/hosts
//! ```
//!
//! The runtime so far sits beneath: containerd's CRI plugin starts a shim,
//! the shim runs chapter 6's runtime for each container.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use ch07_node::cri::Cri;
use ch07_node::kubelet::Node;
use clap::{Parser, Subcommand};

/// A kubelet for static pods: Pod manifests in a directory, CRI calls to containerd (chapter 7)
#[derive(Debug, Parser)]
struct Args {
    /// containerd's CRI socket (a path, or unix://PATH as crictl takes it)
    #[arg(
        long,
        global = true,
        env = "CONTAINER_RUNTIME_ENDPOINT",
        default_value = "/run/containerd/containerd.sock"
    )]
    endpoint: String,
    /// Directory of the pods' logs, emptyDirs and /etc/hosts files
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/containers-from-scratch/ch07"
    )]
    root: PathBuf,
    /// Narrate each CRI call on stderr
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Directory of Pod manifests (YAML)
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Reconcile once and exit
    #[arg(long)]
    once: bool,
    /// Seconds between two passes of the loop
    #[arg(long, default_value_t = 2.0)]
    period: f64,
    /// Seconds before the first restart of a container (doubling after)
    #[arg(long, default_value_t = 10.0)]
    backoff: f64,
    /// Cgroup parent of the pods (beneath the runtime's cgroup root)
    #[arg(long, default_value = "/cfs-kubepods")]
    cgroup_parent: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the pods' containers: state, restarts, reason
    Pods,
    /// Print a container's log
    Logs { pod: String, container: String },
    /// Run a command in a container (CRI ExecSync) and print its output
    Exec {
        pod: String,
        container: String,
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

// ANCHOR: run
fn run(args: Args) -> Result<u8> {
    ch01_uts::narrate::set_verbose(args.verbose);
    ch01_uts::narrate::set_role("kubelet");
    let endpoint = args.endpoint.trim_start_matches("unix://");
    let cri = Cri::connect(Path::new(endpoint))?;
    let manifests = args.manifests.clone().unwrap_or_default();
    let mut node = Node::new(cri, manifests, args.root, args.cgroup_parent);
    node.backoff = Duration::from_secs_f64(args.backoff);
    match args.command {
        Some(Command::Pods) => print!("{}", node.pods()?),
        Some(Command::Logs { pod, container }) => print!("{}", node.logs(&pod, &container)?),
        Some(Command::Exec {
            pod,
            container,
            command,
        }) => {
            let c = node.find_container(&pod, &container)?;
            let out = node.cri.exec_sync(&c.id, &command, 60)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out.stdout)?;
            std::io::Write::write_all(&mut std::io::stderr(), &out.stderr)?;
            return Ok(out.exit_code.clamp(0, 255) as u8);
        }
        None => {
            args.manifests
                .context("give --manifests DIR (the pods) or a command: pods, logs, exec")?;
            loop {
                node.reconcile()?;
                if args.once {
                    break;
                }
                std::thread::sleep(Duration::from_secs_f64(args.period));
            }
        }
    }
    Ok(0)
}
// ANCHOR_END: run

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ch07-node: {e:#}");
            ExitCode::FAILURE
        }
    }
}
