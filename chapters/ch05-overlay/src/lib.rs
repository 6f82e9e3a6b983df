//! Chapter 5 as a library: images made of layers, mounted with overlayfs.
//!
//! Until now a container ran on a whole root filesystem of its own. Changing one
//! file meant copying all of them, and two containers from one rootfs saw each
//! other's writes. An *image* is instead an ordered list of *layers*, each a
//! directory of the files one step added or changed, and a container runs on a
//! union of them: the image's read-only layers, a small *init layer* with the
//! files the runtime writes for this one container, and an empty read-write
//! layer that receives every change.
//!
//! - [`overlay`] is the chapter's new kernel feature: the overlayfs mount, its
//!   whiteouts and opaque directories.
//! - [`layer`] converts layer tars (the OCI image-layer format) to and from
//!   overlayfs's form.
//! - [`store`] keeps images, layers and containers in a state directory.
//! - [`init_layer`] writes `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
//! - [`diff`] lists what a container changed, as `docker diff` does.
//! - [`cli`] holds the subcommands that manage the store (all but `run`).
//!
//! - [`oci`] turns images into OCI blobs (manifest, config, gzip'd layers) and
//!   back, verified: the OCI image layout on disk (`save`, `load`).
//! - [`registry`] speaks the OCI distribution API (`pull`, `push`).
//!
//! What it leaves out: TLS (only registries on this machine), signatures,
//! zstd layers, and snapshotters other than overlayfs.

pub mod cli;
pub mod diff;
pub mod init_layer;
pub mod layer;
pub mod oci;
pub mod overlay;
pub mod registry;
pub mod store;
