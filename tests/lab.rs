//! Labs (`scripts/lab`): for every registered lab, `start` gives a student
//! workspace that holds no solution text; it compiles without warnings; every
//! check fails on it, with a hint; every check passes on the reference; and
//! `grade` tables a reference and a skeleton as expected. Also: `start` refuses
//! malformed markers and bad directories, leaving nothing behind; `check` and
//! `grade` refuse bad input in one line; a copy that does not build is graded
//! with none of the reference's checks run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::Duration;

use cfs_tests::mutants::{mutants, Mutant};
use cfs_tests::paths::workspace;
use cfs_tests::run::{output_within, Output};
use cfs_tests::{bail, ensure, plain, root, Context, Result};
use libtest_mimic::Trial;

/// A lab check builds a workspace: allow for a slow machine.
const TIMEOUT: Duration = Duration::from_secs(540);

/// The temporary directory holding the student workspaces of this run.
static WORK: Mutex<Option<tempfile::TempDir>> = Mutex::new(None);

fn work() -> Result<PathBuf> {
    let mut work = WORK.lock().map_err(|_| cfs_tests::anyhow!("poisoned"))?;
    if work.is_none() {
        *work = Some(
            tempfile::Builder::new()
                .prefix("cfs-lab-test-")
                .tempdir()
                .context("failed to create a temporary directory")?,
        );
    }
    Ok(work.as_ref().context("no work dir")?.path().to_path_buf())
}

fn lab(args: &[&str]) -> Result<Output> {
    lab_in(&workspace(), args)
}

fn lab_in(tree: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(tree.join("scripts/lab"));
    cmd.args(args).current_dir(work()?);
    output_within(cmd, TIMEOUT)
}

/// The registered labs, from `scripts/lab list`.
fn labs() -> Result<Vec<String>> {
    let out = lab(&["list"])?;
    out.expect_code(0)?;
    Ok(out
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The student workspace of lab `ch` for this run, made on first use.
fn skeleton(ch: &str) -> Result<PathBuf> {
    let dir = work()?.join(format!("skeleton-{ch}"));
    if !dir.join(".lab/chapter").exists() {
        let out = lab(&["start", ch, &dir.to_string_lossy()])?;
        out.expect_code(0)?;
    }
    Ok(dir)
}

/// A marked body in the reference: file, first and last line (1-based, the
/// marker lines), and the lines between the markers.
struct Body {
    file: PathBuf,
    begin: usize,
    end: usize,
    lines: Vec<String>,
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
}

/// The marked bodies of lab `ch` in the reference, parsed here independently
/// of `scripts/lab`.
fn bodies(ch: &str) -> Result<Vec<Body>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(workspace().join("chapters"))?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("{ch}-"))
        {
            rust_files(&entry.path().join("src"), &mut files);
        }
    }
    files.sort();
    let mut bodies = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file)?;
        let mut open: Option<(usize, Vec<String>)> = None;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("// LAB:BEGIN ") {
                ensure!(
                    open.is_none(),
                    "{}:{}: nested LAB:BEGIN",
                    file.display(),
                    i + 1
                );
                open = Some((i + 1, Vec::new()));
            } else if trimmed == "// LAB:END" {
                let (begin, lines) = open
                    .take()
                    .with_context(|| format!("{}:{}: stray LAB:END", file.display(), i + 1))?;
                bodies.push(Body {
                    file: file.clone(),
                    begin,
                    end: i + 1,
                    lines,
                });
            } else if let Some((_, lines)) = open.as_mut() {
                lines.push(trimmed.to_string());
            }
        }
        ensure!(open.is_none(), "{}: unterminated LAB:BEGIN", file.display());
    }
    Ok(bodies)
}

/// Text files under `dir`, skipping build output, git data and symlinks.
fn text_files(dir: &Path, found: &mut Vec<(PathBuf, String)>) -> Result<()> {
    for entry in fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = entry.file_type()?;
        if kind.is_symlink() || [".git", "target", "build"].contains(&name.as_str()) {
            continue;
        }
        if kind.is_dir() {
            if path.ends_with("book/book") {
                continue;
            }
            text_files(&path, found)?;
        } else if let Ok(text) = fs::read_to_string(&path) {
            found.push((path, text));
        }
    }
    Ok(())
}

/// The lines that only the answers hold: lines between lab `ch`'s markers
/// that no Rust source of the reference has outside them (`}`, `Ok(())` and
/// the like are everywhere). A copy anywhere else, in a page or a script, is
/// a leak like any other.
fn solution_lines(ch: &str) -> Result<BTreeSet<String>> {
    let bodies = bodies(ch)?;
    let mut marked: BTreeMap<PathBuf, Vec<(usize, usize)>> = BTreeMap::new();
    let mut lines = BTreeSet::new();
    for body in &bodies {
        marked
            .entry(body.file.canonicalize()?)
            .or_default()
            .push((body.begin, body.end));
        lines.extend(body.lines.iter().filter(|l| !l.is_empty()).cloned());
    }
    let mut files = Vec::new();
    text_files(&workspace(), &mut files)?;
    for (path, text) in files {
        if !path.extension().is_some_and(|e| e == "rs") {
            continue;
        }
        let ranges = marked
            .get(&path.canonicalize()?)
            .cloned()
            .unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if !ranges.iter().any(|(b, e)| n > *b && n < *e) {
                lines.remove(line.trim());
            }
        }
    }
    Ok(lines)
}

