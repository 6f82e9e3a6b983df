//! Where things are: the workspace, the built binaries, the default rootfs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory with the built chapter binaries: the test binary lives in
/// `target/<profile>/deps`, the chapter binaries one level up.
pub fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace().join("target/debug"))
}

/// The path of a chapter binary, e.g. `bin("ch01-uts")`.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// The static helper programs built by `scripts/build` (they run inside a
/// busybox rootfs, which has no C library).
pub fn static_dir() -> PathBuf {
    workspace().join("target/static")
}

/// The default busybox rootfs built by `scripts/mkrootfs` (or `$ROOTFS`).
pub fn rootfs() -> Result<PathBuf> {
    let path = std::env::var_os("ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/rootfs"));
    if !path.join("bin/busybox").exists() {
        bail!(
            "no rootfs at {}: build it with scripts/mkrootfs",
            path.display()
        );
    }
    Ok(path)
}
