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

use std::process::ExitCode;

use anyhow::{bail, Result};
use ch01_uts::cli;
use ch06_full_runtime::cli::{Args, Command, Listing};
use ch06_full_runtime::container::{self, Freezer};
use ch06_full_runtime::hardening;
use ch06_full_runtime::logging;
use ch06_full_runtime::spec;
use ch06_full_runtime::state::Store;
use clap::Parser;

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
        Command::Exec(exec) => {
            return container::exec(&store, &exec.id, &exec.options());
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