fn start_gives_a_skeleton_without_solution_text(ch: &str) -> Result<()> {
    let answers = solution_lines(ch)?;
    ensure!(
        answers.len() >= 3,
        "lab {ch} marks almost nothing that is its own: {answers:?}"
    );
    let dir = skeleton(ch)?;
    // Each marked body is now a todo!() with the lab's name, between the markers.
    for body in bodies(ch)? {
        let rel = body.file.strip_prefix(workspace())?;
        let text = fs::read_to_string(dir.join(rel))?;
        let todo = format!("todo!(\"lab {ch}: ");
        ensure!(
            text.lines().filter(|l| l.trim().starts_with(&todo)).count()
                == bodies(ch)?.iter().filter(|b| b.file == body.file).count(),
            "{}: not one {todo}...) per marked body",
            rel.display()
        );
    }
    let mut files = Vec::new();
    text_files(&dir, &mut files)?;
    ensure!(
        files.len() > 20,
        "the skeleton holds only {} files",
        files.len()
    );
    let mut leaks = Vec::new();
    for (path, text) in &files {
        for line in text.lines() {
            if answers.contains(line.trim()) {
                leaks.push(format!("{}: {}", path.display(), line.trim()));
            }
        }
    }
    ensure!(
        leaks.is_empty(),
        "solution text in the skeleton:\n{}",
        leaks.join("\n")
    );
    // No history to dig the answers out of: one commit, no remote, no alternates.
    let git = |args: &[&str]| -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(args)
            .output()?;
        ensure!(out.status.success(), "git {args:?} failed");
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    ensure!(
        git(&["rev-list", "--all", "--count"])? == "1",
        "more than one commit"
    );
    ensure!(
        git(&["remote"])?.is_empty(),
        "the skeleton has a git remote"
    );
    ensure!(
        !dir.join(".git/objects/info/alternates").exists(),
        "the skeleton borrows git objects"
    );
    Ok(())
}

/// The results `check` wrote for `dir`: (name, status) per check.
fn results(dir: &Path, ch: &str) -> Result<Vec<(String, String)>> {
    let tsv = dir.join(format!("target/lab/{ch}.tsv"));
    let text =
        fs::read_to_string(&tsv).with_context(|| format!("failed to read {}", tsv.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split('\t');
            Some((fields.next()?.to_string(), fields.next()?.to_string()))
        })
        .collect())
}

/// The number of checks declared in tests/chNN.rs.
fn declared_checks(ch: &str) -> Result<usize> {
    let text = fs::read_to_string(workspace().join(format!("tests/{ch}.rs")))?;
    Ok(regex::Regex::new(r"(?m)^\s*check\(")?
        .find_iter(&text)
        .count())
}

/// No process left running from the workspace's binaries.
fn no_leftovers(dir: &Path) -> Result<()> {
    let target = dir.join("target");
    let mut left = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(exe) = fs::read_link(entry.path().join("exe")) {
            let own = entry.file_name().to_string_lossy() == std::process::id().to_string();
            if exe.starts_with(&target) && !own {
                left.push(format!(
                    "{}: {}",
                    entry.file_name().to_string_lossy(),
                    exe.display()
                ));
            }
        }
    }
    ensure!(left.is_empty(), "processes left behind: {left:?}");
    Ok(())
}

fn check_fails_every_check_on_the_skeleton(ch: &str) -> Result<()> {
    let dir = skeleton(ch)?;
    let out = lab(&["check", ch, &dir.to_string_lossy()])?;
    ensure!(
        out.code == 1,
        "check exited {} on the skeleton\n{}{}",
        out.code,
        out.stdout,
        out.stderr
    );
    ensure!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("✔ build: ") && l.ends_with(", 0 warning(s)")),
        "the skeleton did not build without warnings:\n{}",
        out.stdout
    );
    let results = results(&dir, ch)?;
    let declared = declared_checks(ch)?;
    ensure!(
        results.len() == declared && declared > 0,
        "{} results for {declared} checks declared in tests/{ch}.rs",
        results.len()
    );
    let passing: Vec<_> = results.iter().filter(|(_, s)| s != "fail").collect();
    ensure!(
        passing.is_empty(),
        "checks that do not fail on the skeleton: {passing:?}"
    );
    ensure!(
        out.stdout.matches("\n✘ ").count() == declared
            && out.stdout.matches("      hint:    ").count() == declared,
        "not one ✘ line and one hint per check:\n{}",
        out.stdout
    );
    ensure!(
        out.stdout
            .contains(&format!("reached a todo!() at chapters/{ch}-")),
        "no check reached one of the skeleton's todo!()s:\n{}",
        out.stdout
    );
    ensure!(
        out.stdout.contains(&format!("0 of {declared} checks pass")),
        "{}",
        out.stdout
    );
    no_leftovers(&dir)
}

