//! Chapter 5's overlay, mounted fresh for a test: the lower layers it is
//! given, and new upper and work directories. For the tests of chapter 5 and
//! of images that travel (tests/ch05.rs, tests/images.rs); what the overlay
//! does is chapter 5's `Overlay`, not this file's.

use std::fs;
use std::path::Path;

use anyhow::Result;
use ch05_overlay::overlay::{Mounted, Overlay};

/// An overlay of `lower` (top first) with new upper and work directories
/// under `dir/name`, mounted at `dir/name/merged`.
pub fn mount_fresh(dir: &Path, name: &str, lower: &[&Path]) -> Result<(Overlay, Mounted)> {
    let base = dir.join(name);
    let ov = Overlay {
        lower: lower.iter().map(|p| p.to_path_buf()).collect(),
        upper: base.join("upper"),
        work: base.join("work"),
    };
    let merged = base.join("merged");
    for d in [&ov.upper, &ov.work, &merged] {
        fs::create_dir_all(d)?;
    }
    let mounted = ov.mount(&merged)?;
    Ok((ov, mounted))
}
