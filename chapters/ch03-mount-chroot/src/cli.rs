//! The flags that choose the container's root filesystem.

use std::path::PathBuf;

use crate::rootfs::Root;

/// `--rootfs DIR [--chroot]`, shared by this chapter and the ones after it.
#[derive(Debug, Clone, clap::Args)]
pub struct Rootfs {
    /// The directory holding the container's files (an absolute path), e.g. $ROOTFS
    #[arg(long, value_name = "DIR")]
    pub rootfs: PathBuf,
    /// Enter the rootfs with chroot(2) instead of pivot_root(2), to compare the two
    #[arg(long)]
    pub chroot: bool,
}

impl Rootfs {
    /// How to make the rootfs the container's `/`.
    pub fn root(&self) -> Root {
        if self.chroot {
            Root::Chroot
        } else {
            Root::PivotRoot
        }
    }
}
