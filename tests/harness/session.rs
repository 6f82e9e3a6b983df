//! Console sessions: the terminal transcripts shown in the book, run and checked.
//!
//! Each session is a `.console` file under `book/src/sessions/`, included in a
//! page with `{{#include}}`. A line starting with `# ` is a command typed at a
//! root prompt; the lines after it, up to the next command, are what it prints
//! (stdout and stderr together, as a terminal shows them).
//!
//! The file holds one real, recorded run, exactly as printed: real PIDs, inode
//! numbers, CPU seconds. What may differ in the next run is said beside it, in
//! `NAME.rules` (the reader never sees it), one rule a line, each a regular
//! expression searched in the expected lines; its capture groups are the parts
//! that may differ:
//!
//! | rule | the captured text may be | and must |
//! |---|---|---|
//! | `vary RE` | other text (a number if the shown text is one) | |
//! | `range LO..HI RE` | another number | lie in `LO..=HI` |
//! | `ratio LO..HI RE` | other numbers (two groups on one line) | have a quotient in `LO..=HI` |
//! | `differ RE` | another number or text | differ from every other value this rule captured |
//! | `same RE` | another number or text | equal every other value this rule captured |
//!
//! A rule that matches no line is an error (it has outlived its line), and so
//! is an old placeholder (`<n>`, `<pid>`, `<inode>`, `<any>`, a line `...`).
//!
//! The commands run one after another in one `bash`, as root, in an empty
//! temporary directory, with the chapter binaries (and the static helpers of
//! `target/static`) first on `PATH`, `$ROOTFS` set to the default rootfs and
//! `$CFS` to the repository, which is how the book tells learners to set up
//! their shell (`source scripts/env`). The output is shown as on the learner's
//! VM: the repository's path reads [`SHOWN_REPOSITORY`] (where the Vagrant VM
//! has it) and the temporary directory [`SHOWN_SCRATCH`] (where the setup page
//! tells learners to type the sessions), and the cgroup it runs in
//! [`SHOWN_CGROUP`] (the learner's login session).
//!
//! `CFS_RECORD=1` records: the run's output replaces the expected lines in the
//! file, and the rules are then checked against it. `CFS_RECORD=print` prints
//! the recorded file instead (for a read-only checkout, as in the VM of
//! `scripts/vm-test`).
//!
//! A session that needs a service the book cannot start in its own lines
//! (a registry, say) has a *setup*: `NAME.setup` beside `NAME.console`, a
//! bash fragment run in the same shell before the first command, with its
//! output hidden. It may export variables the commands use (`$REGISTRY`) and
//! must stop what it starts with a `trap ... EXIT`, which bash runs when the
//! session ends, passed or failed. The page says in prose what it does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use regex::Regex;

use crate::{paths, run};

/// Where the output shows the repository: `/vagrant` in the Vagrant VM.
pub const SHOWN_REPOSITORY: &str = "/vagrant";
/// Where the output shows the session's own directory: the scratch directory
/// the setup page has learners type the sessions in.
pub const SHOWN_SCRATCH: &str = "/root/scratch";

/// Where the output shows the cgroup the session runs in: the learner's login
/// session on the Vagrant VM.
pub const SHOWN_CGROUP: &str = "/user.slice/user-1000.slice/session-1.scope";

/// One command of a session and the lines it should print.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub command: String,
    pub expected: Vec<String>,
}

/// Parses a `.console` file into its steps.
pub fn parse(text: &str) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("# ") {
            steps.push(Step {
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.trim_end().to_string());
        } else if !line.trim().is_empty() {
            bail!("output before the first command: {line:?}");
        }
    }
    if steps.is_empty() {
        bail!("no command in session");
    }
    Ok(steps)
}

/// The placeholders of old, which hid from the reader what a session shows.
pub fn placeholders(steps: &[Step]) -> Vec<String> {
    let old = ["<n>", "<pid>", "<inode>", "<any>"];
    steps
        .iter()
        .flat_map(|s| &s.expected)
        .filter(|l| l.as_str() == "..." || old.iter().any(|p| l.contains(p)))
        .cloned()
        .collect()
}

