//! The `--init` flag, and what the cloned child does last: exec the command,
//! or become its init.
//!
//! Chapters 2 to 5 flatten [`Init`] into their arguments and end their child
//! with [`Init::exec`], so the choice is made in one place. Chapter 6 takes
//! no such flag: as runc, it runs what `config.json` says as PID 1, and an
//! engine that wants an init puts one in the command (`docker run --init`).

use std::convert::Infallible;

use anyhow::Result;
use ch01_uts::process;

use crate::init;

/// `--init`: whether a tiny init runs as PID 1.
#[derive(Debug, Clone, clap::Args)]
pub struct Init {
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals; the command becomes PID 2
    #[arg(long)]
    pub init: bool,
}

impl Init {
    // ANCHOR: exec
    /// The child's last step: with `--init`, become the init that forks and
    /// supervises `argv`; without, exec `argv` as PID 1. Never returns on success.
    pub fn exec(&self, argv: &[String]) -> Result<Infallible> {
        if self.init {
            init::run(argv)
        } else {
            process::exec(argv)
        }
    }
    // ANCHOR_END: exec
}
