//! The book: every include resolves, every console session is a checked file,
//! every checked file is shown, and every session prints what the book says.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cfs_tests::paths::workspace;
use cfs_tests::{bail, ensure, kernel, plain, root, session, Context, Result};
use libtest_mimic::Trial;
use regex::Regex;

fn src() -> PathBuf {
    workspace().join("book/src")
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_with(&path, ext));
            } else if path.extension().is_some_and(|e| e == ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn pages() -> Vec<PathBuf> {
    files_with(&src(), "md")
}

/// `{{#include path[:anchor]}}` directives of a page: (file, anchor).
fn includes(page: &Path) -> Result<Vec<(PathBuf, Option<String>)>> {
    let text = fs::read_to_string(page)?;
    let re =
        Regex::new(r"\{\{#(?:include|rustdoc_include)\s+([^}:\s]+)(?::([A-Za-z0-9_-]+))?\s*\}\}")?;
    let dir = page.parent().context("page without directory")?;
    Ok(re
        .captures_iter(&text)
        .map(|c| (dir.join(&c[1]), c.get(2).map(|m| m.as_str().to_string())))
        .collect())
}

fn includes_resolve() -> Result<()> {
    let mut problems = Vec::new();
    for page in pages() {
        for (file, anchor) in includes(&page)? {
            let Ok(text) = fs::read_to_string(&file) else {
                problems.push(format!(
                    "{}: missing file {}",
                    page.display(),
                    file.display()
                ));
                continue;
            };
            if let Some(anchor) = anchor {
                let start = format!("ANCHOR: {anchor}\n");
                let end = format!("ANCHOR_END: {anchor}\n");
                if !text.contains(&start) || !text.contains(&end) {
                    problems.push(format!(
                        "{}: no anchor {anchor} in {}",
                        page.display(),
                        file.display()
                    ));
                }
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The reverse of [`includes_resolve`]: every anchor in the sources
/// (chapters/, scripts/) is included by some page; an anchor nothing
/// includes marks code the book once showed, or means to and does not.
fn anchors_are_included() -> Result<()> {
    let mut included = BTreeSet::new();
    for page in pages() {
        for (file, anchor) in includes(&page)? {
            if let (Ok(file), Some(anchor)) = (file.canonicalize(), anchor) {
                included.insert((file, anchor));
            }
        }
    }
    let re = Regex::new(r"ANCHOR: ([A-Za-z0-9_-]+)")?;
    let mut unused = Vec::new();
    for dir in ["chapters", "scripts"] {
        for file in all_files(&workspace().join(dir)) {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let rel = file
                .strip_prefix(workspace())?
                .to_string_lossy()
                .into_owned();
            for c in re.captures_iter(&text) {
                let anchor = c[1].to_string();
                if included.contains(&(file.canonicalize()?, anchor.clone())) {
                    continue;
                }
                unused.push(format!("{rel}: ANCHOR: {anchor}"));
            }
        }
    }
    ensure!(
        unused.is_empty(),
        "anchors no page includes (include them or remove them):\n{}",
        unused.join("\n")
    );
    Ok(())
}

/// Every file beneath `dir` (not following symlinks; no `target/`).
fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && entry.file_name() != "target" => {
                    found.extend(all_files(&path))
                }
                Ok(t) if t.is_file() => found.push(path),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

fn links_resolve() -> Result<()> {
    let re = Regex::new(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")?;
    let mut problems = Vec::new();
    for page in pages() {
        let text = fs::read_to_string(&page)?;
        for c in re.captures_iter(&text) {
            let target = &c[1];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let dir = page.parent().context("page without directory")?;
            if !dir.join(target).exists() {
                problems.push(format!("{}: broken link {target}", page.display()));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// Console blocks in pages must be includes of session files, which the
/// session tests run: no hand-written transcript can drift from the code.
fn console_blocks_are_checked_sessions() -> Result<()> {
    let mut shown = BTreeSet::new();
    let mut problems = Vec::new();
    for page in pages() {
        let text = fs::read_to_string(&page)?;
        let mut in_console = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("```console") {
                in_console = true;
            } else if in_console && trimmed.starts_with("```") {
                in_console = false;
            } else if in_console && !trimmed.starts_with("{{#include sessions/") {
                problems.push(format!(
                    "{}: console line not from a session file: {trimmed}",
                    page.display()
                ));
            }
        }
        for (file, _) in includes(&page)? {
            if file.extension().is_some_and(|e| e == "console") {
                shown.insert(file.canonicalize().unwrap_or(file));
            }
        }
    }
    for file in files_with(&src().join("sessions"), "console") {
        if !shown.contains(&file.canonicalize().unwrap_or(file.clone())) {
            problems.push(format!("{} is not shown in any page", file.display()));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// Every block of included source is captioned with its file's path, on the
/// last non-empty line before the fence.
fn code_includes_have_captions() -> Result<()> {
    let re = Regex::new(r"^\{\{#include \.\./\.\./([^:}]+)")?;
    let mut problems = Vec::new();
    for page in pages() {
        let text = fs::read_to_string(&page)?;
        let lines: Vec<&str> = text.lines().collect();
        for (i, pair) in lines.windows(2).enumerate() {
            let Some(c) = re.captures(pair[1]) else {
                continue;
            };
            if !pair[0].starts_with("```") {
                continue;
            }
            let caption = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or("");
            if !caption.starts_with(&format!("`{}`", &c[1])) {
                problems.push(format!(
                    "{}:{}: no caption `{}` before the block",
                    page.display(),
                    i + 1,
                    &c[1]
                ));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

fn summary_lists_every_page() -> Result<()> {
    let summary = fs::read_to_string(src().join("SUMMARY.md"))?;
    for page in pages() {
        let rel = page.strip_prefix(src())?.to_string_lossy().into_owned();
        if rel != "SUMMARY.md" && !summary.contains(&format!("({rel})")) {
            bail!("{rel} is not in SUMMARY.md");
        }
    }
    Ok(())
}

/// The diffs of `main.rs` between chapters match the sources.
fn diffs_are_current() -> Result<()> {
    let out = std::process::Command::new(workspace().join("scripts/book-diffs"))
        .arg("--check")
        .output()
        .context("failed to run scripts/book-diffs")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `NAME.v2.console` is the cgroup v2 twin of `NAME.console`, which must exist
/// (the development machine checks it), so that no session goes unchecked.
fn every_v2_session_has_a_base() -> Result<()> {
    for file in files_with(&src().join("sessions"), "console") {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(base) = name.as_deref().and_then(|n| n.strip_suffix(".v2.console")) {
            let twin = file.with_file_name(format!("{base}.console"));
            ensure!(
                twin.exists(),
                "{} has no {}",
                file.display(),
                twin.display()
            );
        }
    }
    Ok(())
}

/// Every `NAME.rules` belongs to a session `NAME.console`, and parses.
fn every_rules_file_has_a_session() -> Result<()> {
    for file in files_with(&src().join("sessions"), "rules") {
        let twin = file.with_extension("console");
        ensure!(
            twin.exists(),
            "{} has no {}",
            file.display(),
            twin.display()
        );
        session::parse_rules(&fs::read_to_string(&file)?)
            .with_context(|| format!("in {}", file.display()))?;
    }
    Ok(())
}

/// The text of a page's `## NAME` section, up to the next `## `.
fn section<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n## {name}\n"))? + 1;
    let rest = &text[start + 3..];
    Some(match rest.find("\n## ") {
        Some(end) => &text[start..start + 3 + end],
        None => &text[start..],
    })
}

/// Every chapter page (every part of a chapter in parts) teaches the same
/// way: objectives at the top, "What you learned", a quiz of 3 to 5
/// questions; and each chapter has exercises, each with a hint and a
/// solution (folded).
fn chapters_have_learning_scaffolding() -> Result<()> {
    let mut problems = Vec::new();
    let item = Regex::new(r"(?m)^\d+\. ")?;
    for page in pages() {
        let name = page.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with("ch") {
            continue;
        }
        let text = fs::read_to_string(&page)?;
        let intro = text.split("\n## ").next().unwrap_or("");
        if !intro.contains("**In this chapter you will:**") {
            problems.push(format!(
                "{name}: no objectives (**In this chapter you will:**) before the first section"
            ));
        }
        if section(&text, "What you learned").is_none() {
            problems.push(format!("{name}: no ## What you learned"));
        }
        match section(&text, "Quiz") {
            None => problems.push(format!("{name}: no ## Quiz")),
            Some(quiz) => {
                let n = quiz.matches(r#"<details class="answer">"#).count();
                if !(3..=5).contains(&n) {
                    problems.push(format!("{name}: {n} quiz questions, not 3 to 5"));
                }
            }
        }
        match section(&text, "Exercises") {
            // A chapter in parts has its exercises in one of them.
            None => {
                let chapter = name.get(..4).unwrap_or("");
                let elsewhere = pages().iter().any(|other| {
                    other
                        .file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(chapter))
                        && fs::read_to_string(other).is_ok_and(|t| t.contains("\n## Exercises\n"))
                });
                if !elsewhere {
                    problems.push(format!("{name}: no ## Exercises in this chapter"));
                }
            }
            Some(ex) => {
                let (n, hints, solutions) = (
                    item.find_iter(ex).count(),
                    ex.matches(r#"<details class="hint">"#).count(),
                    ex.matches(r#"<details class="solution">"#).count(),
                );
                if n == 0 || hints != n || solutions != n {
                    problems.push(format!(
                        "{name}: {n} exercises, {hints} hints, {solutions} solutions"
                    ));
                }
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// Every quiz answer names what checks it: `<!-- checked: FILE: TEXT -->`,
/// a file (relative to the page) that holds TEXT: a console session (which
/// the session tests replay, so the answer's prediction is what runs), a
/// session's rules, or the source the answer describes.
fn quiz_answers_are_checked() -> Result<()> {
    let answer = Regex::new(r#"(?s)<details class="answer">(.*?)</details>"#)?;
    let checked = Regex::new(r"<!-- checked: ([^:\s]+): (.+?) -->")?;
    let mut problems = Vec::new();
    let mut total = 0;
    for page in pages() {
        let text = fs::read_to_string(&page)?;
        let name = page.file_name().unwrap_or_default().to_string_lossy();
        let dir = page.parent().context("page without directory")?;
        for a in answer.captures_iter(&text) {
            total += 1;
            let Some(c) = checked.captures(&a[1]) else {
                problems.push(format!(
                    "{name}: an answer without <!-- checked: FILE: TEXT -->"
                ));
                continue;
            };
            let file = dir.join(&c[1]);
            match fs::read_to_string(&file) {
                Ok(body) if body.contains(&c[2]) => {}
                Ok(_) => problems.push(format!("{name}: {} does not hold {:?}", &c[1], &c[2])),
                Err(_) => problems.push(format!("{name}: no file {}", &c[1])),
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(total > 0, "no quiz answer found in any page");
    Ok(())
}

/// The longest listing chapter 6's pages show in the text; a longer one is
/// folded in a `<details>`, one click away.
const LONGEST_LISTING: usize = 30;

/// The lines an anchor encloses (without anchor lines).
fn anchor_lines(file: &Path, anchor: &str) -> usize {
    let text = fs::read_to_string(file).unwrap_or_default();
    let start = format!("ANCHOR: {anchor}");
    let end = format!("ANCHOR_END: {anchor}");
    text.lines()
        .skip_while(|l| !l.contains(&start))
        .skip(1)
        .take_while(|l| !l.contains(&end))
        .filter(|l| !l.contains("ANCHOR"))
        .count()
}

/// Chapter 6 shows short listings in the text and folds the long ones.
fn long_listings_are_folded() -> Result<()> {
    let include = Regex::new(r"^\{\{#include ([^:}]+):([A-Za-z0-9_-]+)\}\}")?;
    let mut problems = Vec::new();
    for page in pages() {
        let name = page.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with("ch06") {
            continue;
        }
        let text = fs::read_to_string(&page)?;
        let dir = page.parent().context("page without directory")?;
        let mut folded = 0;
        for line in text.lines() {
            if line.starts_with("<details") {
                folded += 1;
            } else if line.starts_with("</details>") {
                folded -= 1;
            } else if let Some(c) = include.captures(line) {
                let n = anchor_lines(&dir.join(&c[1]), &c[2]);
                if folded == 0 && n > LONGEST_LISTING {
                    problems.push(format!(
                        "{name}: {}:{} has {n} lines: fold it in a <details>",
                        &c[1], &c[2]
                    ));
                }
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The instructors' page lists each lab's mutants as `cfs_tests::mutants::table`
/// renders them from `labs/mutants/chNN.txt` (between `<!-- mutants chNN -->`
/// and `<!-- end mutants chNN -->`), includes each lab's hint ladder
/// (`labs/hints/chNN.txt`), and gives the cargo-mutants figure with its date.
/// With `CFS_BLESS=1` it rewrites the tables instead of failing on them.
fn instructors_page_lists_mutants_and_ladders() -> Result<()> {
    let page = src().join("instructors.md");
    let mut text = fs::read_to_string(&page)?;
    let labs = cfs_tests::mutants::labs()?;
    let mut stale = Vec::new();
    for ch in &labs {
        let (begin, end) = (
            format!("<!-- mutants {ch} -->\n"),
            format!("<!-- end mutants {ch} -->"),
        );
        let table = cfs_tests::mutants::table(ch)?;
        let (Some(a), Some(b)) = (text.find(&begin), text.find(&end)) else {
            bail!(
                "{}: no {begin:?} ... {end:?} section; it should hold:\n{table}",
                page.display()
            );
        };
        let a = a + begin.len();
        if text[a..b] != table {
            stale.push(ch.clone());
            text.replace_range(a..b, &table);
        }
        let ladder = format!("{{{{#include ../../labs/hints/{ch}.txt}}}}");
        ensure!(
            text.contains(&ladder),
            "{} does not show {ch}'s hint ladder: {ladder}",
            page.display()
        );
    }
    if !stale.is_empty() {
        if std::env::var("CFS_BLESS").as_deref() == Ok("1") {
            fs::write(&page, &text)?;
        } else {
            bail!(
                "{}: the mutant tables of {stale:?} differ from labs/mutants: rerun with \
                 CFS_BLESS=1 to rewrite them",
                page.display()
            );
        }
    }
    ensure!(
        Regex::new(r"cargo-mutants[^\n]*20\d\d-\d\d-\d\d")?.is_match(&text),
        "{}: no dated cargo-mutants figure",
        page.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let mut trials = vec![
        plain(
            "instructors_page_lists_mutants_and_ladders",
            instructors_page_lists_mutants_and_ladders,
        ),
        plain("diffs_are_current", diffs_are_current),
        plain("includes_resolve", includes_resolve),
        plain("anchors_are_included", anchors_are_included),
        plain("links_resolve", links_resolve),
        plain(
            "console_blocks_are_checked_sessions",
            console_blocks_are_checked_sessions,
        ),
        plain("summary_lists_every_page", summary_lists_every_page),
        plain("code_includes_have_captions", code_includes_have_captions),
        plain(
            "chapters_have_learning_scaffolding",
            chapters_have_learning_scaffolding,
        ),
        plain("quiz_answers_are_checked", quiz_answers_are_checked),
        plain("long_listings_are_folded", long_listings_are_folded),
    ];
    // A session whose output depends on the cgroup layout has two files:
    // `NAME.console` (the development machine's hybrid layout) and
    // `NAME.v2.console` (cgroup v2, as on the learners' VMs and in
    // scripts/vm-test). Each machine checks the one for its layout, as one
    // trial named after NAME; the page shows both.
    let v2 = kernel::exists("/sys/fs/cgroup/cgroup.controllers");
    // In the VM of scripts/vm-test, the sessions of scripts/vm/host-only (they
    // compile Rust, which emulation makes far too slow) are the host's to check.
    let host_only: Vec<String> = std::env::var("CFS_HOST_ONLY_SESSIONS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if !host_only.is_empty() {
        eprintln!(
            "not run here, the host checks them (scripts/vm/host-only): {}",
            host_only.join(" ")
        );
    }
    let files = files_with(&src().join("sessions"), "console");
    let sessions: Vec<Trial> = files
        .iter()
        .filter_map(|file| {
            let stem = file.file_stem()?.to_string_lossy().into_owned();
            let (base, is_v2) = match stem.strip_suffix(".v2") {
                Some(base) => (base.to_string(), true),
                None => (stem, false),
            };
            let has_v2 = files
                .iter()
                .any(|f| f.file_name() == Some(format!("{base}.v2.console").as_ref()));
            let wanted = (if is_v2 { v2 } else { !(v2 && has_v2) }) && !host_only.contains(&base);
            let file = file.clone();
            wanted.then(|| root(&format!("session::{base}"), move || session::check(&file)))
        })
        .collect();
    trials.extend(sessions);
    trials.push(plain(
        "every_v2_session_has_a_base",
        every_v2_session_has_a_base,
    ));
    trials.push(plain(
        "every_rules_file_has_a_session",
        every_rules_file_has_a_session,
    ));
    cfs_tests::main(trials)
}