/// What a rule asks of the text its groups capture.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Vary,
    Range(f64, f64),
    Ratio(f64, f64),
    Differ,
    Same,
}

/// One line of a `.rules` file.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: Kind,
    pub re: Regex,
    pub line: String,
}

/// Parses a `.rules` file (`#` starts a comment line).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (kind, re) = match word {
            "vary" => (Kind::Vary, rest),
            "differ" => (Kind::Differ, rest),
            "same" => (Kind::Same, rest),
            "range" | "ratio" => {
                let (bounds, re) = rest
                    .split_once(' ')
                    .with_context(|| format!("{word} without a regex: {line:?}"))?;
                let (lo, hi) = bounds
                    .split_once("..")
                    .with_context(|| format!("{word} not LO..HI: {line:?}"))?;
                let (lo, hi) = (lo.parse()?, hi.parse()?);
                let kind = if word == "range" {
                    Kind::Range(lo, hi)
                } else {
                    Kind::Ratio(lo, hi)
                };
                (kind, re)
            }
            _ => bail!("unknown rule {word:?} (vary, range, ratio, differ, same): {line:?}"),
        };
        let re = Regex::new(re.trim()).with_context(|| format!("bad regex in {line:?}"))?;
        if let Kind::Ratio(..) = kind {
            ensure!(re.captures_len() == 3, "a ratio needs two groups: {line:?}");
        }
        ensure!(
            re.captures_len() > 1,
            "rule without a capture group: {line:?}"
        );
        rules.push(Rule {
            kind,
            re,
            line: line.to_string(),
        });
    }
    Ok(rules)
}

/// The rules file beside a session: `NAME.rules` for `NAME.console`.
pub fn rules_file(session: &Path) -> PathBuf {
    session.with_extension("rules")
}

/// How long a session may take: the lab sessions build one or two student
/// workspaces with cargo, which on a loaded 2-core machine took over three
/// minutes once the workspace grew (engines' gRPC crates).
const SESSION_TIMEOUT: Duration = Duration::from_secs(420);

const MARK: &str = "\u{1e}\n";

/// Runs the steps in one shell and returns each step's output lines, with
/// the repository and the scratch directory as the learner's VM shows them.
pub fn execute(steps: &[Step], timeout: Duration) -> Result<Vec<Vec<String>>> {
    execute_with(None, steps, timeout)
}

