//! End to end: a real ring and `pi-ring-monitor` on loopback, the page
//! opened in headless Chromium. The page must show every node and a digit
//! count that grows; the test saves a screenshot (target/tmp/monitor.png, and
//! docs/monitor.png when PI_RING_UPDATE_SCREENSHOT=1).
//!
//! Drives Debian's `chromium` through `chromedriver` (WebDriver), both
//! installed by `.ci/run`. Without them the test says "skipped" on stderr,
//! and fails when run in CI (CI=true).

use crate::common::{fresh_host, http, start_node, Killed, Ports};
use pi_ring_harness::browser::{browser_tools, Browser};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The page's digit count, as a number.
fn shown_digits(browser: &Browser) -> u64 {
    let text = browser.eval("return document.getElementById('digits').textContent");
    text.as_str().unwrap_or("0").replace(',', "").parse().unwrap_or(0)
}

#[test]
#[ignore = "needs Chromium and chromedriver (apt-get install chromium chromium-driver); CI runs it"]
fn the_page_shows_every_node_and_a_growing_digit_count() {
    let (chromium, chromedriver) = browser_tools();
    let ports = Ports::free();
    // The page on a free port of our own.
    let http_addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().to_string();
    let http_addr = http_addr.as_str();
    let nodes: Vec<_> = (1..=3)
        .map(|i| {
            // Holdings of 400 ms: slow enough to kill a node while it holds
            // the token, fast enough to see the digits grow.
            let args = [
                "--hold-ms",
                "400",
                "--heartbeat-ms",
                "100",
                "--waiter-ms",
                "500",
                "--looser-ask-ms",
                "100",
                "--looser-answer-ms",
                "500",
                "--generating-ms",
                "500",
            ];
            start_node(&format!("node{i}"), fresh_host(), ports, &args)
        })
        .collect();
    let monitor = Command::new(env!("CARGO_BIN_EXE_pi-ring-monitor"))
        .args(["--http", http_addr, "--udp-port", &ports.udp.to_string(), "--monitor-port", &ports.monitor.to_string()])
        .args(["--every", "0"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start pi-ring-monitor");
    let _monitor = Killed(monitor);

    // Wait (bounded) until the monitor has heard every node and some digits.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ring =
            http(http_addr, "GET", "/api/ring", None).and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
        if let Some(ring) = ring {
            if ring["nodes"].as_array().map_or(0, |n| n.len()) == 3 && ring["digits"].as_u64().unwrap_or(0) >= 60 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the monitor did not see 3 nodes and 60 digits within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }

    let browser = Browser::start(&chromedriver, &chromium);
    browser.open(&format!("http://{http_addr}/"));
    // The page fills itself from the API and the event stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shown_digits(&browser) == 0 {
        assert!(Instant::now() < deadline, "the page showed no digits within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let drawn = browser.eval("return [...document.querySelectorAll('#ring g.node')].map(g => g.dataset.id)");
    let listed = browser
        .eval("return [...document.querySelectorAll('#nodes tbody tr td:first-child')].map(td => td.textContent)");
    for node in &nodes {
        assert!(drawn.as_array().unwrap().iter().any(|d| d == node.id.as_str()), "{} is not drawn: {drawn}", node.id);
        assert!(
            listed.as_array().unwrap().iter().any(|d| d == node.id.as_str()),
            "{} is not listed: {listed}",
            node.id
        );
    }
    let status = browser.eval("return document.getElementById('status').textContent");
    assert!(status.as_str().unwrap_or("").starts_with("The token is at node"), "status: {status}");

    // Live: the same page, not reloaded, shows more digits a moment later.
    let before = shown_digits(&browser);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = before;
    while after <= before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = shown_digits(&browser);
    }
    assert!(after > before, "the digit count did not grow within 5 s: {before} then {after}");

    // Kill the holder: the page must tell the story of the recovery.
    let ring: serde_json::Value = serde_json::from_str(&http(http_addr, "GET", "/api/ring", None).unwrap()).unwrap();
    let holder = ring["holder"].as_str().expect("the monitor knows the holder").to_string();
    let mut nodes = nodes;
    nodes.iter_mut().find(|n| n.id == holder).expect("a node of ours").kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let timeline = || browser.eval("return document.getElementById('timeline').textContent");
    while !timeline().as_str().unwrap_or("").contains("regenerated it after") {
        assert!(Instant::now() < deadline, "the timeline did not show the recovery within 10 s: {}", timeline());
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !timeline().as_str().unwrap_or("").contains(&format!("{holder} went silent")) {
        assert!(Instant::now() < deadline, "the killed node was not marked silent within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "not a real screenshot ({} bytes)", png.len());
    // In cargo's target directory, wherever CARGO_TARGET_DIR puts it.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("monitor.png");
    std::fs::write(&shot, &png).unwrap();
    if std::env::var_os("PI_RING_UPDATE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("monitor.png"), &png).unwrap();
    }
    eprintln!("page showed {before} then {after} digits; screenshot at {}", shot.display());
}

/// A ring that reached its target says so (not "stuck"), and a page whose
/// monitor is gone greys what it shows and says since when.
#[test]
#[ignore = "needs Chromium and chromedriver (apt-get install chromium chromium-driver); CI runs it"]
fn the_page_says_when_the_target_is_reached_and_when_its_data_is_stale() {
    let (chromium, chromedriver) = browser_tools();
    let ports = Ports::free();
    let http_addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().to_string();
    let http_addr = http_addr.as_str();
    let mut args = vec!["--target-digits", "200"];
    args.extend_from_slice(pi_ring_harness::QUICK_TIMING);
    let _nodes: Vec<_> = (1..=2).map(|i| start_node(&format!("node{i}"), fresh_host(), ports, &args)).collect();
    let mut monitor = Killed(
        Command::new(env!("CARGO_BIN_EXE_pi-ring-monitor"))
            .args(["--http", http_addr, "--udp-port", &ports.udp.to_string()])
            .args(["--monitor-port", &ports.monitor.to_string(), "--every", "0"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start pi-ring-monitor"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while http(http_addr, "GET", "/healthz", None).is_none() {
        assert!(Instant::now() < deadline, "the monitor did not serve /healthz within 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let browser = Browser::start(&chromedriver, &chromium);
    browser.open(&format!("http://{http_addr}/"));
    let status = || browser.eval("return document.getElementById('status').textContent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !status().as_str().unwrap_or("").starts_with("Target reached: 200 digits") {
        assert!(Instant::now() < deadline, "the page did not say the target was reached: {}", status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let class = browser.eval("return document.getElementById('status').className");
    assert_eq!(class, "done");
    assert!(!browser.eval("return document.body.classList.contains('stale')").as_bool().unwrap());

    // The monitor stops: the page keeps the last state, greyed, and says
    // since when.
    monitor.0.kill().unwrap();
    monitor.0.wait().unwrap();
    let conn = || browser.eval("return document.getElementById('conn').textContent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.eval("return document.body.classList.contains('stale')").as_bool().unwrap() {
        assert!(Instant::now() < deadline, "the page did not notice the monitor was gone: {}", conn());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(conn().as_str().unwrap_or("").starts_with("disconnected since "), "{}", conn());
    let opacity = browser.eval("return getComputedStyle(document.querySelector('main')).opacity");
    assert_eq!(opacity, "0.45", "the figures are not greyed");
}

/// A recorded fault story replayed on the page: the space-time view shows
/// every node's lane, the stretch without a holder, the searching and the
/// claiming that followed and the regenerating node, at the times the
/// recording has them. The test saves a screenshot (target/tmp/spacetime.png,
/// and docs/spacetime.png when PI_RING_UPDATE_SCREENSHOT=1).
#[test]
#[ignore = "needs Chromium and chromedriver (apt-get install chromium chromium-driver); CI runs it"]
fn a_replayed_fault_story_shows_the_gap_the_search_the_claim_and_the_regenerator_at_their_times() {
    let (chromium, chromedriver) = browser_tools();
    let story = crate::monitor_replay::record_fault_story("browser");
    let loss = story.loss();
    let (lost_at, regenerated_at) = (loss["at_ms"].as_f64().unwrap(), loss["ended_ms"].as_f64().unwrap());
    let regenerator = loss["detail"]["regenerated_by"].as_str().unwrap().to_owned();
    let survivors: Vec<&String> = story.ids.iter().filter(|id| **id != story.killed).collect();
    // What the recording says happened in the gap.
    let searched: Vec<(String, f64)> = survivors
        .iter()
        .flat_map(|id| {
            story.entered(id, "LooserState", lost_at, regenerated_at).into_iter().map(|t| (id.to_string(), t))
        })
        .collect();
    let claimed = story.entered(&regenerator, "GeneratingState", lost_at, regenerated_at);
    assert!(!searched.is_empty() && !claimed.is_empty(), "the recording has no search or claim in the gap");

    let (_replay, addr) = crate::monitor_replay::start_replay(&story.file);
    let browser = Browser::start(&chromedriver, &chromium);
    // Seek the replay past the restart, then bring the view to the gap.
    let (from, to) = (lost_at - 1500.0, regenerated_at + 1500.0);
    let ready = |drawn: &Value| {
        drawn["lanes"].as_array().is_some_and(|l| l.len() == 3)
            && drawn["noHolder"].as_array().is_some_and(|g| !g.is_empty())
            && drawn["stretches"].as_array().is_some_and(|s| s.iter().any(|s| s["state"] == "GENERATING"))
    };
    let drawn = view_of_replay(&browser, &addr, story.live_now_ms as f64, from, to, ready);
    assert!(ready(&drawn), "the view did not draw the story within 10 s: {drawn}");
    // Every node's lane, in ring order.
    let lanes: Vec<&str> = drawn["lanes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(lanes, story.ids.iter().map(String::as_str).collect::<Vec<_>>());
    // The stretch without a holder, as the live monitor timed it.
    let gap = &drawn["noHolder"][0];
    assert_eq!((gap["from"].as_f64(), gap["to"].as_f64()), (Some(lost_at), Some(regenerated_at)), "{gap}");
    assert_eq!(gap["by"], regenerator.as_str());
    // Searching and claiming stretches that start when the recording says.
    let stretches = drawn["stretches"].as_array().unwrap();
    let starts = |node: &str, state: &str, at: f64| {
        stretches
            .iter()
            .any(|s| s["node"] == node && s["state"] == state && (s["from"].as_f64().unwrap() - at).abs() < 0.01)
    };
    for (node, at) in &searched {
        assert!(starts(node, "LOOSER", *at), "no searching stretch of {node} at {at}: {stretches:?}");
    }
    for at in &claimed {
        assert!(starts(&regenerator, "GENERATING", *at), "no claiming stretch of {regenerator} at {at}");
    }
    // The regenerating node, marked where it regenerated.
    let markers = drawn["markers"].as_array().unwrap();
    assert!(
        markers.iter().any(|m| m["kind"] == "regenerated"
            && m["node"] == regenerator.as_str()
            && m["at"].as_f64() == Some(regenerated_at)),
        "no regeneration marker for {regenerator}: {markers:?}"
    );
    assert!(drawn["marks"].as_u64().unwrap() > 0, "no WHERE_IS_TOKEN or GENERATING_TOKEN mark");
    assert!(drawn["beats"].as_u64().unwrap() > 0, "no heartbeat tick");

    // Clicking the incident in "What happened" brings the view to it.
    browser.eval("window.spacetime.show(0, 10000); return true");
    let clicked =
        browser.eval("const li = document.querySelector('#timeline li.token_lost'); if (li) li.click(); return !!li");
    assert_eq!(clicked, true, "the timeline lists no lost token");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let window = browser.eval("return window.spacetime.drawn.window");
        let (a, b) = (window[0].as_f64().unwrap_or(0.0), window[1].as_f64().unwrap_or(0.0));
        if a <= lost_at && regenerated_at <= b {
            break;
        }
        assert!(Instant::now() < deadline, "clicking the incident did not bring the view to it: {window}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Wide enough to show the restart too, for the picture.
    let restarted = story.live_now_ms as f64;
    browser.eval(&format!(
        "window.spacetime.show({}, {}); return true",
        (lost_at - 1500.0 + restarted) / 2.0,
        restarted - lost_at + 3000.0
    ));
    std::thread::sleep(Duration::from_millis(300));
    let wide = browser.eval("return window.spacetime.drawn");
    let kinds: Vec<&str> = wide["markers"].as_array().unwrap().iter().filter_map(|m| m["kind"].as_str()).collect();
    assert!(kinds.contains(&"node_restarted"), "the restart is not marked: {kinds:?}");
    browser.eval("document.getElementById('st-section').scrollIntoView(); return true");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "not a real screenshot ({} bytes)", png.len());
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spacetime.png");
    std::fs::write(&shot, &png).unwrap();
    if std::env::var_os("PI_RING_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs").join("spacetime.png"), &png).unwrap();
    }
    std::fs::remove_dir_all(story.file.parent().unwrap()).unwrap();
}

/// Open a replay of `file` at its end, show `[from, to]` (Unix ms) in the
/// space-time view, and return what it drew once `ready` says so (or
/// after 10 s, whatever it drew then).
fn view_of_replay(
    browser: &Browser,
    addr: &str,
    end: f64,
    from: f64,
    to: f64,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    browser.open(&format!("http://{addr}/"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while browser.eval("return !!(window.spacetime && window.spacetime.receivedAt)") != true {
        assert!(Instant::now() < deadline, "the page did not start its space-time view within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    browser.eval(&format!("window.spacetime.control({{seek_ms: {end}}}); return true"));
    let script = format!(
        "window.spacetime.show({mid}, {span}); const d = window.spacetime.drawn; \
         return d && Math.abs(d.window[0] - {from}) < 1 ? d : null",
        mid = (from + to) / 2.0,
        span = to - from
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let drawn = browser.eval(&script);
        if !drawn.is_null() && ready(&drawn) || Instant::now() >= deadline {
            return drawn;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn aggregated(drawn: &Value) -> Vec<&str> {
    drawn["aggregated"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// When the token moves faster than the view can draw it (three nodes,
/// about a thousand passes a second), each lane shows
/// passes per interval: from the nodes' coalesced reports (the default),
/// and from a recording of every change (`--report-ms 0`) when zoomed out.
/// Zoomed into the latter, the view draws single holdings, exactly those
/// the recording has.
#[test]
#[ignore = "needs Chromium and chromedriver (apt-get install chromium chromium-driver); CI runs it"]
fn a_fast_ring_is_drawn_as_passes_per_interval_and_zooming_in_shows_each_holding() {
    let (chromium, chromedriver) = browser_tools();
    // Its rings keep two cores busy: not beside a test held to a bound.
    let _turn = crate::common::one_flood_at_a_time();
    let browser = Browser::start(&chromedriver, &chromium);
    let every_lane = |drawn: &Value, ids: &[String]| ids.iter().all(|id| aggregated(drawn).contains(&id.as_str()));

    // Coalesced reports: a band of passes on every lane.
    let coalesced = crate::monitor_replay::record_fast_ring("coalesced", 100, 3);
    let end = coalesced.unix_ms(coalesced.lines.last().unwrap());
    let (_replay, addr) = crate::monitor_replay::start_replay(&coalesced.file);
    let drawn = view_of_replay(&browser, &addr, end, end - 3000.0, end, |d| every_lane(d, &coalesced.ids));
    assert!(every_lane(&drawn, &coalesced.ids), "coalesced reports drawn without bands: {:?}", aggregated(&drawn));

    // Every change reported: more holdings in 3 s than the view has pixels
    // for (1280 wide: at most 427 changes a lane are drawn one by one).
    let every = crate::monitor_replay::record_fast_ring("every", 0, 3);
    let end = every.unix_ms(every.lines.last().unwrap());
    let (from, to) = (end - 3000.0, end);
    for id in &every.ids {
        let held = every.holdings(id).iter().filter(|t| (from..to).contains(*t)).count();
        assert!(held > 300, "{id} held the token only {held} times in 3 s: too slow a ring for this test");
    }
    let (_replay, addr) = crate::monitor_replay::start_replay(&every.file);
    let drawn = view_of_replay(&browser, &addr, end, from, to, |d| every_lane(d, &every.ids));
    assert!(every_lane(&drawn, &every.ids), "hundreds of holdings a lane drawn one by one: {:?}", aggregated(&drawn));
    // Zoomed into 20 ms around a holding in the middle: each holding, as
    // many as the recording has, and no aggregation.
    let first = &every.ids[0];
    let middle = *every.holdings(first).iter().find(|t| **t >= end - 1500.0).expect("a holding in the middle");
    let (from, to) = (middle - 10.0, middle + 10.0);
    let inside = |t: f64| t > from + 0.01 && t <= to - 0.01;
    let recorded: usize =
        every.ids.iter().map(|id| every.holdings(id).into_iter().filter(|t| inside(*t)).count()).sum();
    let shown = |d: &Value| {
        d["stretches"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["state"] == "OWNER" && s["from"].as_f64().is_some_and(inside)).count())
    };
    let drawn = view_of_replay(&browser, &addr, end, from, to, |d| shown(d) == recorded && aggregated(d).is_empty());
    assert!(recorded >= 1, "no holding recorded in the 20 ms around {middle}");
    assert_eq!(shown(&drawn), recorded, "holdings drawn in the zoomed window, against the recording");
    assert_eq!(aggregated(&drawn), Vec::<&str>::new(), "zoomed in, nothing is aggregated");
    for ring in [&coalesced.file, &every.file] {
        std::fs::remove_dir_all(ring.parent().unwrap()).unwrap();
    }
}
