//! Labs: a chapter's checks as a scoreboard, for students and for graders.
//!
//! A *check* is a root test declared with [`crate::check`]: besides its name it
//! says what it verifies, in kernel terms, and gives a hint for when it fails.
//! Under `cargo test` a check runs like any [`crate::root`] test. When the
//! environment has `CFS_LAB=1` (`scripts/lab check` sets it), the test binary
//! runs only its checks and prints a scoreboard instead of libtest's report:
//!
//! ```text
//! ✘ hostname_inside_is_the_one_asked_for
//!       checked: gethostname(2) inside the new UTS namespace returns the --hostname value
//!       got:     expected exit code 0, got 101
//!       hint:    set_hostname must call sethostname(2) in the child, ...
//! ```
//!
//! With `CFS_LAB=list` it only prints the names of its checks, one a line.
//! Two more variables, both optional: `CFS_LAB_TSV=FILE` also writes the results
//! as tab-separated lines (name, pass/fail/skip, checked, hint, got), which
//! `scripts/lab grade` reads; `CFS_LAB_LOG=FILE` keeps libtest's own report with
//! the full failure messages (otherwise it is dropped).
//!
//! A check also cleans up after the code it runs, which in a lab is a student's:
//! while it runs, the test process is a child subreaper (`PR_SET_CHILD_SUBREAPER`,
//! see `prctl(2)`), so a container whose runtime died is re-parented to us
//! instead of to the host's init; afterwards every such leftover is killed by
//! its PID and reaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use libtest_mimic::{Arguments, Trial};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// What a check says about itself.
#[derive(Debug, Clone)]
struct Info {
    name: String,
    checked: String,
    hint: String,
}

/// How a check ended.
#[derive(Debug, Clone)]
enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Whether tests run one at a time, so that what a check leaves behind can only
/// be its own (see [`Sweep`]).
static SEQUENTIAL: AtomicBool = AtomicBool::new(false);

/// Whether the binary prints a scoreboard (`CFS_LAB=1`).
static SCOREBOARD: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_sequential(on: bool) {
    SEQUENTIAL.store(on, Ordering::Relaxed);
}

/// Hints chosen by what failed: a pattern over a check's failure message (its
/// first line, the runtime's output) and the hint to give when it matches, in
/// the order the test file gave them (see [`hints`]).
static RULES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// The checks declared so far, in the order the test file lists them.
static CHECKS: Mutex<Vec<Info>> = Mutex::new(Vec::new());
/// The outcome of each check that ran.
static OUTCOMES: Mutex<BTreeMap<String, Outcome>> = Mutex::new(BTreeMap::new());

/// Whether the binary runs as a lab checker (`CFS_LAB=1`), or only lists its
/// checks' names (`CFS_LAB=list`).
pub fn enabled() -> bool {
    matches!(std::env::var("CFS_LAB").as_deref(), Ok("1") | Ok("list"))
}

/// Registers hints that follow the failure: when a check fails and its
/// message (the first line, what the runtime printed) matches the regular
/// expression `pattern`, the scoreboard shows `hint` first, and the check's
/// own hint after it. The first matching rule wins; a `todo!()` reached
/// comes before any rule ("finish NAME first"). A test file calls this in its
/// `main`, before [`crate::main`]:
///
/// ```text
/// cfs_tests::lab::hints(&[(r"pivot_root.*EINVAL", "pivot_root(2) says EINVAL when ...")]);
/// ```
pub fn hints(rules: &[(&str, &str)]) {
    if let Ok(mut all) = RULES.lock() {
        all.extend(rules.iter().map(|(p, h)| (p.to_string(), h.to_string())));
    }
}

pub(crate) fn register(name: &str, checked: &str, hint: &str) {
    if let Ok(mut checks) = CHECKS.lock() {
        checks.push(Info {
            name: name.to_string(),
            checked: checked.to_string(),
            hint: hint.to_string(),
        });
    }
}

pub(crate) fn record_passed(name: &str) {
    record(name, Outcome::Passed);
}

pub(crate) fn record_failed(name: &str, message: &str) {
    record(name, Outcome::Failed(message.to_string()));
}

pub(crate) fn record_skipped(name: &str, reason: &str) {
    record(name, Outcome::Skipped(reason.to_string()));
}

/// Keeps a check's outcome and, on a scoreboard, shows it at once.
fn record(name: &str, outcome: Outcome) {
    if SCOREBOARD.load(Ordering::Relaxed) {
        let checks = CHECKS.lock().map(|c| c.clone()).unwrap_or_default();
        if let Some(check) = checks.iter().find(|c| c.name == name) {
            emit(&entry(check, &outcome));
        }
    }
    if let Ok(mut outcomes) = OUTCOMES.lock() {
        outcomes.insert(name.to_string(), outcome);
    }
}

