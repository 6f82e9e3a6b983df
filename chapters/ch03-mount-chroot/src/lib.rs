//! Chapter 3 as a library: the container gets its own files.
//!
//! With `CLONE_NEWNS` the child gets a copy of the host's mount table, which it
//! can change without the host noticing. That alone changes nothing it sees:
//! a mount namespace takes effect only through mount operations. [`rootfs`]
//! makes those: it turns off mount propagation, makes the rootfs the new `/`
//! with `pivot_root(2)` (or, to compare, with `chroot(2)`), and mounts a fresh
//! `/proc` and `/sys`; [`devices`] fills a fresh `/dev`. [`cli`] holds the
//! `--rootfs` and `--chroot` flags later chapters reuse.
//!
//! The crate also ships `chroot-escape`, the classic chroot breakout, built
//! statically so it runs inside a busybox rootfs (see `scripts/build`).

pub mod cli;
pub mod devices;
pub mod rootfs;
