//! The command line: runc's, as engines call it.
//!
//! containerd, Docker and podman run `RUNTIME --root DIR --log FILE
//! --log-format json create --bundle DIR --pid-file FILE ID`, then `start`,
//! `state`, `kill`, `delete`, and `exec` for a second process; the global
//! flags come before the subcommand. These are the clap declarations; what
//! each subcommand does is [`crate::container`]'s, called from `main.rs`.
//!
//! What it leaves out: runc's `checkpoint`/`restore` (CRIU), `update`,
//! `events` and `features`; `--no-pivot` and `--no-new-keyring` are accepted
//! and ignored.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::container::{CreateOptions, ExecOptions};
use crate::logging::Format;
use crate::state::DEFAULT_ROOT;

/// An OCI runtime that speaks runc's command line (chapter 6)
#[derive(Debug, Parser)]
#[command(disable_version_flag = true)]
pub struct Args {
    /// Directory for the containers' state
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Also write errors (and warnings) to this file
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the --log file
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: Format,
    /// Narrate on stderr each request made of the kernel
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (refused: this runtime writes cgroupfs itself)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Print the version, the commit and the OCI runtime spec version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a default config.json into the bundle directory
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a user without root (a user namespace, no cgroup limits)
        #[arg(long)]
        rootless: bool,
    },
    /// Set up a container and leave its process waiting for `start`
    Create(CreateArgs),
    /// Let a created container run its command
    Start { id: String },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal (default TERM) to a container's process
    Kill {
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
        /// Send it to every process of the container
        #[arg(short, long)]
        all: bool,
    },
    /// Remove a container (a running one only with --force)
    Delete {
        id: String,
        /// Kill the container first if it still runs; an unknown id is not an error
        #[arg(short, long)]
        force: bool,
    },
    /// Create and start a container, wait for it, delete it
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return after start instead of waiting
        #[arg(short, long)]
        detach: bool,
    },
    /// Run another process in a running container
    Exec(ExecArgs),
    /// List the processes of a container
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Listing,
        id: String,
    },
    /// List the containers
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: Listing,
        /// Only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
}

/// How `ps` and `list` print: runc's two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Listing {
    Table,
    Json,
}

/// What `create` and `exec` hand over about the process they start: its
/// PID, its terminal, its descriptors (runc's flags of the same names).
#[derive(Debug, clap::Args)]
pub struct Handoff {
    /// Write the process's PID (as the host sees it) to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when the process has a terminal
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass descriptors 3 to 3+N-1 on to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle directory (with config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub handoff: Handoff,
    /// Accepted for compatibility; pivot_root is always used
    #[arg(long, hide = true)]
    pub no_pivot: bool,
    /// Accepted for compatibility; no session keyring is created
    #[arg(long, hide = true)]
    pub no_new_keyring: bool,
    pub id: String,
}

impl CreateArgs {
    pub fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.handoff.pid_file.clone(),
            console_socket: self.handoff.console_socket.clone(),
            preserve_fds: self.handoff.preserve_fds,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A JSON file with the OCI process to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process runs
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub handoff: Handoff,
    /// Working directory inside the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables (KEY=VALUE)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Give the process a terminal (needs --console-socket)
    #[arg(short, long)]
    pub tty: bool,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl ExecArgs {
    pub fn options(&self) -> ExecOptions {
        ExecOptions {
            process: self.process.clone(),
            args: self.command.clone(),
            cwd: self.cwd.clone(),
            env: self.env.clone(),
            tty: self.tty,
            detach: self.detach,
            pid_file: self.handoff.pid_file.clone(),
            console_socket: self.handoff.console_socket.clone(),
            preserve_fds: self.handoff.preserve_fds,
        }
    }
}