fn check_passes_on_the_reference(ch: &str) -> Result<()> {
    let out = lab(&["check", ch])?;
    ensure!(
        out.code == 0,
        "check exited {} on the reference\n{}{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let results = results(&workspace(), ch)?;
    let declared = declared_checks(ch)?;
    ensure!(
        results.len() == declared && results.iter().all(|(_, s)| s == "pass"),
        "{results:?}"
    );
    ensure!(
        out.stdout
            .contains(&format!("{declared} of {declared} checks pass")),
        "{}",
        out.stdout
    );
    no_leftovers(&workspace())
}

fn grade_tables_a_reference_and_a_skeleton() -> Result<()> {
    let ch = "ch01";
    let skel = skeleton(ch)?;
    let csv = work()?.join("grades.csv");
    let reference = workspace();
    let out = lab(&[
        "grade",
        "--csv",
        &csv.to_string_lossy(),
        ch,
        &reference.to_string_lossy(),
        &skel.to_string_lossy(),
    ])?;
    out.expect_code(0)?;
    let n = declared_checks(ch)?;
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let (ref_name, skel_name) = (
        name(&reference).context("no name")?,
        name(&skel).context("no name")?,
    );
    // The table: a header, then one row per workspace in the order given.
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let header = rows
        .iter()
        .position(|r| r.first() == Some(&"workspace"))
        .context("no table header")?;
    let numbers: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    ensure!(
        rows[header][3..3 + n] == numbers.iter().map(String::as_str).collect::<Vec<_>>()[..],
        "header: {:?}",
        rows[header]
    );
    let mut expected_ref = vec![ref_name.as_str(), "✔", "reference"];
    expected_ref.extend(std::iter::repeat("✔").take(n));
    let score = format!("{n}/{n}");
    expected_ref.push(&score);
    let mut expected_skel = vec![skel_name.as_str(), "✔", "unchanged"];
    expected_skel.extend(std::iter::repeat("✘").take(n));
    let zero = format!("0/{n}");
    expected_skel.push(&zero);
    ensure!(
        rows.get(header + 1) == Some(&expected_ref) && rows.get(header + 2) == Some(&expected_skel),
        "the table is not as expected:\n{}",
        out.stdout
    );
    // The CSV: the same, with the checks' names.
    let text = fs::read_to_string(&csv)?;
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    ensure!(lines.len() == 3, "CSV:\n{text}");
    ensure!(
        lines[0][..5] == ["workspace", "path", "chapter", "build", "tests"]
            && lines[0].len() == 5 + n + 2
            && lines[0][5] == "hostname_inside_is_the_one_asked_for",
        "CSV header: {:?}",
        lines[0]
    );
    let mut row_ref = vec![ref_name.as_str(), "", ch, "pass", "reference"];
    row_ref.extend(std::iter::repeat("pass").take(n));
    let n_text = n.to_string();
    row_ref.extend([n_text.as_str(), n_text.as_str()]);
    let mut row_skel = vec![skel_name.as_str(), "", ch, "pass", "unchanged"];
    row_skel.extend(std::iter::repeat("fail").take(n));
    row_skel.extend(["0", n_text.as_str()]);
    for (line, mut expected, path) in [
        (&lines[1], row_ref, reference.to_string_lossy()),
        (&lines[2], row_skel, skel.to_string_lossy()),
    ] {
        expected[1] = &path;
        ensure!(*line == expected, "CSV row {line:?}, expected {expected:?}");
    }
    // Each workspace's scoreboard is kept for the instructor.
    let boards = work()?.join("grades");
    for name in [&ref_name, &skel_name] {
        let board = fs::read_to_string(boards.join(format!("{name}.txt")))?;
        ensure!(board.starts_with(&format!("lab {ch} in ")), "{board}");
    }
    Ok(())
}

/// A reference tree with one chapter crate holding `source`, for `start`.
fn fake_reference(name: &str, source: &str) -> Result<PathBuf> {
    let tree = work()?.join(name);
    for dir in ["scripts", "chapters/ch01-fake/src", "tests/harness"] {
        fs::create_dir_all(tree.join(dir))?;
    }
    fs::copy(workspace().join("scripts/lab"), tree.join("scripts/lab"))?;
    fs::copy(
        workspace().join("scripts/lib.sh"),
        tree.join("scripts/lib.sh"),
    )?;
    fs::write(tree.join("chapters/ch01-fake/src/lib.rs"), source)?;
    for file in [
        "Cargo.toml",
        "tests/Cargo.toml",
        "tests/harness/lib.rs",
        "tests/ch01.rs",
    ] {
        fs::write(tree.join(file), "")?;
    }
    Ok(tree)
}

fn start_turns_markers_into_todos_and_refuses_bad_ones() -> Result<()> {
    let good = "//! A chapter.\n\nuse std::fmt;\n\npub fn f(x: u8) -> u8 {\n    // LAB:BEGIN f: say \"hi\" with {x} \\ done\n    x + 1\n    // LAB:END\n}\n";
    let tree = fake_reference("fake-good", good)?;
    let dir = work()?.join("fake-good-student");
    lab_in(&tree, &["start", "ch01", &dir.to_string_lossy()])?.expect_code(0)?;
    let text = fs::read_to_string(dir.join("chapters/ch01-fake/src/lib.rs"))?;
    let expected = "//! A chapter.\n\n// Added by scripts/lab: until the LAB bodies below are written, what they use is unused.\n#![allow(unused)]\n\nuse std::fmt;\n\npub fn f(x: u8) -> u8 {\n    // LAB:BEGIN f: say \"hi\" with {x} \\ done\n    todo!(\"lab ch01: say \\\"hi\\\" with {{x}} \\\\ done\")\n    // LAB:END\n}\n";
    ensure!(text == expected, "skeleton:\n{text}\nexpected:\n{expected}");

    let bad = [
        (
            "not the first line of a body",
            "//! x\nfn f() {\n    let a = 1;\n    // LAB:BEGIN f: hint\n    a\n    // LAB:END\n}\n",
            "lib.rs:4: LAB:BEGIN must be the first line of a function body",
        ),
        (
            "not the last line of a body",
            "//! x\nfn f() -> u8 {\n    // LAB:BEGIN f: hint\n    1\n    // LAB:END\n    + 1\n}\n",
            "lib.rs:5: LAB:END must be the last line of a function body",
        ),
        (
            "no hint",
            "//! x\nfn f() -> u8 {\n    // LAB:BEGIN f\n    1\n    // LAB:END\n}\n",
            "lib.rs:3: write the marker as: // LAB:BEGIN name: a one-line hint",
        ),
        (
            "no end",
            "//! x\nfn f() -> u8 {\n    // LAB:BEGIN f: hint\n    1\n}\n",
            "lib.rs:3: LAB:BEGIN without a LAB:END",
        ),
        (
            "a typo",
            "//! x\nfn f() -> u8 {\n    // LAB:BEGN f: hint\n    1\n}\n",
            "lib.rs:3: unknown marker",
        ),
    ];
    for (i, (what, source, message)) in bad.iter().enumerate() {
        let tree = fake_reference(&format!("fake-bad-{i}"), source)?;
        let dir = work()?.join(format!("fake-bad-{i}-student"));
        let out = lab_in(&tree, &["start", "ch01", &dir.to_string_lossy()])?;
        ensure!(
            out.code == 2 && out.stderr.contains(message),
            "{what}: exit {}, stderr {:?}",
            out.code,
            out.stderr
        );
        ensure!(!dir.exists(), "{what}: {} was left behind", dir.display());
    }

    // A failure half-way (here: the reference has no tests/ch01.rs to
    // checksum) leaves nothing behind either.
    let tree = fake_reference("fake-no-tests", good)?;
    fs::remove_file(tree.join("tests/ch01.rs"))?;
    let dir = work()?.join("fake-no-tests-student");
    let out = lab_in(&tree, &["start", "ch01", &dir.to_string_lossy()])?;
    ensure!(
        out.code != 0
            && out
                .stderr
                .contains("lab: start failed; removed what it made"),
        "{out:?}"
    );
    ensure!(!dir.exists(), "{} was left behind", dir.display());

    // Directories it must not use.
    let inside = workspace().join("target/lab-inside");
    let out = lab(&["start", "ch01", &inside.to_string_lossy()])?;
    ensure!(
        out.code == 2 && out.stderr.contains("is inside the reference tree"),
        "{out:?}"
    );
    ensure!(!inside.exists(), "{} was made", inside.display());
    let full = work()?.join("not-empty");
    fs::create_dir_all(&full)?;
    fs::write(full.join("mine"), "keep me")?;
    let out = lab(&["start", "ch01", &full.to_string_lossy()])?;
    ensure!(
        out.code == 2 && out.stderr.contains("already exists and is not empty"),
        "{out:?}"
    );
    ensure!(
        fs::read_dir(&full)?.count() == 1,
        "{} was changed",
        full.display()
    );
    let out = lab(&["start", "ch99"])?;
    ensure!(
        out.code == 2 && out.stderr.contains("no lab for ch99"),
        "{out:?}"
    );
    Ok(())
}

fn check_and_grade_refuse_bad_input() -> Result<()> {
    let skel = skeleton("ch01")?;
    let skel_text = skel.to_string_lossy().into_owned();
    let mut nobody = Command::new(workspace().join("scripts/lab"));
    nobody.args(["check", "ch01", &skel_text]);
    let out = cfs_tests::run::as_nobody(nobody)?;
    ensure!(
        out.code == 2 && out.stderr.contains("run as root"),
        "as nobody: {out:?}"
    );
    let missing = work()?.join("missing");
    for (args, message) in [
        (
            vec!["check", "ch01", missing.to_str().context("path")?],
            "no directory",
        ),
        (
            vec!["check", "ch01", "/"],
            "is not a workspace for lab ch01",
        ),
        (
            vec!["check", "ch02", &skel_text],
            "is a workspace for lab ch01, not ch02",
        ),
        (
            vec!["grade", "ch01", &skel_text, &skel_text],
            "two workspaces are named",
        ),
        (vec!["grade", "/"], "does not say which lab it is"),
    ] {
        let out = lab(&args)?;
        ensure!(
            out.code == 2 && out.stderr.contains(message) && out.stderr.lines().count() == 1,
            "{args:?}: {out:?}"
        );
    }
    Ok(())
}

fn a_copy_that_does_not_build_is_graded_with_no_check_run() -> Result<()> {
    let dir = work()?.join("broken-ch01");
    if !dir.exists() {
        lab(&["start", "ch01", &dir.to_string_lossy()])?.expect_code(0)?;
    }
    let file = dir.join("chapters/ch01-uts/src/uts.rs");
    let text = fs::read_to_string(&file)?;
    let broken = text.replacen("todo!(", "compile_error!(", 1);
    ensure!(broken != text, "no todo!() in {}", file.display());
    fs::write(&file, broken)?;
    let out = lab(&["check", "ch01", &dir.to_string_lossy()])?;
    ensure!(
        out.code == 1
            && out.stdout.contains("✘ build: ")
            && out.stdout.contains("error: lab ch01: ")
            && out.stdout.contains("no check ran: the build failed"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // Graded, it scores 0 of the reference's checks, none of them run.
    let csv = work()?.join("broken.csv");
    let out = lab(&[
        "grade",
        "--csv",
        &csv.to_string_lossy(),
        &dir.to_string_lossy(),
    ])?;
    out.expect_code(0)?;
    let n = declared_checks("ch01")?;
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("broken-ch01 "))
        .context("no row for the broken copy")?;
    let mut expected = vec!["broken-ch01", "✘", "unchanged"];
    expected.extend(std::iter::repeat("✘").take(n));
    let score = format!("0/{n}");
    expected.push(&score);
    ensure!(
        row.split_whitespace().collect::<Vec<_>>() == expected,
        "row: {row}"
    );
    let text = fs::read_to_string(&csv)?;
    let last = text.lines().last().unwrap_or_default().to_string();
    let fields: Vec<&str> = last.split(',').collect();
    ensure!(
        fields.len() == 5 + n + 2
            && fields[3] == "fail"
            && fields[5..5 + n].iter().all(|f| *f == "not-run"),
        "CSV: {text}"
    );
    Ok(())
}

fn every_lab_is_registered_and_marked() -> Result<()> {
    let labs = labs()?;
    ensure!(
        labs.len() >= 2 && labs[..2] == ["ch01", "ch02"],
        "labs: {labs:?}"
    );
    // A chapter with markers but no registration would never be checked.
    for entry in fs::read_dir(workspace().join("chapters"))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ch = name.split('-').next().unwrap_or_default().to_string();
        let marked = !bodies(&ch)?.is_empty();
        ensure!(
            !marked || labs.contains(&ch),
            "chapters/{name} has LAB markers but scripts/lab does not list {ch}"
        );
    }
    for ch in &labs {
        ensure!(!bodies(ch)?.is_empty(), "lab {ch} marks no body");
        ensure!(declared_checks(ch)? > 0, "tests/{ch}.rs declares no check");
    }
    Ok(())
}

/// The marked bodies' names of lab `ch`, in the order `scripts/lab list` gives.
fn body_names(ch: &str) -> Result<Vec<(String, String)>> {
    let mut names = Vec::new();
    for body in bodies(ch)? {
        let text = fs::read_to_string(&body.file)?;
        let line = text.lines().nth(body.begin - 1).unwrap_or_default().trim();
        let rest = line.trim_start_matches("// LAB:BEGIN ");
        let (name, hint) = rest.split_once(':').context("no hint")?;
        names.push((name.to_string(), hint.trim().to_string()));
    }
    Ok(names)
}

/// Every body of every lab has a hint ladder of at least three rungs, and
/// `scripts/lab hint` climbs it one rung at a time; the skeleton's `todo!()`
/// (the marker's hint) names a man page and the goal, not the flags.
fn hints_are_ladders_and_todos_give_no_flags() -> Result<()> {
    let flag = regex::Regex::new(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")?;
    let man = regex::Regex::new(r"\b[a-z_0-9]+\([1-8]\)")?;
    for ch in labs()? {
        let path = workspace().join(format!("labs/hints/{ch}.txt"));
        let text = fs::read_to_string(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        for (name, hint) in body_names(&ch)? {
            ensure!(
                !flag.is_match(&hint) && man.is_match(&hint),
                "lab {ch}: the todo!() of {name} must name a man page and no flag: {hint:?}"
            );
            let ladder: Vec<&str> = text
                .split("\n## ")
                .find(|s| s.trim_start_matches("## ").lines().next() == Some(name.as_str()))
                .with_context(|| format!("{}: no ladder ## {name}", path.display()))?
                .lines()
                .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
                .collect();
            ensure!(
                ladder.len() >= 3,
                "{}: {name} has {} rungs, fewer than 3",
                path.display(),
                ladder.len()
            );
            for (i, rung) in ladder.iter().enumerate() {
                ensure!(
                    rung.starts_with(&format!("{}. ", i + 1)),
                    "{}: rung {} of {name} is numbered wrong: {rung}",
                    path.display(),
                    i + 1
                );
            }
            let one = lab(&["hint", &ch, "1", &name])?;
            one.expect_code(0)?;
            ensure!(
                one.stdout.contains(ladder[0]) && !one.stdout.contains(ladder[1]),
                "lab hint {ch} 1 {name}:\n{}",
                one.stdout
            );
            let two = lab(&["hint", &ch, "2", &name])?;
            ensure!(
                two.stdout.contains(ladder[1]) && !two.stdout.contains(ladder[2]),
                "lab hint {ch} 2 {name}:\n{}",
                two.stdout
            );
        }
    }
    for (args, message) in [
        (vec!["hint", "ch03", "0"], "not a rung number"),
        (vec!["hint", "ch03", "1", "nope"], "has no body 'nope'"),
        (vec!["hint", "ch99", "1"], "no lab for ch99"),
    ] {
        let out = lab(&args)?;
        ensure!(
            out.code == 2 && out.stderr.contains(message),
            "{args:?}: {out:?}"
        );
    }
    Ok(())
}

/// A made-up student copy for `lab reset`: `.lab/chapter`, a rootfs with an
/// empty `.oldroot-*` (a failed pivot_root's) and a full one (not ours to
/// judge), a program of its own still running, and a tmpfs mounted in it.
struct FakeCopy {
    dir: PathBuf,
    running: cfs_tests::run::Background,
    mount: PathBuf,
}

fn fake_copy(name: &str) -> Result<FakeCopy> {
    let dir = work()?.join(name);
    fs::create_dir_all(dir.join(".lab"))?;
    fs::write(dir.join(".lab/chapter"), "ch03\n")?;
    fs::create_dir_all(dir.join("build/rootfs/.oldroot-AbC123"))?;
    fs::create_dir_all(dir.join("build/rootfs/.oldroot-full"))?;
    fs::write(dir.join("build/rootfs/.oldroot-full/file"), "keep")?;
    fs::create_dir_all(dir.join("target/debug"))?;
    let program = dir.join("target/debug/ch03-mount-chroot");
    fs::copy("/bin/sleep", &program)?;
    let running = cfs_tests::run::Background::start({
        let mut cmd = Command::new(&program);
        cmd.arg("1000");
        cmd
    })?;
    let mount = dir.join("build/rootfs/mnt");
    fs::create_dir_all(&mount)?;
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "cfs-lab-reset-test"])
        .arg(&mount)
        .status()?;
    ensure!(
        status.success(),
        "failed to mount a tmpfs on {}",
        mount.display()
    );
    Ok(FakeCopy {
        dir,
        running,
        mount,
    })
}

fn is_mounted(point: &Path) -> Result<bool> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    let point = point.to_string_lossy();
    Ok(text.lines().any(|l| l.split(' ').nth(4) == Some(&*point)))
}

