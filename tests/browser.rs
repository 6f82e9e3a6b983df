//! The book in a real browser: it is built, and every page is loaded in
//! headless Chromium (Debian's `chromium`). A page must log nothing to the
//! console (no error, no warning, no message at all), show every ```` ```bob ````
//! diagram of its source as an SVG, and show every quiz answer of its source
//! as a `<details>` element; the search box must find `pivot_root`.
//! Every translation (`book/po/LANG.po`, built by `scripts/i18n build` into
//! `LANG/`) is loaded the same way, page by page: it must be in its language
//! (`<html lang>`, its first heading translated), and the language switcher
//! of every page, in both builds, must lead to that page in the other one.
//! The speaker notes are hidden but for the instructor view (`?instructor`).
//! Screenshots of three pages, and one of the Chinese build, go to `target/book-screenshots/` for a person
//! to look at. A fixture book whose diagram is not rendered must fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use cfs_tests::paths::workspace;
use cfs_tests::{bail, ensure, plain, run, Context, Result};
use regex::Regex;

/// The browser: Debian's package, installed by scripts/provision.
const CHROMIUM: &str = "chromium";

fn chromium(args: &[&str], url: &str) -> Result<(String, String)> {
    let mut cmd = Command::new(CHROMIUM);
    // --no-sandbox: the tests run as root, where Chromium's sandbox refuses
    // to start; the pages are the book's own, built here.
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
    ])
    .args(args)
    .arg(url);
    let out = run::output_within(cmd, Duration::from_secs(90)).with_context(|| {
        format!(
            "failed to run {CHROMIUM} (install it: apt-get install chromium, or scripts/provision)"
        )
    })?;
    Ok((out.stdout, out.stderr))
}

/// Builds the book in `dir` into a temporary directory.
fn build(dir: &Path) -> Result<tempfile::TempDir> {
    let out = tempfile::tempdir()?;
    let mut cmd = Command::new("mdbook");
    cmd.arg("build").arg(dir).arg("--dest-dir").arg(out.path());
    let o = run::output_within(cmd, Duration::from_secs(120)).context("failed to run mdbook")?;
    ensure!(
        o.code == 0,
        "mdbook build {} failed:\n{}",
        dir.display(),
        o.stderr
    );
    Ok(out)
}

/// The pages of a book: (source .md, built .html), from its SUMMARY.md.
fn pages(book: &Path, html: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let summary = fs::read_to_string(book.join("src/SUMMARY.md"))?;
    let re = Regex::new(r"\]\(([^)]+)\.md\)")?;
    Ok(re
        .captures_iter(&summary)
        .map(|c| {
            (
                book.join("src").join(format!("{}.md", &c[1])),
                html.join(format!("{}.html", &c[1])),
            )
        })
        .collect())
}

fn count(text: &str, re: &str) -> Result<usize> {
    Ok(Regex::new(re)?.find_iter(text).count())
}