/// Runs only the checks among `trials`, one at a time, and prints the
/// scoreboard. Success only when there is at least one check and all pass.
pub(crate) fn run(mut args: Arguments, mut trials: Vec<Trial>) -> ExitCode {
    let checks: Vec<Info> = CHECKS.lock().map(|c| c.clone()).unwrap_or_default();
    if std::env::var("CFS_LAB").as_deref() == Ok("list") {
        let names: String = checks.iter().map(|c| format!("{}\n", c.name)).collect();
        emit(&names);
        return ExitCode::SUCCESS;
    }
    let names: BTreeSet<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    trials.retain(|trial| names.contains(trial.name()));
    args.test_threads = Some(1);
    set_sequential(true);
    args.logfile = Some(std::env::var("CFS_LAB_LOG").unwrap_or_else(|_| "/dev/null".to_string()));
    SCOREBOARD.store(true, Ordering::Relaxed);
    let _ = libtest_mimic::run(&args, trials);

    let outcomes = OUTCOMES.lock().map(|o| o.clone()).unwrap_or_default();
    let mut passed = 0;
    let mut tsv = String::new();
    for check in &checks {
        let outcome = match outcomes.get(&check.name) {
            Some(outcome) => outcome.clone(),
            None => {
                let outcome = Outcome::Skipped("not run".to_string());
                emit(&entry(check, &outcome));
                outcome
            }
        };
        let (status, got) = match &outcome {
            Outcome::Passed => ("pass", Vec::new()),
            Outcome::Failed(message) => ("fail", condense(message)),
            Outcome::Skipped(reason) => ("skip", vec![reason.clone()]),
        };
        if status == "pass" {
            passed += 1;
        }
        let hint = match &outcome {
            Outcome::Failed(message) => chosen_hints(check, message).join(" "),
            _ => check.hint.clone(),
        };
        tsv.push_str(
            &[
                check.name.as_str(),
                status,
                &check.checked,
                &hint,
                &got.join(" | "),
            ]
            .map(tsv_field)
            .join("\t"),
        );
        tsv.push('\n');
    }
    let total = checks.len();
    emit(&format!("{passed} of {total} checks pass\n"));
    if let Ok(path) = std::env::var("CFS_LAB_TSV") {
        if let Err(err) = fs::write(&path, tsv) {
            eprintln!("lab: failed to write {path}: {err}");
            return ExitCode::FAILURE;
        }
    }
    if total > 0 && passed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The scoreboard entry of a check: a ✔ or ✘ line with its name, what it
/// checked, and for a failure what it got and the hint.
fn entry(check: &Info, outcome: &Outcome) -> String {
    let (mark, got, hints) = match outcome {
        Outcome::Passed => ("✔", None, Vec::new()),
        Outcome::Failed(message) => ("✘", Some(condense(message)), chosen_hints(check, message)),
        Outcome::Skipped(reason) => ("✘", Some(vec![reason.clone()]), vec![check.hint.clone()]),
    };
    let mut board = format!("{mark} {}\n", check.name);
    field(&mut board, "checked:", &check.checked);
    if let Some(got) = got {
        for (i, line) in got.iter().enumerate() {
            field(&mut board, if i == 0 { "got:" } else { "" }, line);
        }
        for (i, hint) in hints.iter().enumerate() {
            field(&mut board, if i == 0 { "hint:" } else { "also:" }, hint);
        }
    }
    board
}

/// The hints for a failed check, most specific first: "finish NAME first"
/// when a `todo!()` was reached (naming the marked function it is in), else
/// the first rule of [`hints`] that matches the message; then the check's own
/// hint.
fn chosen_hints(check: &Info, message: &str) -> Vec<String> {
    let mut chosen = Vec::new();
    if let Some(place) = todo_place(message) {
        let name = marked_function(&place).unwrap_or_else(|| "the function".to_string());
        chosen.push(format!(
            "finish {name} first: its todo!() at {place} was reached before anything this \
             check looks at"
        ));
    } else {
        let rules = RULES.lock().map(|r| r.clone()).unwrap_or_default();
        for (pattern, hint) in rules {
            if regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(message)) {
                chosen.push(hint);
                break;
            }
        }
    }
    if !chosen.contains(&check.hint) {
        chosen.push(check.hint.clone());
    }
    chosen
}

/// Where a `todo!()` was reached (`file:line:column`), from a failure message.
fn todo_place(message: &str) -> Option<String> {
    let lines: Vec<&str> = message.lines().map(str::trim).collect();
    lines.windows(2).find_map(|pair| {
        pair[1].starts_with("not yet implemented").then(|| {
            pair[0]
                .rsplit_once("panicked at ")
                .map(|(_, p)| p.trim_end_matches(':').to_string())
                .unwrap_or_else(|| "?".to_string())
        })
    })
}