/// `scripts/lab reset DIR` cleans that student copy (its processes, its
/// mounts, the empty `.oldroot-*` of its rootfs) and nothing else: another
/// copy's are left alone; it refuses a directory that is not a copy.
fn lab_reset_cleans_one_copy_and_nothing_else() -> Result<()> {
    let a = fake_copy("reset-a")?;
    let b = fake_copy("reset-b")?;
    let outcome = (|| -> Result<()> {
        let out = lab(&["reset", &a.dir.to_string_lossy()])?;
        out.expect_code(0)?;
        for line in [
            format!("lab reset: killed pid {} (", a.running.pid()),
            format!("lab reset: unmounted {}", a.mount.display()),
            format!(
                "lab reset: removed {}/build/rootfs/.oldroot-AbC123 (a put_old directory left by pivot_root)",
                a.dir.display()
            ),
            format!("lab reset: {}: cleaned 3 item(s)", a.dir.display()),
        ] {
            ensure!(out.stdout.contains(&line), "no {line:?} in\n{}", out.stdout);
        }
        ensure!(
            out.stderr.contains(".oldroot-full: it is not empty"),
            "{}",
            out.stderr
        );
        ensure!(
            !is_mounted(&a.mount)?,
            "{} is still mounted",
            a.mount.display()
        );
        ensure!(
            !a.dir.join("build/rootfs/.oldroot-AbC123").exists()
                && a.dir.join("build/rootfs/.oldroot-full/file").exists(),
            "reset removed the wrong .oldroot-*"
        );
        wait_for_exit(a.running.pid())?;
        // The other copy is untouched.
        ensure!(
            is_mounted(&b.mount)?,
            "reset unmounted another copy's mount"
        );
        ensure!(
            b.dir.join("build/rootfs/.oldroot-AbC123").exists(),
            "reset cleaned another copy's rootfs"
        );
        ensure!(
            Path::new(&format!("/proc/{}", b.running.pid())).exists(),
            "reset killed another copy's program"
        );
        let again = lab(&["reset", &a.dir.to_string_lossy()])?;
        ensure!(
            again.stdout.contains(": nothing to clean"),
            "{}",
            again.stdout
        );
        let out = lab(&["reset", &workspace().to_string_lossy()])?;
        ensure!(
            out.code == 2 && out.stderr.contains("is not a student workspace"),
            "{out:?}"
        );
        Ok(())
    })();
    for copy in [&a, &b] {
        if is_mounted(&copy.mount).unwrap_or(false) {
            let _ = Command::new("umount").arg("-l").arg(&copy.mount).status();
        }
    }
    outcome
}