/// The translations of the book in `dir`: the languages of its `po/*.po`.
fn languages(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir.join("po")) {
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "po") {
                found.push(
                    path.file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Builds the book in `dir` in English into a temporary directory, and each
/// translation into `LANG/` beneath it: for the project's book with
/// `scripts/i18n build`, which learners use (it also gives translated headings
/// the English ids).
fn build_all(dir: &Path) -> Result<tempfile::TempDir> {
    if languages(dir)?.is_empty() {
        return build(dir);
    }
    ensure!(
        dir == workspace().join("book"),
        "only the project's book is built with its translations"
    );
    let out = tempfile::tempdir()?;
    let mut cmd = Command::new(workspace().join("scripts/i18n"));
    cmd.arg("build").arg(out.path());
    let o = run::output_within(cmd, Duration::from_secs(300))
        .context("failed to run scripts/i18n build")?;
    ensure!(
        o.code == 0 && !o.stderr.contains("ERROR") && !o.stderr.contains("WARN"),
        "scripts/i18n build failed or warned:\n{}",
        o.stderr
    );
    Ok(out)
}

/// Loads every page of the book in `dir`, in English and in each of its
/// translations; `Err` lists every problem found.
fn check_book(dir: &Path) -> Result<()> {
    let html = build_all(dir)?;
    let mut problems = Vec::new();
    check_pages(dir, html.path(), "en", &mut problems)?;
    for lang in languages(dir)? {
        check_pages(dir, &html.path().join(&lang), &lang, &mut problems)?;
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The checks of every page of one build (`html`, in language `lang`) of the
/// book in `dir`; what fails goes to `problems`.
fn check_pages(dir: &Path, html: &Path, lang: &str, problems: &mut Vec<String>) -> Result<()> {
    let console = Regex::new(r"CONSOLE[^\]]*\] (.*)")?;
    let switcher = Regex::new(r#"<span id="cfs-languages">(.*?)</span>"#)?;
    let link = Regex::new(r##"hreflang="([^"]+)" href="file://([^"#]+)"##)?;
    let heading = Regex::new(r#"(?s)<main>.*?<h1[^>]*>(.*?)</h1>"#)?;
    let summary = Regex::new(r"(?s)<summary>(.*?)</summary>")?;
    let markup =
        Regex::new(r"(?s)<(code|pre|svg|script|style)\b.*?</(code|pre|svg|script|style)>")?;
    let tags = Regex::new(r"<[^>]*>")?;
    let section_link = Regex::new(r#"<a href="([a-z0-9-]*\.html)?#([^"]+)""#)?;
    let unrendered = Regex::new(r"[\p{Han}]_|_[\p{Han}]|\*\*[\p{Han}]|[\p{Han}]\*\*")?;
    let with_languages = !languages(dir)?.is_empty();
    for (md, page) in pages(dir, html)? {
        let source = fs::read_to_string(&md)?;
        let url = format!("file://{}", page.display());
        let (dom, log) = chromium(&["--dump-dom"], &url)?;
        let name = format!(
            "{}{}",
            if lang == "en" {
                String::new()
            } else {
                format!("{lang}/")
            },
            md.file_name().unwrap_or_default().to_string_lossy()
        );
        for c in console.captures_iter(&log) {
            problems.push(format!("{name}: the console says {}", &c[1]));
        }
        ensure!(dom.contains("</html>"), "{name}: Chromium returned no page");
        if !dom.contains(&format!("<html lang=\"{lang}\"")) {
            problems.push(format!("{name}: the page is not marked as {lang}"));
        }
        // Every link to a section of a page of the book lands on it: the id
        // exists there (in a translation too, whose headings keep the English
        // ids: scripts/i18n build).
        let built = fs::read_to_string(&page)?;
        for anchor in section_link.captures_iter(&built) {
            let file = anchor.get(1).map_or("", |m| m.as_str());
            let id = &anchor[2];
            let target = if file.is_empty() {
                built.clone()
            } else {
                fs::read_to_string(html.join(file)).unwrap_or_default()
            };
            if !target.contains(&format!("id=\"{id}\"")) {
                problems.push(format!(
                    "{name}: the link to {file}#{id} leads to no such section"
                ));
            }
        }
        if lang != "en" {
            // Every folded answer, hint and listing is labelled in the language.
            for label in summary.captures_iter(&dom) {
                if !label[1]
                    .chars()
                    .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
                {
                    problems.push(format!(
                        "{name}: an untranslated label <summary>{}</summary>",
                        &label[1]
                    ));
                }
            }
            // Emphasis that did not render: markers left in the text, which
            // happens when `_` or `**` touch CJK characters without a space.
            let text = markup.replace_all(&dom, " ");
            let text = tags.replace_all(&text, "");
            for stray in unrendered.find_iter(&text).take(3) {
                problems.push(format!(
                    "{name}: an emphasis marker shown as text: {:?}",
                    stray.as_str()
                ));
            }
            // A translated page shows its first heading in the language's script.
            let first = heading
                .captures(&dom)
                .map(|c| c[1].to_string())
                .unwrap_or_default();
            if !first
                .chars()
                .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
            {
                problems.push(format!(
                    "{name}: the first heading is not translated: {first:?}"
                ));
            }
        }
        if with_languages {
            match switcher.captures(&dom) {
                None => problems.push(format!("{name}: no language switcher")),
                Some(links) => {
                    let targets: Vec<(String, String)> = link
                        .captures_iter(&links[1])
                        .map(|c| (c[1].to_string(), c[2].to_string()))
                        .collect();
                    if targets.len() < 2 {
                        problems.push(format!("{name}: the switcher offers {targets:?}"));
                    }
                    for (to, file) in targets {
                        let same_page = Path::new(&file).file_name() == page.file_name();
                        if !Path::new(&file).is_file() || !same_page {
                            problems.push(format!(
                                "{name}: the switcher's {to} link leads to {file}, not to this page in {to}"
                            ));
                        }
                    }
                }
            }
        }
        let diagrams = count(&source, r"(?m)^```bob\s*$")?;
        let svgs = count(&dom, r#"<svg [^>]*class="svgbob""#)?;
        if svgs != diagrams {
            problems.push(format!(
                "{name}: {diagrams} diagram(s) in the source, {svgs} shown as SVG"
            ));
        }
        let quizzes = count(&source, r#"<details class="answer">"#)?;
        let shown = count(&dom, r#"<details class="answer">"#)?;
        if shown != quizzes {
            problems.push(format!(
                "{name}: {quizzes} quiz answer(s) in the source, {shown} in the page"
            ));
        }
    }
    let index = html.join("index.html");
    let (dom, _) = chromium(
        &["--dump-dom"],
        &format!("file://{}?search=pivot_root", index.display()),
    )?;
    let results = Regex::new(r#"(?s)id="(?:mdbook-)?searchresults"[^>]*>(.*?)</ul>"#)?;
    let found = results
        .captures(&dom)
        .map(|c| count(&c[1], "<li"))
        .transpose()?
        .unwrap_or(0);
    if found == 0 {
        problems.push(format!("search ({lang}): pivot_root finds nothing"));
    }
    Ok(())
}

fn book_works_in_a_browser() -> Result<()> {
    check_book(&workspace().join("book"))
}

/// Screenshots of three pages, for a person to look at.
fn screenshots() -> Result<()> {
    let book = workspace().join("book");
    let html = build_all(&book)?;
    let shots = workspace().join("target/book-screenshots");
    fs::create_dir_all(&shots)?;
    for page in [
        "introduction",
        "ch02-pid",
        "ch03-mount-chroot",
        "zh-CN/ch03-mount-chroot",
    ] {
        let file = shots.join(format!("{}.png", page.replace('/', "-")));
        let _ = fs::remove_file(&file);
        let url = format!(
            "file://{}",
            html.path().join(format!("{page}.html")).display()
        );
        chromium(
            &[
                "--hide-scrollbars",
                "--window-size=1200,3000",
                &format!("--screenshot={}", file.display()),
            ],
            &url,
        )?;
        ensure!(
            file.exists(),
            "no screenshot of {page} in {}",
            file.display()
        );
    }
    eprintln!("screenshots in {}", shots.display());
    Ok(())
}

/// The instructor view: a learner's page holds the speaker notes but hides
/// them (no `instructor` class on `<html>`, no note open); `?instructor`
/// switches the view on and opens every note, `?learner` off again.
fn instructor_view_shows_the_speaker_notes() -> Result<()> {
    let book = workspace().join("book");
    let html = build(&book)?;
    let source = fs::read_to_string(book.join("src/ch01-uts.md"))?;
    let notes = count(&source, r#"<details class="speaker-note">"#)?;
    ensure!(notes > 0, "ch01-uts.md has no speaker note to look for");
    let page = html.path().join("ch01-uts.html");
    let on = r#"<html[^>]*class="[^"]*\binstructor\b"#;
    let open = r#"<details class="speaker-note" open"#;
    let mut problems = Vec::new();
    for (query, want_on) in [("learner", false), ("instructor", true), ("learner", false)] {
        let (dom, _) = chromium(
            &["--dump-dom"],
            &format!("file://{}?{query}", page.display()),
        )?;
        let (is_on, opened) = (count(&dom, on)? > 0, count(&dom, open)?);
        let shown = count(&dom, r#"<details class="speaker-note""#)?;
        if shown != notes {
            problems.push(format!(
                "?{query}: {shown} speaker notes in the page, {notes} in the source"
            ));
        }
        if is_on != want_on || opened != if want_on { notes } else { 0 } {
            problems.push(format!(
                "?{query}: instructor view {is_on}, {opened} of {notes} notes open; wanted {want_on}"
            ));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// The check must fail on a book whose diagram is not rendered.
fn a_broken_diagram_fails() -> Result<()> {
    let fixture = workspace().join("tests/fixtures/broken-diagram-book");
    match check_book(&fixture) {
        Ok(()) => bail!("the fixture book with an unrendered diagram passed"),
        Err(e) => {
            let e = format!("{e:#}");
            ensure!(
                e.contains("1 diagram(s) in the source, 0 shown as SVG"),
                "the fixture failed for another reason: {e}"
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        plain("book_works_in_a_browser", book_works_in_a_browser),
        plain("screenshots_of_three_pages", screenshots),
        plain(
            "instructor_view_shows_the_speaker_notes",
            instructor_view_shows_the_speaker_notes,
        ),
        plain("a_broken_diagram_fails", a_broken_diagram_fails),
    ])
}
