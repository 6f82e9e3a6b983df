//! Narration: with `-v`, each binary says what it asks of the kernel, in order.
//!
//! Every line names who is speaking: `[runtime]` is the process you started,
//! still in the host's namespaces; `[child]` is the process `clone(2)` created,
//! already inside the new namespaces; later chapters add `[init]`. Lines go to
//! stderr, so the command's own output on stdout stays clean.
//!
//! A real runtime logs the same facts at debug level (`runc --debug`); here the
//! log is the lesson, so it is worded for a reader, not for a log parser.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static ROLE: Mutex<&str> = Mutex::new("runtime");

/// Turns narration on or off (the `-v` flag).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether `-v` was given.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// Names the current process in narration. A child calls this right after
/// `clone(2)`; its memory is a copy, so the parent keeps its own name.
pub fn set_role(role: &'static str) {
    if let Ok(mut r) = ROLE.lock() {
        *r = role;
    }
}

/// The name of the current process in narration.
pub fn role() -> &'static str {
    ROLE.lock().map(|r| *r).unwrap_or("?")
}

/// Prints one narration line, `[role] message`, to stderr when `-v` is on.
/// The line goes out in one `write(2)`, so lines of the runtime and of its
/// child, written at the same moment, never mix within a line.
pub fn line(message: std::fmt::Arguments<'_>) {
    if verbose() {
        let text = format!("[{}] {}\n", role(), message);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), text.as_bytes());
    }
}

/// `say!("sethostname({:?})", name)`: one line of narration (see [`line`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::narrate::line(format_args!($($arg)*))
    };
}