fn wait_for_exit(pid: nix::unistd::Pid) -> Result<()> {
    cfs_tests::run::wait_for(Duration::from_secs(5), || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        stat.map_or(true, |s| s.contains(") Z ")).then_some(())
    })
    .with_context(|| format!("pid {pid} is still running"))
}

fn main() -> ExitCode {
    let mut trials: Vec<Trial> = vec![
        plain(
            "hints_are_ladders_and_todos_give_no_flags",
            hints_are_ladders_and_todos_give_no_flags,
        ),
        plain(
            "every_lab_is_registered_and_marked",
            every_lab_is_registered_and_marked,
        ),
        plain(
            "start_turns_markers_into_todos_and_refuses_bad_ones",
            start_turns_markers_into_todos_and_refuses_bad_ones,
        ),
    ];
    let every = every_mutant();
    let mutants_trial = if every {
        "every_mutant_is_caught"
    } else {
        "a_mutant_per_body_is_caught"
    };
    match labs() {
        Ok(labs) => {
            for ch in labs {
                let (a, b, c, d) = (ch.clone(), ch.clone(), ch.clone(), ch.clone());
                trials.push(plain(
                    &format!("{ch}::start_gives_a_skeleton_without_solution_text"),
                    move || start_gives_a_skeleton_without_solution_text(&a),
                ));
                trials.push(root(
                    &format!("{ch}::check_fails_every_check_on_the_skeleton"),
                    move || check_fails_every_check_on_the_skeleton(&b),
                ));
                trials.push(root(
                    &format!("{ch}::check_passes_on_the_reference"),
                    move || check_passes_on_the_reference(&c),
                ));
                trials.push(root(&format!("{ch}::{mutants_trial}"), move || {
                    mutants_are_caught(&d, every)
                }));
            }
        }
        Err(err) => trials.push(plain("labs_are_listed", move || bail!("{err:#}"))),
    }
    trials.push(root(
        "lab_reset_cleans_one_copy_and_nothing_else",
        lab_reset_cleans_one_copy_and_nothing_else,
    ));
    trials.push(root(
        "check_and_grade_refuse_bad_input",
        check_and_grade_refuse_bad_input,
    ));
    trials.push(root(
        "a_copy_that_does_not_build_is_graded_with_no_check_run",
        a_copy_that_does_not_build_is_graded_with_no_check_run,
    ));
    trials.push(root(
        "grade_tables_a_reference_and_a_skeleton",
        grade_tables_a_reference_and_a_skeleton,
    ));
    let code = cfs_tests::main(trials);
    if let Ok(mut work) = WORK.lock() {
        work.take();
    }
    code
}

