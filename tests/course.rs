//! The course: the book taught as a 1-day workshop or a 3-day course
//! (`book/src/course.md`). Timings live in the pages, one marker at the start
//! of each segment, right under a `## ` heading:
//! `<!-- course: KIND MINUTES[, workshop MINUTES] -->`, where KIND is `talk`,
//! `demo`, `lab`, `quiz` (in class) or `self` (homework, not in class), and
//! `workshop` puts the segment in the 1-day workshop with its own minutes.
//! Every `## ` section has one (a segment), but for the recap and the quiz,
//! which belong to the segment before them. The schedules on the course page are
//! tables made from the markers: this test fails when a table differs from
//! the pages (`CFS_BLESS=1` rewrites it), when a day's minutes exceed what its
//! schedule says, when a section of a page of the course has no marker, when a lab's minutes differ from the instructors' page, when a
//! taught segment has no speaker note naming a demo that exists and a
//! question, when the course page's answer key misses an exercise, and when
//! its lab guide (each body's likeliest mistake and hint ladder) is stale.
//! What it leaves out: whether the minutes are right in a real class; a
//! teacher's first run is the measure (the page says so).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use cfs_tests::paths::workspace;
use cfs_tests::{bail, ensure, plain, Context, Result};
use regex::Regex;

fn src() -> PathBuf {
    workspace().join("book/src")
}

/// The pages the course teaches, in the book's order: the introduction,
/// setting up, and every chapter page (SUMMARY.md's numbered entries).
fn course_pages() -> Result<Vec<String>> {
    let summary = fs::read_to_string(src().join("SUMMARY.md"))?;
    let re = Regex::new(r"\]\(((?:introduction|setup|ch\d\d[^)]*))\.md\)")?;
    Ok(re
        .captures_iter(&summary)
        .map(|c| c[1].to_string())
        .collect())
}

#[derive(Clone, Debug)]
struct Segment {
    page: String,
    /// The `## ` heading the segment starts at.
    heading: String,
    kind: String,
    minutes: u32,
    workshop: Option<u32>,
    /// The segment's text, from its heading to the next marker's heading.
    text: String,
}

const KINDS: [&str; 5] = ["talk", "demo", "lab", "quiz", "self"];

/// mdbook's id of a heading: lowercase, spaces to `-`, other punctuation
/// dropped; outside code spans `--` and `---` are first made dashes (mdbook's
/// smart punctuation), which are dropped too.
fn heading_id(heading: &str) -> String {
    let text: String = heading
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("`{part}`")
            } else {
                part.replace("---", "\u{2014}").replace("--", "\u{2013}")
            }
        })
        .collect();
    text.chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

fn title(page: &str) -> Result<String> {
    let text = fs::read_to_string(src().join(format!("{page}.md")))?;
    let first = text.lines().next().unwrap_or("");
    Ok(first.trim_start_matches("# ").to_string())
}

/// The segments of a page; `Err` when a marker is malformed or misplaced,
/// or when a section has none (but for `## What you learned` and `## Quiz`,
/// which go with the segment before them).
fn segments(page: &str) -> Result<Vec<Segment>> {
    parse(page, &fs::read_to_string(src().join(format!("{page}.md")))?)
}

fn parse(page: &str, text: &str) -> Result<Vec<Segment>> {
    let marker = Regex::new(r"^<!-- course: (\w+) (\d+)(?:, workshop (\d+))? -->$")?;
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Vec<Segment> = Vec::new();
    let mut problems = Vec::new();
    let mut seen_section = false;
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("<!-- course:") {
            let Some(c) = marker.captures(line) else {
                problems.push(format!(
                    "{page}.md:{}: a marker not of the form <!-- course: KIND MINUTES[, workshop MINUTES] -->: {line}",
                    i + 1
                ));
                continue;
            };
            let heading = match i.checked_sub(1).map(|p| lines[p]) {
                Some(h) if h.starts_with("## ") => h[3..].to_string(),
                _ => {
                    problems.push(format!(
                        "{page}.md:{}: a marker must be the line right under a ## heading",
                        i + 1
                    ));
                    continue;
                }
            };
            if !KINDS.contains(&&c[1]) {
                problems.push(format!(
                    "{page}.md:{}: kind {} is none of {KINDS:?}",
                    i + 1,
                    &c[1]
                ));
            }
            found.push(Segment {
                page: page.to_string(),
                heading,
                kind: c[1].to_string(),
                minutes: c[2].parse()?,
                workshop: c.get(3).map(|m| m.as_str().parse()).transpose()?,
                text: String::new(),
            });
        } else if line.starts_with("## ") {
            let marked = lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with("<!-- course:"));
            // The recap and the quiz go with the segment before them.
            let recap = *line == "## What you learned" || *line == "## Quiz";
            if !(marked || (recap && seen_section)) {
                problems.push(format!(
                    "{page}.md:{}: the section {line:?} has no timing marker under it",
                    i + 1
                ));
            }
            seen_section = true;
        }
        if let Some(s) = found.last_mut() {
            // The heading line of the next segment belongs to it, not to this one.
            let next_is_marker = lines
                .get(i + 1)
                .is_some_and(|l| l.starts_with("<!-- course:"));
            if !(line.starts_with("## ") && next_is_marker) {
                s.text.push_str(line);
                s.text.push('\n');
            }
        }
    }
    if !seen_section {
        problems.push(format!("{page}.md: no ## section at all"));
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(!found.is_empty(), "{page}.md: no timing marker");
    Ok(found)
}

