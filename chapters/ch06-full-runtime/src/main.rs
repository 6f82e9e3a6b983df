//! `ch06-full-runtime`: an OCI runtime with runc's command line.
//!
//! ```text
//! sudo ch06-full-runtime spec                       # write a default config.json
//! sudo ch06-full-runtime create --bundle . box      # set up, leave it waiting
//! sudo ch06-full-runtime start box                  # let it run the command
//! sudo ch06-full-runtime state box                  # the OCI state as JSON
//! sudo ch06-full-runtime kill box TERM
//! sudo ch06-full-runtime delete box
//! sudo ch06-full-runtime run --bundle . box         # all of it, waiting for the end
//! ```
//!
//! The whole runtime so far: the earlier chapters' steps, driven by an OCI
//! bundle instead of flags, and split into the lifecycle an engine drives.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use ch01_uts::cli;
use ch06_full_runtime::container::{self, CreateOptions, ExecOptions, Freezer};
use ch06_full_runtime::hardening;
use ch06_full_runtime::logging::{self, Format};
use ch06_full_runtime::spec;
use ch06_full_runtime::state::{Store, DEFAULT_ROOT};
use clap::{Parser, Subcommand};

/// An OCI runtime that speaks runc's command line (chapter 6)
#[derive(Debug, Parser)]
#[command(disable_version_flag = true)]
struct Args {
    /// Directory for the containers' state
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors (and warnings) to this file
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the --log file
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: Format,
    /// Narrate on stderr each request made of the kernel
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups (refused: this runtime writes cgroupfs itself)
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Print the version, the commit and the OCI runtime spec version
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    Exec {
        /// A JSON file with the OCI process to run
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Return once the process runs
        #[arg(short, long)]
        detach: bool,
        #[arg(long)]
        pid_file: Option<PathBuf>,
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// Pass descriptors 3 to 3+N-1 on to the process
        #[arg(long, default_value_t = 0)]
        preserve_fds: u32,
        /// Working directory inside the container
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Extra environment variables (KEY=VALUE)
        #[arg(short, long)]
        env: Vec<String>,
        /// Give the process a terminal (needs --console-socket)
        #[arg(short, long)]
        tty: bool,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
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
enum Listing {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The bundle directory (with config.json)
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the container's PID (as the host sees it) to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Pass descriptors 3 to 3+N-1 on to the container's process
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Accepted for compatibility; pivot_root is always used
    #[arg(long, hide = true)]
    no_pivot: bool,
    /// Accepted for compatibility; no session keyring is created
    #[arg(long, hide = true)]
    no_new_keyring: bool,
    id: String,
}

impl CreateArgs {
    fn options(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            preserve_fds: self.preserve_fds,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let common = cli::Common {
        verbose: args.debug,
    };
    cli::main(&common, || {
        let result = run(&args);
        if let Err(err) = &result {
            logging::write("error", &format!("{err:#}"));
        }
        result
    })
}

// ANCHOR: run
fn run(args: &Args) -> Result<i32> {
    logging::init(args.log.as_deref(), args.log_format)?;
    if args.version {
        println!(
            "{} version {}",
            cli::program_name(),
            env!("CARGO_PKG_VERSION")
        );
        println!("commit: {}", env!("CFS_COMMIT"));
        println!("spec: {}", spec::VERSION);
        return Ok(0);
    }
    if args.systemd_cgroup {
        bail!(
            "--systemd-cgroup is not supported: this runtime writes cgroupfs itself; configure the engine \
             for cgroupfs (containerd: SystemdCgroup = false; Docker: --exec-opt native.cgroupdriver=cgroupfs; \
             podman: --cgroup-manager cgroupfs; kubelet: cgroupDriver: cgroupfs)"
        );
    }
    let Some(command) = &args.command else {
        bail!("no command given: try --help");
    };
    if matches!(
        command,
        Command::Create(_) | Command::Run { .. } | Command::Exec { .. }
    ) {
        // A process in the container will run our code: from a copy it cannot write.
        hardening::run_from_sealed_copy(&args.root)?;
    }
    let store = Store::new(&args.root);
    match command {
        Command::Spec { bundle, rootless } => {
            spec::write_default(bundle, *rootless)?;
        }
        Command::Create(create) => {
            ch01_uts::process::require_root()?;
            container::create(&store, &create.id, &create.options())?;
        }
        Command::Start { id } => container::start(&store, id)?,
        Command::State { id } => {
            let report = store.load(id)?.report();
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Kill { id, signal, all } => {
            container::kill(&store, id, container::parse_signal(signal)?, *all)?
        }
        Command::Delete { id, force } => container::delete(&store, id, *force)?,
        Command::Run { create, detach } => {
            ch01_uts::process::require_root()?;
            return container::run(&store, &create.id, &create.options(), *detach);
        }
        Command::Exec {
            process,
            detach,
            pid_file,
            console_socket,
            preserve_fds,
            cwd,
            env,
            tty,
            id,
            command,
        } => {
            let opts = ExecOptions {
                process: process.clone(),
                args: command.clone(),
                cwd: cwd.clone(),
                env: env.clone(),
                tty: *tty,
                detach: *detach,
                pid_file: pid_file.clone(),
                console_socket: console_socket.clone(),
                preserve_fds: *preserve_fds,
            };
            return container::exec(&store, id, &opts);
        }
        Command::Ps { format, id } => {
            print!("{}", container::ps(&store, id, *format == Listing::Json)?)
        }
        Command::List { format, quiet } => {
            print!(
                "{}",
                container::list(&store, *format == Listing::Json, *quiet)?
            )
        }
        Command::Pause { id } => container::pause(&store, id, Freezer::Freeze)?,
        Command::Resume { id } => container::pause(&store, id, Freezer::Thaw)?,
    }
    Ok(0)
}
// ANCHOR_END: run