/// `text` of a reference file with mutant `m` applied inside the body of its
/// function (between that body's LAB markers); each replaced text must be
/// there exactly once.
fn mutate(text: &str, m: &Mutant) -> Result<String> {
    let begin = format!("// LAB:BEGIN {}:", m.function);
    let start = text
        .find(&begin)
        .with_context(|| format!("{}: no marked body {}", m.name, m.function))?;
    let end = start
        + text[start..]
            .find("// LAB:END")
            .with_context(|| format!("{}: no LAB:END", m.name))?;
    let mut body = text[start..end].to_string();
    for (from, to) in &m.edits {
        ensure!(
            body.matches(from.as_str()).count() == 1,
            "{}: the text to replace is not found exactly once in the body of {}:\n{from}",
            m.name,
            m.function
        );
        body = body.replacen(from.as_str(), to, 1);
    }
    Ok(format!("{}{}{}", &text[..start], body, &text[end..]))
}

/// The file of the reference that holds the body mutant `m` changes.
fn file_of_mutant(ch: &str, m: &Mutant) -> Result<PathBuf> {
    if m.file.is_empty() {
        file_of(ch, &m.function)
    } else {
        Ok(workspace().join(&m.file))
    }
}

/// The file of the reference that holds the marked body of `function` of lab `ch`.
fn file_of(ch: &str, function: &str) -> Result<PathBuf> {
    let needle = format!("// LAB:BEGIN {function}:");
    for body in bodies(ch)? {
        if fs::read_to_string(&body.file)?.contains(&needle) {
            return Ok(body.file);
        }
    }
    bail!("lab {ch} marks no body {function}")
}

