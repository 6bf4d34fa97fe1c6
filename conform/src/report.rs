//! What a run found, for people (a tree of sections and cases) and for
//! tools (JSON, JUnit XML).

use crate::cases::{section_title, Case, Failure, Level};
use crate::subject::Timing;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// One case's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(Failure),
    Skipped(String),
}

/// A case and how it went.
pub struct CaseResult {
    pub case: &'static Case,
    pub outcome: Outcome,
    pub took: Duration,
    /// The node's own output in this case (`--spawn`), kept for failures.
    pub node_log: Option<PathBuf>,
}

/// A whole run.
pub struct Report {
    pub subject: String,
    pub timing: Timing,
    pub results: Vec<CaseResult>,
    pub took: Duration,
}

impl Report {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Passed)
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }

    /// The ids of the failed cases.
    pub fn failed_ids(&self) -> Vec<&'static str> {
        self.results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).map(|r| r.case.id).collect()
    }

    /// `N passed, M failed` (`, K skipped`) and the time.
    pub fn last_line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            let _ = write!(line, ", {} skipped", self.skipped());
        }
        let _ = write!(line, " in {:.1} s", self.took.as_secs_f64());
        line
    }

    /// The report's head: what was tested, with which timeouts.
    pub fn head(subject: &str, t: &Timing) -> String {
        let ms = |d: Duration| d.as_millis();
        format!(
            "pi-ring-conform {} against {subject}\ntimeouts: heartbeat {} ms, waiter {} ms, looser_ask {} ms, looser_answer {} ms, generating {} ms; slack {} ms\n",
            env!("CARGO_PKG_VERSION"),
            ms(t.heartbeat),
            ms(t.waiter),
            ms(t.looser_ask),
            ms(t.looser_answer),
            ms(t.generating),
            ms(t.slack),
        )
    }

    /// The whole tree.
    pub fn text(&self) -> String {
        let mut out = Report::head(&self.subject, &self.timing);
        let mut section = "";
        for result in &self.results {
            if result.case.section() != section {
                section = result.case.section();
                out.push_str(&section_line(result.case));
            }
            out.push_str(&case_lines(result));
        }
        out.push('\n');
        out.push_str(&self.last_line());
        out.push('\n');
        out
    }

    /// Machine-readable: every case with its outcome.
    pub fn json(&self) -> Value {
        let t = &self.timing;
        let ms = |d: Duration| d.as_millis() as u64;
        let cases: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let (outcome, detail) = match &r.outcome {
                    Outcome::Passed => ("passed", json!(null)),
                    Outcome::Failed(f) => ("failed", json!({"expected": f.expected, "observed": f.observed})),
                    Outcome::Skipped(why) => ("skipped", json!({"reason": why})),
                };
                json!({
                    "id": r.case.id,
                    "slug": r.case.slug,
                    "section": r.case.section(),
                    "level": r.case.level.as_str(),
                    "rule": r.case.rule,
                    "outcome": outcome,
                    "detail": detail,
                    "seconds": r.took.as_secs_f64(),
                    "node_log": r.node_log.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        json!({
            "tool": "pi-ring-conform",
            "version": env!("CARGO_PKG_VERSION"),
            "subject": self.subject,
            "timing_ms": {
                "heartbeat": ms(t.heartbeat), "waiter": ms(t.waiter), "looser_ask": ms(t.looser_ask),
                "looser_answer": ms(t.looser_answer), "generating": ms(t.generating), "slack": ms(t.slack),
            },
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "seconds": self.took.as_secs_f64(),
            "cases": cases,
        })
    }

    /// JUnit XML: one test suite per section.
    pub fn junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"pi-ring-conform\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.results.len(),
            self.failed(),
            self.skipped(),
            self.took.as_secs_f64()
        );
        let mut sections: Vec<&str> = self.results.iter().map(|r| r.case.section()).collect();
        sections.dedup();
        for section in sections {
            let results: Vec<&CaseResult> = self.results.iter().filter(|r| r.case.section() == section).collect();
            let failures = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count();
            let _ = writeln!(
                out,
                "  <testsuite name=\"{section} {}\" tests=\"{}\" failures=\"{failures}\">",
                xml(section_title(section)),
                results.len()
            );
            for r in results {
                let _ = write!(
                    out,
                    "    <testcase classname=\"section {section}\" name=\"{} {}\" time=\"{:.3}\"",
                    r.case.id,
                    r.case.slug,
                    r.took.as_secs_f64()
                );
                match &r.outcome {
                    Outcome::Passed => out.push_str("/>\n"),
                    Outcome::Failed(f) => {
                        let _ = writeln!(
                            out,
                            ">\n      <failure message=\"{}\">expected: {}\nobserved: {}</failure>\n    </testcase>",
                            xml(r.case.rule),
                            xml(&f.expected),
                            xml(&f.observed)
                        );
                    }
                    Outcome::Skipped(why) => {
                        let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(why));
                    }
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

/// A section's heading in the tree.
pub fn section_line(case: &Case) -> String {
    format!("\n{} {}\n", case.section(), section_title(case.section()))
}

/// One case in the tree (with the details of a failure).
pub fn case_lines(r: &CaseResult) -> String {
    let (mark, tail) = match &r.outcome {
        Outcome::Passed => ("✓", String::new()),
        Outcome::Failed(_) => ("✗", String::new()),
        Outcome::Skipped(why) => ("-", format!("  skipped: {why}")),
    };
    let level = match r.case.level {
        Level::Required => "",
        Level::Optional => " (optional)",
        Level::Extension => " (extension)",
    };
    let name = format!("{} {}{level}", r.case.id, r.case.slug);
    let mut out = format!("  {mark} {name:<52} {:>6.2} s{tail}\n", r.took.as_secs_f64());
    if let Outcome::Failed(f) = &r.outcome {
        let _ = writeln!(out, "      rule:     {}", r.case.rule);
        let _ = writeln!(out, "      expected: {}", f.expected);
        let _ = writeln!(out, "      observed: {}", f.observed);
        if let Some(log) = &r.node_log {
            let _ = writeln!(out, "      node log: {}", log.display());
        }
    }
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let all = crate::cases::all();
        let result = |id: &str, outcome| CaseResult {
            case: all.iter().find(|c| c.id == id).expect("a case"),
            outcome,
            took: Duration::from_millis(250),
            node_log: None,
        };
        Report {
            subject: "--spawn 'x <&> \"y\"'".into(),
            timing: Timing::default(),
            results: vec![
                result("4.2", Outcome::Passed),
                result("7.1", Outcome::Failed(Failure { expected: "a < b".into(), observed: "\"c\" & d".into() })),
                result("7.9", Outcome::Skipped("needs a node of its own".into())),
            ],
            took: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_last_line_counts_every_outcome() {
        assert_eq!(report().last_line(), "1 passed, 1 failed, 1 skipped in 1.0 s");
    }

    #[test]
    fn json_gives_each_case_its_outcome_and_what_failed() {
        let json = report().json();
        assert_eq!(
            (json["passed"].as_u64(), json["failed"].as_u64(), json["skipped"].as_u64()),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(json["cases"][1]["id"], "7.1");
        assert_eq!(json["cases"][1]["outcome"], "failed");
        assert_eq!(json["cases"][1]["detail"]["observed"], "\"c\" & d");
        assert_eq!(json["cases"][2]["level"], "optional");
    }

    #[test]
    fn junit_has_a_suite_per_section_and_escapes_text() {
        let xml = report().junit();
        assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert!(xml.contains("expected: a &lt; b\nobserved: &quot;c&quot; &amp; d</failure>"), "{xml}");
        assert!(xml.contains("<skipped message=\"needs a node of its own\"/>"));
        assert!(!xml.contains(" & "));
    }
}
