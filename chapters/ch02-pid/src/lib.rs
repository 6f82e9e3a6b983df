//! Chapter 2 as a library: what a PID namespace asks of its first process.
//!
//! With `CLONE_NEWPID` the child becomes PID 1 of a new PID namespace. PID 1 is
//! special: orphans are re-parented to it and it must reap them, and the kernel
//! delivers it only the signals it has a handler for. [`init`] is a tiny init
//! that takes on those duties, as `docker run --init` (tini) does.
//!
//! What it leaves out: `/proc` still shows the host's processes, because it is
//! the host's `/proc` (chapter 3 mounts a fresh one in a new mount namespace).

pub mod cli;
pub mod init;