/// The failed checks of a scoreboard: each check's name and what it got and
/// the hints it gave, as lines `got: ...`, `hint: ...`, `also: ...` (a field
/// wrapped over several lines joined into one; `checked:` left out).
fn failed_entries(board: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut keep = false;
    for line in board.lines() {
        if let Some(name) = line.strip_prefix("✘ ") {
            entries.extend(current.take());
            current = Some((name.trim().to_string(), Vec::new()));
            keep = false;
        } else if line.starts_with("✔ ") || !line.starts_with(' ') {
            entries.extend(current.take());
        } else if let Some((_, fields)) = current.as_mut() {
            let text = line.trim();
            let label = ["checked:", "got:", "hint:", "also:"]
                .into_iter()
                .find(|l| text.starts_with(l));
            match label {
                Some(label) => {
                    keep = label != "checked:";
                    if keep {
                        let rest = text[label.len()..].trim();
                        fields.push(format!("{label} {rest}"));
                    }
                }
                None if keep => {
                    if let Some(last) = fields.last_mut() {
                        last.push(' ');
                        last.push_str(text);
                    }
                }
                None => {}
            }
        }
    }
    entries.extend(current);
    entries
        .into_iter()
        .map(|(name, fields)| (name, fields.join("\n")))
        .collect()
}

/// What became of a mutant: the checks that failed and whether the
/// scoreboard named the mistake.
struct Verdict {
    failed: Vec<String>,
    named: bool,
    wanted_failed: bool,
    hint_line: String,
}

/// The workspace where lab `ch`'s mutants run: a `lab start` copy whose marked
/// bodies, of every lab, are the reference's again (a student who wrote the
/// answers), built, lab `ch`'s checks passing, or an error. One copy serves
/// every lab (it is told no lab: no `.lab/chapter`), so that the project is
/// compiled once, not once per lab.
fn mutant_workspace(ch: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = work()?.join("mutants");
    if !dir.join(".lab/tests.sha256").exists() {
        lab(&["start", "ch01", &dir.to_string_lossy()])?.expect_code(0)?;
        for lab in labs()? {
            for body in bodies(&lab)? {
                let rel = body.file.strip_prefix(workspace())?;
                fs::copy(&body.file, dir.join(rel))?;
            }
        }
        fs::remove_file(dir.join(".lab/chapter"))?;
    }
    ensure!(
        !dir.join("labs/mutants").exists(),
        "lab start copied labs/mutants, which holds answers, into the student's copy"
    );
    // The first build (and the chapter's extra build step): as lab check does it.
    let out = lab(&["check", ch, &dir.to_string_lossy()])?;
    ensure!(
        out.code == 0,
        "the checks fail on a copy holding the reference's bodies:\n{}{}",
        out.stdout,
        out.stderr
    );
    let built = Command::new("cargo")
        .args([
            "build",
            "--workspace",
            "--bins",
            "--test",
            ch,
            "--message-format=json",
        ])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()?;
    let exe = test_executable(&String::from_utf8_lossy(&built.stdout), ch)?
        .context("no test binary in cargo's output")?;
    Ok((dir, exe))
}

