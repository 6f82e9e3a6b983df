//! Chapter 6 as a library: an OCI runtime.
//!
//! Chapters 1 to 5 each added one kernel feature to a runtime that took its
//! settings as flags. Engines do not speak flags: containerd, CRI-O and
//! Podman hand a runtime an OCI *bundle* (a `config.json` beside a root
//! filesystem) and drive it with runc's command line, one short-lived
//! process per step of the lifecycle. This crate is such a runtime:
//!
//! - [`spec`] reads and checks `config.json`; [`state`] keeps what the
//!   runtime remembers between its runs; [`container`] is the lifecycle.
//! - [`container_init`] is the container's first process from `clone(2)` to
//!   `execve(2)`, built from the chapters before: chapter 1's `spawn`/`exec`,
//!   chapter 2's signal handling, chapter 3's `pivot_root` and `/dev`.
//! - The config's settings, one module each: [`namespaces`] (new or joined),
//!   [`user_ns`] (ID maps), [`mounts`] (mounts, masked and read-only paths),
//!   [`devices`], [`capabilities`], [`seccomp`], [`user`] (identity, rlimits,
//!   no_new_privs, sysctl), [`hooks`], [`console`], [`cgroups`].
//! - [`hardening`] closes two escapes runc had: leaked descriptors and a
//!   writable runtime binary.
//! - [`logging`] writes errors where containerd's shim reads them.
//!
//! What it leaves out: checkpoint/restore (CRIU), AppArmor and SELinux labels,
//! Intel RDT, the time namespace, `SCMP_ACT_NOTIFY`, systemd-managed cgroups,
//! and runc's hardening against a malicious rootfs (symlinks in mount targets).

pub mod capabilities;
pub mod cgroups;
pub mod console;
pub mod container;
pub mod container_init;
pub mod devices;
pub mod hardening;
pub mod hooks;
pub mod logging;
pub mod mounts;
pub mod namespaces;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod user;
pub mod user_ns;
