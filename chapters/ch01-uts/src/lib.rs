//! Chapter 1 as a library: the pieces every later chapter reuses.
//!
//! A container starts as an ordinary process. This crate shows the first step
//! that turns one into a container: asking the kernel, through `clone(2)`, to
//! put a new child into its own *UTS namespace*, where the hostname is private.
//!
//! - [`uts`] is the chapter's new concept: the hostname inside a UTS namespace.
//! - [`process`] clones a child into new namespaces, holds it on a pipe until the
//!   parent has prepared everything, execs the command and turns its wait status
//!   into an exit code.
//! - [`namespaces`] names clone flags so `-v` can print them.
//! - [`narrate`] is the `-v` switch: every binary says what it asks of the kernel.
//! - [`state`] keeps the files of runtimes that save state between runs
//!   (chapters 5 and 6) safe: names checked, files written atomically.
//! - [`cli`] holds the flags and the `main` wrapper that all chapter binaries share.
//!
//! What it leaves out: every other namespace (chapter 2 adds PID, chapter 3
//! mount, chapter 6 the rest), and any isolation of files or resources.

pub mod cli;
pub mod namespaces;
pub mod narrate;
pub mod process;
pub mod state;
pub mod uts;