/// The test binary of `tests/chNN.rs` in cargo's JSON messages, if any.
fn test_executable(json: &str, ch: &str) -> Result<Option<PathBuf>> {
    Ok(regex::Regex::new(r#""executable":"([^"]*)""#)?
        .captures_iter(json)
        .map(|c| c[1].to_string())
        .filter(|e| {
            e.contains("/deps/")
                && Path::new(e)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{ch}-")))
        })
        .last()
        .map(PathBuf::from))
}

/// Whether to run every mutant against every check (`CFS_MUTANTS=all`), or,
/// by default, the first mutant of each marked body against the check that
/// must catch it. Each mutant costs a rebuild and a run of the checks (chapter
/// 4's 17 took 5 min 45 s on 2 cores, book/src/instructors.md), so the 83 of
/// all labs would take most of CI's budget; the sample proves each body's
/// checks and hints on every run, and the full run is for a lab's author and
/// its instructors.
fn every_mutant() -> bool {
    std::env::var("CFS_MUTANTS").as_deref() == Ok("all")
}

/// Applies lab `ch`'s mutants (all of them with `every`, else the first of
/// each body) to a copy of the reference, rebuilds what it needs, runs the
/// checks (with `every` all of them, else the one named in `fails:`), and
/// fails on a mutant that survives (no check fails) or whose scoreboard does
/// not name the mistake. Every mutant is parsed and applied to the reference
/// either way, and each body must have three.
fn mutants_are_caught(ch: &str, every: bool) -> Result<()> {
    let (rebuild, all) = mutants(ch)?;
    // At least three per marked body.
    for body in bodies(ch)? {
        let text = fs::read_to_string(&body.file)?;
        let line = text.lines().nth(body.begin - 1).unwrap_or_default();
        let name = line
            .trim()
            .trim_start_matches("// LAB:BEGIN ")
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut n = 0;
        for m in all.iter().filter(|m| m.function == name) {
            if file_of_mutant(ch, m)? == body.file {
                n += 1;
            }
        }
        ensure!(n >= 3, "lab {ch}: {name} has {n} mutants, fewer than 3");
    }
    let checks = reference_check_names(ch)?;
    for m in &all {
        ensure!(
            checks.contains(&m.fails),
            "mutant {}: fails: {} is not a check of lab {ch}",
            m.name,
            m.fails
        );
    }
    // Every mutant applies to the reference, before anything is built.
    for m in &all {
        mutate(&fs::read_to_string(file_of_mutant(ch, m)?)?, m)?;
    }
    let (dir, exe) = mutant_workspace(ch)?;
    let krate = file_of(ch, &all[0].function)?
        .strip_prefix(workspace().join("chapters"))?
        .components()
        .next()
        .context("no crate")?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let mut build = vec!["build", "-p", &krate, "--bin", &krate];
    if rebuild.iter().any(|r| r == "test") {
        build.extend(["-p", "cfs-tests", "--test", ch]);
    }
    let mut report = Vec::new();
    let mut wrong = Vec::new();
    let started = std::time::Instant::now();
    let mut seen = BTreeSet::new();
    let run: Vec<&Mutant> = all
        .iter()
        .filter(|m| every || seen.insert(m.function.clone()))
        .collect();
    for m in run.iter().copied() {
        let file = file_of_mutant(ch, m)?;
        let rel = file.strip_prefix(workspace())?.to_path_buf();
        let reference = fs::read_to_string(&file)?;
        fs::write(dir.join(&rel), mutate(&reference, m)?)?;
        let verdict = (|| -> Result<Verdict> {
            let built = Command::new("cargo")
                .args(&build)
                .arg("--message-format=json")
                .current_dir(&dir)
                .env("CARGO_TARGET_DIR", dir.join("target"))
                .output()?;
            ensure!(
                built.status.success(),
                "mutant {} does not build:\n{}",
                m.name,
                String::from_utf8_lossy(&built.stderr)
            );
            // A build of some packages may unify features differently from
            // the workspace's, and so put the test binary elsewhere: run the
            // one this build made, if it made one.
            let exe = test_executable(&String::from_utf8_lossy(&built.stdout), ch)?
                .unwrap_or_else(|| exe.clone());
            let mut run = Command::new(&exe);
            run.current_dir(dir.join("tests")).env("CFS_LAB", "1");
            if !every {
                run.args(["--exact", &m.fails]);
            }
            let out = output_within(run, TIMEOUT)?;
            // The checks a filtered run left out say "not run": not failures.
            let mut failed: Vec<_> = failed_entries(&out.stdout)
                .into_iter()
                .filter(|(_, text)| !text.starts_with("got: not run"))
                .collect();
            if !out.stdout.contains(" checks pass\n") {
                // The student's code can kill the checker itself (a check that
                // calls the library in-process: an add of the wrong pid, then
                // a remove that kills what the group holds). That is a kill
                // too, if the checker died and had failed a check.
                ensure!(
                    out.code != 0 && !failed.is_empty(),
                    "mutant {}: the checks printed no scoreboard:\n{}{}",
                    m.name,
                    out.stdout,
                    out.stderr
                );
                failed.push((
                    "(the checker died)".to_string(),
                    format!("got: exit code {}", out.code),
                ));
            }
            let wanted = failed.iter().find(|(name, _)| *name == m.fails).cloned();
            let named = failed.iter().any(|(_, text)| text.contains(&m.hint));
            let hint_line = wanted
                .as_ref()
                .or(failed.first())
                .map(|(name, text)| {
                    let hint = text
                        .lines()
                        .find(|l| l.contains(&m.hint))
                        .or_else(|| text.lines().find(|l| l.starts_with("hint:")))
                        .unwrap_or_default();
                    format!("{name}: {hint}")
                })
                .unwrap_or_default();
            Ok(Verdict {
                failed: failed.into_iter().map(|(n, _)| n).collect(),
                named,
                wanted_failed: wanted.is_some(),
                hint_line,
            })
        })();
        fs::write(dir.join(&rel), &reference)?;
        // What a mutant left in the copy's rootfs (put_old directories) must
        // not count against the next one.
        if let Ok(entries) = fs::read_dir(dir.join("build/rootfs")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(".oldroot") {
                    let _ = fs::remove_dir(entry.path());
                }
            }
        }
        let verdict = verdict?;
        let status = if verdict.failed.is_empty() {
            wrong.push(format!("{}: survived, every check passes", m.name));
            "SURVIVED"
        } else if !verdict.wanted_failed || !verdict.named {
            wrong.push(format!(
                "{}: killed by {:?}, but {} (expected to fail: {}; scoreboard shows {:?}: {})",
                m.name,
                verdict.failed,
                if verdict.named {
                    "not by the check named in fails:"
                } else {
                    "the scoreboard does not say"
                },
                m.fails,
                m.hint,
                verdict.hint_line
            ));
            "killed, badly named"
        } else {
            "killed"
        };
        let line = format!(
            "{ch} {}: {status} by {:?}; {}",
            m.name, verdict.failed, verdict.hint_line
        );
        // As each mutant ends: a long run shows its progress.
        eprintln!("{line}");
        report.push(line);
    }
    report.push(format!(
        "{ch}: {} of {} mutants in {:.0?} (build and checks, after the copy's first build)",
        run.len(),
        all.len(),
        started.elapsed()
    ));
    if let Some(last) = report.last() {
        eprintln!("{last}");
    }
    no_leftovers(&dir)?;
    ensure!(
        wrong.is_empty(),
        "lab {ch}: mutants not caught as they should be:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// The names of lab `ch`'s checks, from tests/chNN.rs.
fn reference_check_names(ch: &str) -> Result<Vec<String>> {
    let text = fs::read_to_string(workspace().join(format!("tests/{ch}.rs")))?;
    Ok(regex::Regex::new(r#"(?m)^\s*check\(\s*"([^"]+)""#)?
        .captures_iter(&text)
        .map(|c| c[1].to_string())
        .collect())
}