/// The name of the marked body (`// LAB:BEGIN name: ...`) that holds
/// `file:line[:column]`, a path relative to the workspace, or else the
/// nearest `fn` above it.
fn marked_function(place: &str) -> Option<String> {
    let mut parts = place.split(':');
    let (file, line) = (parts.next()?, parts.next()?.parse::<usize>().ok()?);
    let text = fs::read_to_string(crate::paths::workspace().join(file)).ok()?;
    let above: Vec<&str> = text.lines().take(line).collect();
    for l in above.iter().rev() {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("// LAB:BEGIN ") {
            return rest.split(':').next().map(str::to_string);
        }
        if let Some(at) = t.find("fn ") {
            let name: String = t[at + 3..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

const INDENT: usize = 6;
const LABEL: usize = 9;
const WIDTH: usize = 100;

/// Writes to stdout as each check ends; a closed pipe (`| head`) is no error.
fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Appends `label text` indented, wrapping `text` at word boundaries.
fn field(board: &mut String, label: &str, text: &str) {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && INDENT + LABEL + line.len() + 1 + word.len() > WIDTH {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    for (i, line) in lines.iter().enumerate() {
        let label = if i == 0 { label } else { "" };
        board.push_str(&format!("{:INDENT$}{label:LABEL$}{line}\n", ""));
    }
}

/// The gist of a failure message, in at most two lines: its first line, and
/// where a `todo!()` was reached if that is what happened, or else, when a
/// program's exit code was not the one expected, the last line it wrote to
/// stderr (a runtime's one-line error: what failed, with the errno).
fn condense(message: &str) -> Vec<String> {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut got: Vec<String> = lines.first().map(|l| shorten(l)).into_iter().collect();
    if let Some(place) = todo_place(message) {
        got.push(format!("reached a todo!() at {place}"));
    } else if let Some(line) = last_stderr_line(message) {
        if !got.iter().any(|g| g.contains(&line)) {
            got.push(format!("stderr:  {}", shorten(&line)));
        }
    }
    got
}

/// The last line a program wrote to stderr, when the message says its exit
/// code was unexpected (`expected exit code ..., got ...` or `ended (exit
/// code ...)`) and holds its stderr (`stderr: ...`, up to the end).
fn last_stderr_line(message: &str) -> Option<String> {
    let first = message.lines().next().unwrap_or_default();
    if !(first.contains("expected exit code") || first.contains("(exit code")) {
        return None;
    }
    let (_, stderr) = message.rsplit_once("stderr: ")?;
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
        .map(str::to_string)
}

fn shorten(line: &str) -> String {
    const MAX: usize = 160;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        let cut: String = line.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

fn tsv_field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

thread_local! {
    /// Where the last panic of this thread happened (`file:line:column`).
    static PANICKED_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs, once, a panic hook that remembers where a panic happened, so
/// that a check which calls a chapter's library in its own process (and hits
/// a `todo!()` there) can say where, as a check that runs a binary does from
/// its stderr. On a scoreboard the hook prints nothing (the entry says it);
/// otherwise it also does what the previous hook did.
pub(crate) fn catch_panic_locations() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            PANICKED_AT.with(|p| *p.borrow_mut() = at);
            if !SCOREBOARD.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
    PANICKED_AT.with(|p| *p.borrow_mut() = None);
}

/// A check's failure message for a panic in the test's own process, with
/// `payload` as the panic's message: where it happened, in the form
/// [`condense`] recognises for a `todo!()`.
pub(crate) fn describe_panic(payload: &str) -> String {
    let at = PANICKED_AT.with(|p| p.borrow_mut().take());
    match at {
        Some(at) if payload.starts_with("not yet implemented") => format!(
            "the test called a function that is still a todo!()\npanicked at {at}:\n{payload}"
        ),
        Some(at) => format!("panicked at {at}: {payload}"),
        None => format!("the test panicked: {payload}"),
    }
}

/// Keeps what a check starts from outliving it (see the module comment). Only
/// when tests run one at a time: otherwise a leftover could be another test's.
pub(crate) struct Sweep {
    before: Option<BTreeSet<i32>>,
}

impl Sweep {
    pub(crate) fn start() -> Sweep {
        if !SEQUENTIAL.load(Ordering::Relaxed) {
            return Sweep { before: None };
        }
        let _ = nix::sys::prctl::set_child_subreaper(true);
        Sweep {
            before: Some(children_of_self()),
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        let Some(before) = self.before.take() else {
            return;
        };
        // Killing a leftover re-parents its own children to us: repeat until
        // none is left (bounded, in case something keeps forking).
        for _ in 0..50 {
            let leftovers: Vec<i32> = children_of_self().difference(&before).copied().collect();
            if leftovers.is_empty() {
                break;
            }
            for pid in &leftovers {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            for pid in &leftovers {
                let _ = waitpid(Pid::from_raw(*pid), None);
            }
        }
        let _ = nix::sys::prctl::set_child_subreaper(false);
    }
}

/// The PIDs whose parent is this process, from the `ppid` field of
/// `/proc/<pid>/stat`.
fn children_of_self() -> BTreeSet<i32> {
    let me = std::process::id().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1).map(|ppid| ppid == me)
                })
                .unwrap_or(false)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condense_keeps_the_first_line_and_the_todo() {
        let message = "expected exit code 0, got 101\nstdout: \nstderr: thread 'main' panicked at chapters/ch01-uts/src/uts.rs:40:5:\nnot yet implemented: lab ch01: x\nnote: run with RUST_BACKTRACE=1";
        assert_eq!(
            condense(message),
            vec![
                "expected exit code 0, got 101".to_string(),
                "reached a todo!() at chapters/ch01-uts/src/uts.rs:40:5".to_string()
            ]
        );
        assert_eq!(
            condense("condition not met within 5s"),
            vec!["condition not met within 5s".to_string()]
        );
    }

    #[test]
    fn a_todo_in_the_tests_own_process_is_located() {
        PANICKED_AT.with(|p| *p.borrow_mut() = Some("chapters/ch04-cgroups/src/x.rs:9:5".into()));
        let message = describe_panic("not yet implemented: lab ch04: hint");
        assert_eq!(
            condense(&message),
            vec![
                "the test called a function that is still a todo!()".to_string(),
                "reached a todo!() at chapters/ch04-cgroups/src/x.rs:9:5".to_string()
            ]
        );
        PANICKED_AT.with(|p| *p.borrow_mut() = Some("src/y.rs:1:2".into()));
        assert_eq!(describe_panic("boom"), "panicked at src/y.rs:1:2: boom");
        assert_eq!(describe_panic("boom"), "the test panicked: boom");
    }

    #[test]
    fn an_unexpected_exit_code_shows_the_runtimes_last_stderr_line() {
        let message = "expected exit code 0, got 1\nstdout: \nstderr: [child] pivot_root(...)\nch03-mount-chroot: failed to pivot_root to /r: EINVAL: Invalid argument\n";
        assert_eq!(
            condense(message),
            vec![
                "expected exit code 0, got 1".to_string(),
                "stderr:  ch03-mount-chroot: failed to pivot_root to /r: EINVAL: Invalid argument"
                    .to_string()
            ]
        );
        // Not for a failure that is not about an exit code.
        assert_eq!(
            condense("the host's hostname changed\nstderr: x"),
            vec!["the host's hostname changed".to_string()]
        );
    }

    #[test]
    fn hints_follow_the_failure() {
        let check = Info {
            name: "c".into(),
            checked: "what".into(),
            hint: "the check's own hint".into(),
        };
        hints(&[(r"pivot_root.*EINVAL", "propagation")]);
        assert_eq!(
            chosen_hints(
                &check,
                "expected exit code 0, got 1\nstderr: failed to pivot_root to /r: EINVAL"
            ),
            vec![
                "propagation".to_string(),
                "the check's own hint".to_string()
            ]
        );
        assert_eq!(
            chosen_hints(&check, "something else"),
            vec!["the check's own hint".to_string()]
        );
        // A todo!() reached names the marked body it is in (here a file of this
        // workspace with a LAB marker above the line).
        let text =
            std::fs::read_to_string(crate::paths::workspace().join("chapters/ch01-uts/src/uts.rs"))
                .unwrap_or_default();
        let line = text
            .lines()
            .position(|l| l.contains("// LAB:BEGIN set_hostname:"))
            .map(|i| i + 2)
            .unwrap_or(1);
        let message = format!(
            "expected exit code 0, got 101\nstderr: thread 'main' panicked at chapters/ch01-uts/src/uts.rs:{line}:5:\nnot yet implemented: lab ch01: x"
        );
        let chosen = chosen_hints(&check, &message);
        assert!(
            chosen[0].starts_with(
                "finish set_hostname first: its todo!() at chapters/ch01-uts/src/uts.rs:"
            ),
            "{chosen:?}"
        );
    }

    #[test]
    fn tsv_fields_stay_on_one_line() {
        assert_eq!(tsv_field("a\tb\nc"), "a b c");
    }
}
