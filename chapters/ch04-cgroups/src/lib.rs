//! Chapter 4 as a library: control groups, written by hand on v1 and v2.
//!
//! Namespaces decide what the container sees; cgroups decide how much it may
//! use. [`cgroups`] is the chapter's concept: finding the machine's cgroup
//! layout, creating the container's cgroup with its limits, putting the
//! container in it before the command runs, noticing OOM kills, and removing
//! the cgroup afterwards; and, for chapter 6's runtime, opening it again from
//! another process, freezing it, and limiting which devices it may use. [`units`] reads limits written for people (`64M`,
//! `0.5` CPUs), and [`cli`] holds the flags later chapters reuse.
//!
//! What it leaves out: the container cannot see its own limits: `/proc/meminfo`
//! and `/proc/cpuinfo` still describe the host (lxcfs is the usual fix), and
//! without a cgroup namespace `/proc/self/cgroup` shows the host's paths.

pub mod cgroups;
pub mod cli;
pub mod units;