/// Runs `setup` (its output dropped; it fails the session if it fails), then the steps.
pub fn execute_with(
    setup: Option<&str>,
    steps: &[Step],
    timeout: Duration,
) -> Result<Vec<Vec<String>>> {
    let mut script = String::from("exec 2>&1\n");
    if let Some(setup) = setup {
        script.push_str(&format!(
            "{{\n{setup}\n}} >/dev/null 2>&1 || {{ echo 'the session setup failed'; exit 1; }}\n"
        ));
    }
    for step in steps {
        script.push_str(&step.command);
        script.push_str("\n__rc=$?; printf '\\036\\n'; (exit $__rc)\n");
    }
    let dir = tempfile::tempdir().context("failed to create a directory for the session")?;
    let path = format!(
        "{}:{}:{}",
        paths::bin_dir().display(),
        paths::static_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("ROOTFS", paths::rootfs()?)
        .env("CFS", paths::workspace());
    let output = run::output_within(cmd, timeout)?;
    let scratch = dir.path().to_string_lossy().into_owned();
    let repository = paths::workspace().to_string_lossy().into_owned();
    // The cgroups this process runs in, per hierarchy, read as the learner's
    // login session (on the VM they are that already).
    let own_cgroups: Vec<String> = fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .filter(|p| *p != "/" && *p != SHOWN_CGROUP)
        .map(str::to_string)
        .collect();
    let mut chunks: Vec<Vec<String>> = output
        .stdout
        .split(MARK)
        .map(|chunk| {
            chunk
                .lines()
                .map(|l| {
                    let mut l = l
                        .trim_end()
                        .replace(&scratch, SHOWN_SCRATCH)
                        .replace(&repository, SHOWN_REPOSITORY);
                    for own in &own_cgroups {
                        l = l.replace(&format!("{own}/"), &format!("{SHOWN_CGROUP}/"));
                    }
                    l
                })
                .collect()
        })
        .collect();
    // The text after the last mark is empty.
    chunks.truncate(steps.len());
    Ok(chunks)
}

/// An expected line turned into a pattern: its text literally, but for the
/// spans the rules' groups capture. Returns the pattern and, per group of the
/// pattern, the rule it came from.
fn pattern(line: &str, rules: &[Rule]) -> Result<(Regex, Vec<usize>)> {
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for c in rule.re.captures_iter(line) {
            for g in c.iter().skip(1).flatten() {
                if g.start() < g.end() && !spans.iter().any(|s| g.start() < s.1 && s.0 < g.end()) {
                    spans.push((g.start(), g.end(), i));
                }
            }
        }
    }
    spans.sort();
    let number = Regex::new(r"^-?\d+(\.\d+)?$")?;
    let (mut re, mut at, mut owners) = (String::from("^"), 0, Vec::new());
    for (start, end, rule) in spans {
        re.push_str(&regex::escape(&line[at..start]));
        re.push_str(if number.is_match(&line[start..end]) {
            r"(-?\d+(?:\.\d+)?)"
        } else {
            "(.+?)"
        });
        owners.push(rule);
        at = end;
    }
    re.push_str(&regex::escape(&line[at..]));
    re.push('$');
    let re = Regex::new(&re).with_context(|| format!("bad expected line {line:?}"))?;
    Ok((re, owners))
}

/// Compares a run's output with the session's expected lines under its
/// rules; `Err` says where they differ.
pub fn compare(steps: &[Step], outputs: &[Vec<String>], rules: &[Rule]) -> Result<()> {
    let mut used = vec![false; rules.len()];
    let mut captured: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        let actual = outputs.get(i).cloned().unwrap_or_default();
        let differs = || {
            format!(
                "`{}` printed\n{}\n--- but the book shows ---\n{}",
                step.command,
                actual.join("\n"),
                step.expected.join("\n")
            )
        };
        ensure!(actual.len() == step.expected.len(), "{}", differs());
        for (expected, line) in step.expected.iter().zip(&actual) {
            let (re, owners) = pattern(expected, rules)?;
            let Some(c) = re.captures(line) else {
                bail!("{}\n--- the line that differs ---\n{line}", differs());
            };
            let mut on_line: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
            for (g, &rule) in owners.iter().enumerate() {
                used[rule] = true;
                if let Kind::Ratio(..) = rules[rule].kind {
                    let value = c.get(g + 1).map_or("", |m| m.as_str());
                    on_line
                        .entry(rule)
                        .or_default()
                        .push(value.parse().unwrap_or(f64::NAN));
                }
                let value = c.get(g + 1).map_or("", |m| m.as_str()).to_string();
                if let Kind::Range(lo, hi) = rules[rule].kind {
                    let v: f64 = value.parse().unwrap_or(f64::NAN);
                    ensure!(
                        (lo..=hi).contains(&v),
                        "`{}` printed {value} in\n{line}\nwhich is outside {lo}..{hi} ({})",
                        step.command,
                        rules[rule].line
                    );
                }
                captured.entry(rule).or_default().push(value);
            }
            for (rule, values) in on_line {
                if let (Kind::Ratio(lo, hi), [a, b]) = (&rules[rule].kind, values.as_slice()) {
                    let ratio = a / b;
                    ensure!(
                        (*lo..=*hi).contains(&ratio),
                        "`{}` printed\n{line}\nwhere {a} / {b} = {ratio:.4} is outside {lo}..{hi} ({})",
                        step.command,
                        rules[rule].line
                    );
                }
            }
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        ensure!(
            used[i],
            "the rule `{}` matches no line of the session",
            rule.line
        );
        let values = captured.remove(&i).unwrap_or_default();
        match rule.kind {
            Kind::Differ => {
                let mut seen = values.clone();
                seen.sort();
                seen.dedup();
                ensure!(
                    seen.len() == values.len(),
                    "`{}`: the values {values:?} should all differ",
                    rule.line
                );
            }
            Kind::Same => ensure!(
                values.windows(2).all(|w| w[0] == w[1]),
                "`{}`: the values {values:?} should all be the same",
                rule.line
            ),
            _ => {}
        }
    }
    Ok(())
}