fn all_segments() -> Result<Vec<Segment>> {
    let mut all = Vec::new();
    let mut problems = Vec::new();
    for page in course_pages()? {
        match segments(&page) {
            Ok(s) => all.extend(s),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(all)
}

fn every_page_has_its_timings() -> Result<()> {
    let pages = course_pages()?;
    ensure!(
        pages.iter().filter(|p| p.starts_with("ch")).count() >= 10,
        "SUMMARY.md lists fewer chapter pages than the book has: {pages:?}"
    );
    let all = all_segments()?;
    for page in &pages {
        ensure!(
            all.iter().any(|s| &s.page == page && s.kind != "self"),
            "{page}.md: no segment taught in class"
        );
    }
    Ok(())
}

/// Each `## Lab` is one lab segment, as long as the instructors' page says.
fn labs_take_the_instructors_minutes() -> Result<()> {
    let instructors = fs::read_to_string(src().join("instructors.md"))?;
    let row = Regex::new(r"(?m)^\| (ch\d\d) \|.*\| (\d+) min \|$")?;
    let planned: BTreeMap<String, u32> = row
        .captures_iter(&instructors)
        .map(|c| Ok((c[1].to_string(), c[2].parse()?)))
        .collect::<Result<_>>()?;
    ensure!(!planned.is_empty(), "no lab rows in instructors.md's table");
    let mut problems = Vec::new();
    let all = all_segments()?;
    for (lab, minutes) in &planned {
        let labs: Vec<&Segment> = all
            .iter()
            .filter(|s| s.page.starts_with(lab.as_str()) && s.heading == "Lab")
            .collect();
        match labs.as_slice() {
            [s] if s.kind == "lab" && s.minutes == *minutes => {}
            [s] => problems.push(format!(
                "{}.md: ## Lab is `{} {}`, the instructors' page plans {minutes} min",
                s.page, s.kind, s.minutes
            )),
            _ => problems.push(format!(
                "lab {lab}: {} `## Lab` segments in its pages, not 1",
                labs.len()
            )),
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// A talk or a demo has one speaker note, folded and hidden from learners,
/// that names the demo to run (a session the book replays, or a script of
/// the project) and a question to ask the class.
fn taught_segments_have_speaker_notes() -> Result<()> {
    let mut problems = Vec::new();
    let mut notes = 0;
    for s in all_segments()? {
        let (n, p) = note_problems(&s)?;
        notes += n;
        problems.extend(p);
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    ensure!(notes > 0, "no speaker note in any page");
    Ok(())
}

/// The speaker notes of a segment: how many, and what is wrong with them.
fn note_problems(s: &Segment) -> Result<(usize, Vec<String>)> {
    let note = Regex::new(
        r#"(?s)<details class="speaker-note"><summary>Speaker note</summary>\n\n- Demo: (.+?)\n- Ask: (.+?)\n\n</details>"#,
    )?;
    // Named as the book names them: a session or a diff beside the pages,
    // or a file of the repository.
    let session = Regex::new(r"`((?:sessions|diffs)/[\w.-]+\.(?:console|diff))`")?;
    let script = Regex::new(r"`((?:scripts|chapters|tests)/[\w./-]+)`")?;
    let mut problems = Vec::new();
    let mut notes = 0;
    let opened = s.text.matches(r#"<details class="speaker-note">"#).count();
    let found: Vec<_> = note.captures_iter(&s.text).collect();
    let place = format!("{}.md, {:?}", s.page, s.heading);
    if found.len() != opened {
        problems.push(format!(
            "{place}: a speaker note not of the form <details class=\"speaker-note\">\
             <summary>Speaker note</summary>, - Demo: ..., - Ask: ...?, </details>"
        ));
    }
    let taught = s.kind == "talk" || s.kind == "demo";
    match (taught, found.len()) {
        (true, 1) | (false, 0) => {}
        (true, n) => problems.push(format!(
            "{place}: a {} with {n} speaker notes, not 1",
            s.kind
        )),
        (false, n) => problems.push(format!(
            "{place}: a {} segment with {n} speaker notes: notes are for talks and demos",
            s.kind
        )),
    }
    for c in &found {
        notes += 1;
        let (demo, ask) = (&c[1], &c[2]);
        let mut named = 0;
        // A session or diff is named relative to the pages, a file of the
        // repository relative to the workspace.
        for (names, base) in [(&session, src()), (&script, workspace())] {
            for m in names.captures_iter(demo) {
                named += 1;
                if !base.join(&m[1]).exists() {
                    problems.push(format!(
                        "{place}: the demo names {}, which is missing",
                        &m[1]
                    ));
                }
            }
        }
        if named == 0 {
            problems.push(format!(
                "{place}: the demo names no `sessions/NAME.console`, `diffs/NAME.diff` or file of the repository"
            ));
        }
        if !ask.trim_end().ends_with('?') {
            problems.push(format!(
                "{place}: the question to ask does not end with '?'"
            ));
        }
    }
    Ok((notes, problems))
}

/// One schedule of the course page: `<!-- schedule NAME: PAGE... (budget N) -->`,
/// a table, `<!-- end schedule -->`.
struct Schedule {
    name: String,
    pages: Vec<String>,
    budget: u32,
    /// Where its table goes in the course page (byte range).
    table: std::ops::Range<usize>,
}

fn schedules(text: &str) -> Result<Vec<Schedule>> {
    let re = Regex::new(
        r"<!-- schedule ([\w -]+): ([\w -]+) \(budget (\d+)\) -->\n(?s:(.*?))<!-- end schedule -->",
    )?;
    re.captures_iter(text)
        .map(|c| {
            let table = c.get(4).context("no table")?;
            Ok(Schedule {
                name: c[1].to_string(),
                pages: c[2].split_whitespace().map(str::to_string).collect(),
                budget: c[3].parse()?,
                table: table.start()..table.end(),
            })
        })
        .collect()
}

/// The table of a schedule, from the segments of its pages; the workshop
/// takes only the segments marked `workshop`, with their workshop minutes.
fn table(s: &Schedule, all: &[Segment]) -> Result<(String, u32)> {
    let workshop = s.name.starts_with("workshop");
    let mut out = String::from("| segment | type | minutes |\n|---|---|---|\n");
    let (mut total, mut homework) = (0, 0);
    let mut by_kind: BTreeMap<&str, u32> = BTreeMap::new();
    for page in &s.pages {
        let of_page: Vec<&Segment> = all.iter().filter(|x| &x.page == page).collect();
        ensure!(
            !of_page.is_empty(),
            "schedule {}: no page {page} with timings",
            s.name
        );
        let title = title(page)?;
        for seg in of_page {
            let minutes = match (workshop, seg.workshop) {
                (true, Some(m)) => m,
                (true, None) => continue,
                (false, _) => seg.minutes,
            };
            let link = format!(
                "[{title}: {}]({page}.md#{})",
                seg.heading.replace('|', "\\|"),
                heading_id(&seg.heading)
            );
            if seg.kind == "self" {
                homework += minutes;
                out.push_str(&format!(
                    "| {link} | self (outside class) | ({minutes}) |\n"
                ));
            } else {
                total += minutes;
                *by_kind.entry(seg.kind.as_str()).or_default() += minutes;
                out.push_str(&format!("| {link} | {} | {minutes} |\n", seg.kind));
            }
        }
    }
    let kinds: Vec<String> = by_kind.iter().map(|(k, m)| format!("{k} {m}")).collect();
    out.push_str(&format!(
        "| **in class** ({}; of {} budgeted) | | **{total}** |\n",
        kinds.join(", "),
        s.budget
    ));
    if homework > 0 {
        out.push_str(&format!(
            "| outside class (exercises, reading) | | ({homework}) |\n"
        ));
    }
    Ok((out, total))
}

/// The exercises of every chapter, with a link to where each one's hint and
/// solution fold open (the book test requires both for each exercise).
fn answer_key(all: &[Segment]) -> Result<String> {
    let item = Regex::new(r"(?m)^(\d+)\. (.*)$")?;
    let mut out = String::from("| chapter | exercise | answer |\n|---|---|---|\n");
    for seg in all.iter().filter(|s| s.heading == "Exercises") {
        let title = title(&seg.page)?;
        for c in item.captures_iter(&seg.text) {
            let mut first = c[2].trim().to_string();
            // A first line cut inside a `code span` would leave it open.
            if first.matches('`').count() % 2 == 1 {
                if let Some(at) = first.rfind('`') {
                    first.truncate(at);
                }
                first = first.trim_end().to_string();
            }
            out.push_str(&format!(
                "| [{title}]({}.md#exercises) | {}. {} … | hint and solution under the exercise |\n",
                seg.page,
                &c[1],
                first.replace('|', "\\|")
            ));
        }
    }
    Ok(out)
}

/// Per lab and body: the likeliest mistake (the first mutant of the body in
/// `labs/mutants/chNN.txt`, which its README says to put first), how many
/// mistakes the lab test proves caught, what the scoreboard shows for the
/// likeliest, and how many rungs its hint ladder (`labs/hints/chNN.txt`) has.
fn lab_guide() -> Result<String> {
    let labs = cfs_tests::mutants::labs()?;
    let rung = Regex::new(r"^\d+\. ")?;
    let mut out = String::from(
        "| lab | body | mistakes caught | the likeliest mistake | the scoreboard shows | hint rungs |\n\
         |---|---|---|---|---|---|\n",
    );
    for ch in &labs {
        let (_, all) = cfs_tests::mutants::mutants(ch)?;
        let ladder = fs::read_to_string(workspace().join(format!("labs/hints/{ch}.txt")))
            .with_context(|| format!("no hint ladder labs/hints/{ch}.txt"))?;
        let mut rungs: BTreeMap<String, usize> = BTreeMap::new();
        let mut body = String::new();
        for line in ladder.lines() {
            if let Some(name) = line.strip_prefix("## ") {
                body = name.trim().to_string();
            } else if rung.is_match(line) {
                *rungs.entry(body.clone()).or_default() += 1;
            }
        }
        // A body is its function and, where two files of a lab mark one of
        // the same name (chapter 4's v1 and v2 `add`), its file.
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for m in &all {
            let key = (m.file.as_str(), m.function.as_str());
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let n = all
                .iter()
                .filter(|x| (x.file.as_str(), x.function.as_str()) == key)
                .count();
            let file = m
                .file
                .rsplit('/')
                .next()
                .filter(|f| !f.is_empty())
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            let r = rungs.get(&m.function).copied().unwrap_or(0);
            ensure!(
                r >= 3,
                "labs/hints/{ch}.txt: {} has {r} rungs, not at least 3",
                m.function
            );
            out.push_str(&format!(
                "| [{ch}](instructors.md#the-mistakes-the-checks-catch) | {file}`{}` | {n} | {} | `{}` | {r} |\n",
                m.function,
                m.mistake.replace('|', "\\|"),
                m.hint.replace('|', "\\|")
            ));
        }
    }
    Ok(out)
}

fn schedules_add_up() -> Result<()> {
    let page = src().join("course.md");
    let mut text = fs::read_to_string(&page)?;
    let all = all_segments()?;
    let found = schedules(&text)?;
    ensure!(
        found.iter().any(|s| s.name.starts_with("workshop")),
        "course.md: no <!-- schedule workshop: ... --> table"
    );
    let days: Vec<&Schedule> = found
        .iter()
        .filter(|s| s.name.starts_with("course day"))
        .collect();
    ensure!(
        days.len() == 3,
        "course.md: {} course days, not 3",
        days.len()
    );
    // Every page of the course is taught on exactly one day of the course.
    let mut problems = Vec::new();
    for page in course_pages()? {
        let n = days.iter().filter(|d| d.pages.contains(&page)).count();
        if n != 1 {
            problems.push(format!("{page}: on {n} days of the 3-day course, not 1"));
        }
    }
    let mut stale = Vec::new();
    // Replace from the end, so that earlier ranges stay valid.
    for s in found.iter().rev() {
        let (table, total) = table(s, &all)?;
        if total > s.budget {
            problems.push(format!(
                "schedule {}: {total} minutes in class, over its budget of {}",
                s.name, s.budget
            ));
        }
        if text[s.table.clone()] != table {
            stale.push(s.name.clone());
            text.replace_range(s.table.clone(), &table);
        }
    }
    for (what, generated) in [
        ("answer key", answer_key(&all)?),
        ("lab guide", lab_guide()?),
    ] {
        let (begin, end) = (format!("<!-- {what} -->\n"), format!("<!-- end {what} -->"));
        let (Some(a), Some(b)) = (text.find(&begin), text.find(&end)) else {
            bail!("course.md: no {begin:?} ... {end:?}; it should hold:\n{generated}");
        };
        let a = a + begin.len();
        if text[a..b] != generated {
            stale.push(what.to_string());
            text.replace_range(a..b, &generated);
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    if !stale.is_empty() {
        if std::env::var("CFS_BLESS").as_deref() == Ok("1") {
            fs::write(&page, &text)?;
        } else {
            bail!(
                "course.md: {stale:?} differ from the pages' timing markers and exercises: rerun \
                 with CFS_BLESS=1 to rewrite them"
            );
        }
    }
    Ok(())
}

/// The checks above must be able to fail, each on the wrong input: a marker
/// under no heading, a section before the first marker, a talk without a
/// note, a note whose demo is missing, and a day over its budget.
fn wrong_input_is_refused() -> Result<()> {
    let refused = |text: &str, why: &str| -> Result<()> {
        match parse("fixture", text) {
            Ok(s) => bail!("accepted ({why}): {s:?}"),
            Err(e) => {
                let e = format!("{e:#}");
                ensure!(
                    e.contains(why),
                    "refused for another reason than {why:?}: {e}"
                );
                Ok(())
            }
        }
    };
    refused(
        "# T\n\n## A\n<!-- course: talk 5 -->\n\ntext\n<!-- course: talk 5 -->\n",
        "must be the line right under a ## heading",
    )?;
    refused(
        "# T\n\n## A\n\ntext\n\n## B\n<!-- course: talk 5 -->\n",
        "has no timing marker under it",
    )?;
    refused(
        "# T\n\n## A\n<!-- course: talk 5 -->\n\n## B\n\ntext\n",
        "\"## B\" has no timing marker under it",
    )?;
    refused(
        "# T\n\n## Quiz\n\ntext\n",
        "\"## Quiz\" has no timing marker",
    )?;
    refused("# T\n\n## A\n<!-- course: nap 5 -->\n", "is none of")?;
    let good = "# T\n\n## A\n<!-- course: talk 5 -->\n\n<details class=\"speaker-note\"><summary>Speaker \
                note</summary>\n\n- Demo: `sessions/ch01-hostname.console`.\n- Ask: Why?\n\n</details>\n";
    let seg = parse("fixture", good)?;
    ensure!(
        seg.len() == 1 && seg[0].minutes == 5,
        "the fixture parsed wrong: {seg:?}"
    );
    let (n, p) = note_problems(&seg[0])?;
    ensure!(n == 1 && p.is_empty(), "a good note was refused: {p:?}");
    for (text, why) in [
        (
            good.replace("sessions/ch01-hostname", "sessions/no-such"),
            "which is missing",
        ),
        (good.replace("Why?", "Why."), "does not end with '?'"),
        (
            good.replace("`sessions/ch01-hostname.console`", "a demo"),
            "names no",
        ),
        (
            good.replace("sessions/ch01-hostname.console", "scripts/no-such"),
            "which is missing",
        ),
        (
            "# T\n\n## A\n<!-- course: talk 5 -->\n".to_string(),
            "with 0 speaker notes",
        ),
    ] {
        let seg = parse("fixture", &text)?;
        let (_, p) = note_problems(&seg[0])?;
        ensure!(
            p.iter().any(|p| p.contains(why)),
            "a wrong note was not refused with {why:?}: {p:?}"
        );
    }
    let over = Schedule {
        name: "course day test".into(),
        pages: vec!["ch01-uts".into()],
        budget: 1,
        table: 0..0,
    };
    let (_, total) = table(&over, &all_segments()?)?;
    ensure!(
        total > over.budget,
        "chapter 1 fits in one minute: the sum is wrong"
    );
    Ok(())
}

fn main() -> ExitCode {
    cfs_tests::main(vec![
        plain("every_page_has_its_timings", every_page_has_its_timings),
        plain(
            "labs_take_the_instructors_minutes",
            labs_take_the_instructors_minutes,
        ),
        plain(
            "taught_segments_have_speaker_notes",
            taught_segments_have_speaker_notes,
        ),
        plain("schedules_add_up", schedules_add_up),
        plain("wrong_input_is_refused", wrong_input_is_refused),
    ])
}
