//! The command line: listing, selecting, refusing what cannot work, exit
//! statuses, and the report files. (The cases themselves are tested in
//! `mutants.rs`, and against `pi-ring-node` in the workspace's
//! `tests/conform.rs`.)

use std::process::{Command, Output};

fn conform(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pi-ring-conform")).args(args).output().expect("run pi-ring-conform")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_shows_the_required_cases_and_strict_adds_the_others() {
    let plain = text(&conform(&["--list"]).stdout);
    let strict = text(&conform(&["--list", "--strict"]).stdout);
    assert!(plain.contains("7.2 owner-answers-where-is-token: OWNER answers WHERE_IS_TOKEN"), "{plain}");
    assert!(!plain.contains("7.9 ") && !plain.contains("10.1 "), "{plain}");
    assert!(strict.contains("7.9 start-up-pings (optional)") && strict.contains("10.1 delta-hand-off (extension)"));
    let section = text(&conform(&["--list", "--strict", "10"]).stdout);
    assert_eq!(section.lines().filter(|l| l.starts_with("  10.")).count(), 4, "{section}");
}

#[test]
fn a_command_line_that_cannot_work_exits_2_and_says_why() {
    let cases: [(&[&str], &str); 5] = [
        (&[], "--spawn"),
        (&["--netns", "--target", "127.0.0.1"], "'--netns' cannot be used with '--target <IPV4>'"),
        (&["--spawn", "node {hots}"], "{hots}, which is no placeholder"),
        (&["--spawn", "node --bind 127.0.0.2"], "has no {host}"),
        (&["--spawn", "node {host}", "11"], "no section or case \"11\""),
    ];
    for (args, said) in cases {
        let out = conform(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(said), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn a_node_that_does_not_start_fails_its_cases_at_once_and_the_reports_say_so() {
    let dir = std::env::temp_dir().join(format!("pi-ring-conform-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, junit) = (dir.join("report.json"), dir.join("report.xml"));
    let out = conform(&[
        "--spawn",
        "exit 3; {host}",
        "6.1",
        "7.9",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--log-dir",
        dir.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("the node exited (exit status: 3)"), "{stdout}");
    assert!(stdout.trim_end().ends_with("s") && stdout.contains("0 passed, 2 failed in"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!((report["failed"].as_u64(), report["cases"][1]["id"].as_str()), (Some(2), Some("7.9")));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<failure ").count(), 2, "{xml}");
    let _ = std::fs::remove_dir_all(&dir);
}