/// cgroup v2 twins whose real run is still to be recorded in the VM of
/// `scripts/vm-test` (see CONTRIBUTING.md): until then they keep the old
/// placeholders (`<n>`, `<pid>`, `<inode>` a number, `<any>` the rest of a
/// line, a line `...` any lines). Empty this list.
pub const V2_NOT_YET_RECORDED: &[&str] = &[];

fn legacy_pattern(line: &str) -> Result<Regex> {
    let escaped = regex::escape(line)
        .replace("<pid>", r"\d+")
        .replace("<n>", r"\d+")
        .replace("<inode>", r"\d+")
        .replace("<any>", ".*");
    Regex::new(&format!("^{escaped}$")).with_context(|| format!("bad expected line {line:?}"))
}

fn legacy_matches(expected: &[String], actual: &[String]) -> Result<bool> {
    match expected.split_first() {
        None => Ok(actual.is_empty()),
        Some((first, rest)) if first == "..." => {
            for skip in 0..=actual.len() {
                if legacy_matches(rest, &actual[skip..])? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Some((first, rest)) => match actual.split_first() {
            Some((line, more)) => {
                Ok(legacy_pattern(first)?.is_match(line) && legacy_matches(rest, more)?)
            }
            None => Ok(false),
        },
    }
}

fn legacy_compare(steps: &[Step], outputs: &[Vec<String>]) -> Result<()> {
    for (i, step) in steps.iter().enumerate() {
        let actual = outputs.get(i).cloned().unwrap_or_default();
        ensure!(
            legacy_matches(&step.expected, &actual)?,
            "`{}` printed\n{}\n--- but the book shows ---\n{}",
            step.command,
            actual.join("\n"),
            step.expected.join("\n")
        );
    }
    Ok(())
}

/// Runs the session in `file` and fails on the first step whose output
/// differs beyond what its rules allow. With `CFS_RECORD=1`, writes the
/// run's output into the file first.
pub fn check(file: &Path) -> Result<()> {
    let text =
        fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
    let mut steps = parse(&text).with_context(|| format!("in {}", file.display()))?;
    let rules_path = rules_file(file);
    let rules = match fs::read_to_string(&rules_path) {
        Ok(text) => parse_rules(&text).with_context(|| format!("in {}", rules_path.display()))?,
        Err(_) => Vec::new(),
    };
    let setup_file = file.with_extension("setup");
    let setup = match setup_file.exists() {
        true => Some(
            fs::read_to_string(&setup_file)
                .with_context(|| format!("failed to read {}", setup_file.display()))?,
        ),
        false => None,
    };
    let outputs = execute_with(setup.as_deref(), &steps, SESSION_TIMEOUT)?;
    let record = std::env::var("CFS_RECORD").unwrap_or_default();
    if record == "1" || record == "print" {
        let mut recorded = String::new();
        for (step, output) in steps.iter_mut().zip(&outputs) {
            step.expected = output.clone();
            recorded.push_str(&format!("# {}\n", step.command));
            for line in output {
                recorded.push_str(line);
                recorded.push('\n');
            }
        }
        if record == "print" {
            // Where the checkout is read-only (the VM of scripts/vm-test).
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            println!("--- recorded {name} ---\n{recorded}--- end of {name} ---");
        } else {
            fs::write(file, recorded)
                .with_context(|| format!("failed to write {}", file.display()))?;
        }
    }
    let old = placeholders(&steps);
    if !old.is_empty() && V2_NOT_YET_RECORDED.iter().any(|n| file.ends_with(n)) {
        eprintln!(
            "{}: a cgroup v2 twin not yet recorded in the VM: matched with the old placeholders",
            file.display()
        );
        return legacy_compare(&steps, &outputs).with_context(|| format!("in {}", file.display()));
    }
    ensure!(
        old.is_empty(),
        "{}: shows placeholders instead of a real run (record it with CFS_RECORD=1, say in {} what may vary): {old:?}",
        file.display(),
        rules_path.display()
    );
    compare(&steps, &outputs, &rules).with_context(|| format!("in {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    fn one(expected: &str, actual: &str, rules: &str) -> Result<()> {
        let steps = parse(&format!("# cmd\n{expected}"))?;
        compare(&steps, &[lines(actual)], &parse_rules(rules)?)
    }

    #[test]
    fn parses_commands_and_output() -> Result<()> {
        let steps = parse("# hostname\nbox\n# echo $?\n0\n")?;
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].command, "hostname");
        assert_eq!(steps[0].expected, vec!["box"]);
        assert!(parse("orphan output\n").is_err());
        Ok(())
    }

    #[test]
    fn text_is_exact_where_no_rule_says_otherwise() -> Result<()> {
        assert!(one("exit status 137", "exit status 137", "").is_ok());
        assert!(one("exit status 137", "exit status 0", "").is_err());
        assert!(one("a\nb", "a", "").is_err());
        assert!(one("1.5 (x)", "1x5 (x)", "").is_err());
        Ok(())
    }

    #[test]
    fn vary_lets_the_captured_text_differ() -> Result<()> {
        let rules = r"vary child pid (\d+)";
        assert!(one("child pid 4242 ok", "child pid 17 ok", rules).is_ok());
        assert!(one("child pid 4242 ok", "child pid x ok", rules).is_err());
        assert!(one("child pid 4242 ok", "child pid 17 no", rules).is_err());
        assert!(one("kernel 6.1.0-9", "kernel 6.12.1", r"vary kernel (.*)").is_ok());
        // A rule must match some line.
        assert!(one("a", "a", r"vary pid (\d+)").is_err());
        Ok(())
    }

    #[test]
    fn range_holds_a_number_within_bounds() -> Result<()> {
        let rules = r"range 0.15..0.25 used ([\d.]+) s";
        assert!(one("used 0.20 s", "used 0.17 s", rules).is_ok());
        assert!(one("used 0.20 s", "used 0.60 s", rules).is_err());
        Ok(())
    }

    #[test]
    fn ratio_holds_the_quotient_of_two_numbers_on_a_line() -> Result<()> {
        let rules = r"ratio 0.015..0.025 used ([\d.]+) s in (\d+) periods";
        assert!(one(
            "used 0.42 s in 21 periods",
            "used 0.59 s in 30 periods",
            rules
        )
        .is_ok());
        assert!(one(
            "used 0.42 s in 21 periods",
            "used 1.90 s in 20 periods",
            rules
        )
        .is_err());
        Ok(())
    }

    #[test]
    fn differ_and_same_compare_the_captured_values() -> Result<()> {
        let differ = r"differ uts:\[(\d+)\]";
        assert!(one("uts:[1]\nuts:[2]", "uts:[7]\nuts:[8]", differ).is_ok());
        assert!(one("uts:[1]\nuts:[2]", "uts:[7]\nuts:[7]", differ).is_err());
        let same = r"same pid (\d+)";
        assert!(one("pid 1\npid 1", "pid 5\npid 5", same).is_ok());
        assert!(one("pid 1\npid 1", "pid 5\npid 6", same).is_err());
        Ok(())
    }

    #[test]
    fn old_placeholders_are_found() -> Result<()> {
        assert_eq!(placeholders(&parse("# a\npid <pid>\n...\nok")?).len(), 2);
        assert!(placeholders(&parse("# a\npid 4242")?).is_empty());
        Ok(())
    }
}
