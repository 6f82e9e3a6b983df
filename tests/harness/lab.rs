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
use std::process::ExitCode;
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

/// The checks declared so far, in the order the test file lists them.
static CHECKS: Mutex<Vec<Info>> = Mutex::new(Vec::new());
/// The outcome of each check that ran.
static OUTCOMES: Mutex<BTreeMap<String, Outcome>> = Mutex::new(BTreeMap::new());

/// Whether the binary runs as a lab checker (`CFS_LAB=1`), or only lists its
/// checks' names (`CFS_LAB=list`).
pub fn enabled() -> bool {
    matches!(std::env::var("CFS_LAB").as_deref(), Ok("1") | Ok("list"))
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

fn record(name: &str, outcome: Outcome) {
    if let Ok(mut outcomes) = OUTCOMES.lock() {
        outcomes.insert(name.to_string(), outcome);
    }
}

/// Runs only the checks among `trials`, one at a time, and prints the
/// scoreboard. Success only when there is at least one check and all pass.
pub(crate) fn run(mut args: Arguments, mut trials: Vec<Trial>) -> ExitCode {
    let checks: Vec<Info> = CHECKS.lock().map(|c| c.clone()).unwrap_or_default();
    if std::env::var("CFS_LAB").as_deref() == Ok("list") {
        for check in &checks {
            println!("{}", check.name);
        }
        return ExitCode::SUCCESS;
    }
    let names: BTreeSet<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    trials.retain(|trial| names.contains(trial.name()));
    args.test_threads = Some(1);
    args.logfile = Some(std::env::var("CFS_LAB_LOG").unwrap_or_else(|_| "/dev/null".to_string()));
    let _ = libtest_mimic::run(&args, trials);

    let outcomes = OUTCOMES.lock().map(|o| o.clone()).unwrap_or_default();
    let mut passed = 0;
    let mut tsv = String::new();
    for check in &checks {
        let outcome = outcomes
            .get(&check.name)
            .cloned()
            .unwrap_or_else(|| Outcome::Skipped("not run (filtered out)".to_string()));
        let (mark, status, got) = match &outcome {
            Outcome::Passed => ("✔", "pass", Vec::new()),
            Outcome::Failed(message) => ("✘", "fail", condense(message)),
            Outcome::Skipped(reason) => ("✘", "skip", vec![reason.clone()]),
        };
        println!("{mark} {}", check.name);
        print_field("checked:", &check.checked);
        if status == "pass" {
            passed += 1;
        } else {
            for (i, line) in got.iter().enumerate() {
                print_field(if i == 0 { "got:" } else { "" }, line);
            }
            print_field("hint:", &check.hint);
        }
        tsv.push_str(
            &[
                check.name.as_str(),
                status,
                &check.checked,
                &check.hint,
                &got.join(" | "),
            ]
            .map(tsv_field)
            .join("\t"),
        );
        tsv.push('\n');
    }
    let total = checks.len();
    println!("{passed} of {total} checks pass");
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

const INDENT: usize = 6;
const LABEL: usize = 9;
const WIDTH: usize = 100;

/// Prints `label text` indented, wrapping `text` at word boundaries.
fn print_field(label: &str, text: &str) {
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
        println!(
            "{:INDENT$}{label:LABEL$}{line}",
            "",
            INDENT = INDENT,
            LABEL = LABEL
        );
    }
}

/// The gist of a failure message, in at most two lines: its first line, and
/// where a `todo!()` was reached if that is what happened.
fn condense(message: &str) -> Vec<String> {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut got: Vec<String> = lines.first().map(|l| shorten(l)).into_iter().collect();
    for pair in lines.windows(2) {
        if pair[1].starts_with("not yet implemented") {
            let place = pair[0]
                .rsplit_once("panicked at ")
                .map(|(_, p)| p.trim_end_matches(':'))
                .unwrap_or("?");
            got.push(format!("reached a todo!() at {place}"));
            break;
        }
    }
    got
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

/// Keeps what a check starts from outliving it (see the module comment).
pub(crate) struct Sweep {
    before: BTreeSet<i32>,
}

impl Sweep {
    pub(crate) fn start() -> Sweep {
        let _ = nix::sys::prctl::set_child_subreaper(true);
        Sweep {
            before: children_of_self(),
        }
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        // Killing a leftover re-parents its own children to us: repeat until
        // none is left (bounded, in case something keeps forking).
        for _ in 0..50 {
            let leftovers: Vec<i32> = children_of_self()
                .difference(&self.before)
                .copied()
                .collect();
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
    fn tsv_fields_stay_on_one_line() {
        assert_eq!(tsv_field("a\tb\nc"), "a b c");
    }
}
