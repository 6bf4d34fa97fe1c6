//! The monitor's web page and JSON API (actix-web).
//!
//! - `GET /`: the page (everything it needs is in this binary);
//! - `GET /api/ring`: holder, digits, passes per second, every node;
//! - `GET /api/incidents`: the timeline;
//! - `GET /api/events`: server-sent events four times a second, which the
//!   page uses to update itself. Each sends what changed since the last:
//!   `{"ring": figures, "nodes": [changed nodes], "incidents": [..]}`, the
//!   incidents only when the timeline changed (its latest 200), so a page
//!   watching 250 nodes costs kilobytes a second, not the whole state.

use super::record::{Entry, Heard, Recorder, Recording, RecordingError};
use super::replay::{Player, Step};
use super::trace::{Trace, LIVE_CAPACITY, MAX_ANSWER};
use super::view::{Incident, IncidentKind, RingView};
use crate::protocol::Message;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const PAGE: &str = include_str!("page.html");
const SPACETIME: &str = include_str!("spacetime.js");

/// Everything a monitor knows, behind one lock: what it concluded (the
/// view), what the space-time view draws (the trace), and the recording
/// it writes.
pub struct Monitor {
    pub view: RingView,
    pub trace: Trace,
    recorder: Option<Recorder>,
    /// Incidents told so far (printed and recorded once final), by number.
    told: u64,
}

impl Monitor {
    fn new(trace_capacity: usize) -> Self {
        Monitor { view: RingView::new(), trace: Trace::new(trace_capacity), recorder: None, told: 0 }
    }

    /// Incidents that became final since the last call, in order: the
    /// brief ones at once, a lost or duplicated token once it is over.
    fn newly_final(&mut self) -> Vec<Incident> {
        let mut out = Vec::new();
        // Dropped from the timeline untold (a flood within one tick): skip.
        self.told = self.told.max(self.view.incidents_dropped());
        while let Some(incident) = self.view.incident_number(self.told) {
            let lasting =
                matches!(incident.kind, IncidentKind::TokenLost { .. } | IncidentKind::DuplicateTokens { .. });
            if lasting && incident.ended.is_none() {
                break;
            }
            out.push(incident.clone());
            self.told += 1;
        }
        out
    }
}

/// Where to record (`--record`).
#[derive(Clone, Debug)]
pub struct RecordTo {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub keep: usize,
}

/// The monitor shared by the UDP listeners, the ticker and the HTTP
/// handlers: live, or replaying a recording.
///
/// Lock order: `player` before `monitor`, never the other way (a replay's
/// ticker holds the player while it applies entries to the monitor).
pub struct Shared {
    monitor: Mutex<Monitor>,
    /// The replay's clock and position (`None`: live).
    player: Option<Mutex<Player>>,
    started: Instant,
    started_unix_ms: u64,
    trace_capacity: usize,
}

/// A lock that a panic elsewhere does not poison for good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A live monitor starting with `view`.
    pub fn new(view: RingView) -> Arc<Self> {
        let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut monitor = Monitor::new(LIVE_CAPACITY);
        monitor.view = view;
        Arc::new(Shared {
            monitor: Mutex::new(monitor),
            player: None,
            started: Instant::now(),
            started_unix_ms,
            trace_capacity: LIVE_CAPACITY,
        })
    }

    /// A live monitor that records what it hears to `to`.
    pub fn recording(to: &RecordTo) -> Result<Arc<Self>, RecordingError> {
        let shared = Shared::new(RingView::new());
        let recorder = Recorder::create(&to.path, to.max_bytes, to.keep, shared.started_unix_ms)?;
        shared.lock().recorder = Some(recorder);
        Ok(shared)
    }

    /// A monitor that replays `recording`, paused at its start.
    pub fn replay(recording: Recording) -> Arc<Self> {
        let capacity = LIVE_CAPACITY.max(recording.entries.len());
        let started_unix_ms = recording.started_unix_ms;
        let mut player = Player::new(recording);
        player.pause();
        Arc::new(Shared {
            monitor: Mutex::new(Monitor::new(capacity)),
            player: Some(Mutex::new(player)),
            started: Instant::now(),
            started_unix_ms,
            trace_capacity: capacity,
        })
    }

    /// The monitor's time: the clock, or the replay's position.
    pub fn now(&self) -> Instant {
        match &self.player {
            Some(player) => self.started + lock(player).position(),
            None => Instant::now(),
        }
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        self.started_unix_ms + at.saturating_duration_since(self.started).as_millis() as u64
    }

    /// Unix time in milliseconds with microseconds, for the space-time view.
    fn unix_ms_f(&self, at: Instant) -> f64 {
        self.started_unix_ms as f64 + at.saturating_duration_since(self.started).as_secs_f64() * 1000.0
    }

    /// The moment of a Unix time in milliseconds, to the microsecond.
    fn instant_of(&self, unix_ms: f64) -> Instant {
        let micros = ((unix_ms - self.started_unix_ms as f64) * 1000.0).round().clamp(0.0, 1e15);
        self.started + Duration::from_micros(micros as u64)
    }

    pub fn lock(&self) -> MutexGuard<'_, Monitor> {
        lock(&self.monitor)
    }

    /// A message heard now (live).
    pub fn hear(&self, port: Heard, message: &Message, from: Ipv4Addr) {
        let mut monitor = self.lock();
        let at = Instant::now().saturating_duration_since(self.started);
        self.apply(&mut monitor, at, port, from, message);
    }

    fn apply(&self, monitor: &mut Monitor, at: Duration, port: Heard, from: Ipv4Addr, message: &Message) {
        let now = self.started + at;
        monitor.view.apply(message, from, now);
        monitor.trace.hear(message, now);
        if let Some(recorder) = &mut monitor.recorder {
            recorder.message(at, port, from, message);
        }
    }

    /// Look for silent nodes now (live); the incidents that became final,
    /// in words.
    pub fn tick(&self) -> Vec<String> {
        let mut monitor = self.lock();
        let at = Instant::now().saturating_duration_since(self.started);
        self.tick_at(&mut monitor, at)
    }

    fn tick_at(&self, monitor: &mut Monitor, at: Duration) -> Vec<String> {
        let now = self.started + at;
        monitor.view.tick(now);
        let finals = monitor.newly_final();
        if let Some(recorder) = &mut monitor.recorder {
            recorder.tick(at);
            for incident in &finals {
                recorder.incident(at, &self.incident_json(incident, now));
            }
            recorder.flush();
        }
        finals.iter().map(|i| i.describe(now)).collect()
    }

    /// The replay moves on by `elapsed` of real time (if playing); the
    /// incidents that became final meanwhile, in words. Nothing live.
    pub fn replay_advance(&self, elapsed: Duration) -> Vec<String> {
        let Some(player) = &self.player else { return Vec::new() };
        let mut player = lock(player);
        let mut monitor = self.lock();
        let mut told = Vec::new();
        player.advance(elapsed, |step| told.extend(self.replay_step(&mut monitor, step)));
        told
    }

    /// Jump the replay to `unix_ms`, and play or pause, at a speed.
    pub fn replay_control(&self, seek_ms: Option<f64>, play: Option<bool>, speed: Option<f64>) -> Option<Value> {
        let player = self.player.as_ref()?;
        {
            let mut player = lock(player);
            if let Some(speed) = speed {
                player.set_speed(speed);
            }
            if let Some(to) = seek_ms {
                let to = self.instant_of(to).saturating_duration_since(self.started);
                let mut monitor = self.lock();
                player.seek(to, |step| drop(self.replay_step(&mut monitor, step)));
            }
            match play {
                Some(true) => {
                    if player.position() >= player.duration() {
                        let mut monitor = self.lock();
                        player.seek(Duration::ZERO, |step| drop(self.replay_step(&mut monitor, step)));
                    }
                    player.play()
                }
                Some(false) => player.pause(),
                None => {}
            }
        }
        self.replay_json()
    }

    fn replay_step(&self, monitor: &mut Monitor, step: Step<'_>) -> Vec<String> {
        match step {
            Step::Restart => {
                *monitor = Monitor::new(self.trace_capacity);
                Vec::new()
            }
            Step::Apply(Entry::Message { at, port, from, message }) => {
                self.apply(monitor, *at, *port, *from, message);
                Vec::new()
            }
            Step::Apply(Entry::Tick { at }) => self.tick_at(monitor, *at),
            // The replay draws its own conclusions, as the live monitor did.
            Step::Apply(Entry::Incident { .. }) => Vec::new(),
        }
    }

    /// The terminal's summary line, now.
    pub fn summary_line(&self) -> String {
        let now = self.now();
        self.lock().view.summary_line(now)
    }

    /// Whether this monitor replays a recording.
    pub fn is_replay(&self) -> bool {
        self.player.is_some()
    }

    /// Start playing the replay (it starts paused).
    pub fn play(&self) {
        if let Some(player) = &self.player {
            lock(player).play();
        }
    }

    /// `/api/replay`: where the replay is (`null` when live).
    pub fn replay_json(&self) -> Option<Value> {
        let player = lock(self.player.as_ref()?);
        Some(json!({
            "start_ms": self.started_unix_ms,
            "end_ms": self.unix_ms_f(self.started + player.duration()),
            "position_ms": self.unix_ms_f(self.started + player.position()),
            "playing": player.playing(),
            "speed": player.speed(),
            "restarts": player.restarts,
            "entries": player.recording().entries.len(),
        }))
    }

    /// `/api/trace`: events after `after` (a number), or between two
    /// times (Unix ms), at most [`MAX_ANSWER`].
    pub fn trace_json(&self, after: Option<u64>, window: Option<(f64, f64)>) -> Value {
        // The player before the monitor, as everywhere (see [`Shared`]).
        let restarts = self.player.as_ref().map_or(0, |p| lock(p).restarts);
        let monitor = self.lock();
        let event = |e: &super::trace::Event| {
            let mut v = serde_json::to_value(&e.what).unwrap_or(Value::Null);
            v["i"] = json!(e.seq);
            v["t"] = json!((self.unix_ms_f(e.at) * 1000.0).round() / 1000.0);
            v["n"] = json!(e.node);
            v
        };
        let events: Vec<Value> = match window {
            Some((from, to)) => {
                monitor.trace.between(self.instant_of(from), self.instant_of(to), MAX_ANSWER).map(event).collect()
            }
            None => monitor.trace.after(after, MAX_ANSWER).map(event).collect(),
        };
        json!({ "next": monitor.trace.next_seq(), "restarts": restarts, "events": events })
    }

    /// `/api/ring`.
    pub fn ring_json(&self) -> Value {
        let now = self.now();
        let monitor = self.lock();
        let view = &monitor.view;
        let rate = view.passes_per_second(now, Duration::from_secs(1));
        let holder = view.holder_at(now).map(str::to_owned);
        let nodes: Vec<Value> = view
            .nodes()
            .iter()
            .map(|(id, v)| {
                json!({
                    "id": id,
                    "host": v.host.to_string(),
                    "state": if v.silent { "SILENT".to_string() } else { v.state.to_string() },
                    "silent": v.silent,
                    "digits": v.progress.saturating_sub(2),
                    "token": v.token,
                    "holds_token": holder.as_deref() == Some(id.as_str()),
                    "holdings": v.holdings,
                    "restarts": v.restarts,
                    "restarted_ms": v.restarted_at.map(|at| self.unix_ms(at)),
                    "started_ms": v.started_ms,
                    "first_holding_after_start_s": v.first_holding_after.map(|d| d.as_secs_f64()),
                    "last_heard_ms_ago": now.saturating_duration_since(v.last_heard).as_millis() as u64,
                    "last_heard_ms": self.unix_ms(v.last_heard),
                    "computing": v.computing.filter(|_| !v.silent),
                })
            })
            .collect();
        let open_loss = view
            .incidents()
            .iter()
            .rev()
            .find(|i| i.ended.is_none() && matches!(i.kind, super::IncidentKind::TokenLost { .. }));
        json!({
            "mode": if self.player.is_some() { "replay" } else { "live" },
            "now_ms": self.unix_ms(now),
            "uptime_s": (now - self.started).as_secs_f64(),
            "holder": holder,
            "digits": view.max_progress.saturating_sub(2),
            "target_digits": view.target_digits,
            "target_reached": view.target_reached(),
            "latest_digits": view.latest_digits,
            "passes": view.passes,
            "passes_per_second": rate,
            "without_holder_s": open_loss.map(|i| i.duration(now).as_secs_f64()),
            "nodes": nodes,
        })
    }

    /// `/metrics`: the ring in Prometheus' text format.
    pub fn metrics(&self) -> String {
        use std::fmt::Write;
        let now = self.now();
        let monitor = self.lock();
        let view = &monitor.view;
        let rate = view.passes_per_second(now, Duration::from_secs(1));
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        metric(
            "pi_ring_digits",
            "gauge",
            "Digits of pi after the point in the longest expansion heard of.",
            &one(view.max_progress.saturating_sub(2) as f64),
        );
        if let Some(target) = view.target_digits {
            metric("pi_ring_target_digits", "gauge", "The ring's target (--target-digits).", &one(target as f64));
        }
        metric(
            "pi_ring_target_reached",
            "gauge",
            "1 once the expansion has reached the ring's target.",
            &one(f64::from(u8::from(view.target_reached()))),
        );
        metric("pi_ring_passes_total", "counter", "Token hand-offs seen.", &one(view.passes as f64));
        metric("pi_ring_passes_per_second", "gauge", "Token hand-offs in the last second.", &one(rate));
        metric(
            "pi_ring_holder_changes_total",
            "counter",
            "Times the token was seen at another node than before.",
            &one(view.holder_changes as f64),
        );
        let incidents: Vec<(String, f64)> = [
            "first_token",
            "token_lost",
            "duplicate_tokens",
            "node_joined",
            "node_silent",
            "node_back",
            "node_restarted",
            "back_in_rotation",
        ]
        .iter()
        .map(|kind| (format!("{{kind=\"{kind}\"}}"), view.incident_totals.get(kind).copied().unwrap_or(0) as f64))
        .collect();
        metric("pi_ring_incidents_total", "counter", "Incidents of the timeline, by kind.", &incidents);
        let mut by_state: BTreeMap<&str, u64> =
            ["starting", "holding", "waiting", "searching", "claiming", "silent"].iter().map(|s| (*s, 0)).collect();
        for node in view.nodes().values() {
            let state = if node.silent { "silent" } else { node.state.for_people() };
            *by_state.entry(state).or_default() += 1;
        }
        let nodes: Vec<(String, f64)> =
            by_state.iter().map(|(state, n)| (format!("{{state=\"{state}\"}}"), *n as f64)).collect();
        metric("pi_ring_nodes", "gauge", "Nodes heard of, by what they do (silent: not heard lately).", &nodes);
        metric(
            "pi_ring_monitor_uptime_seconds",
            "gauge",
            "Seconds since the monitor started.",
            &one((now - self.started).as_secs_f64()),
        );
        out
    }

    /// `/api/incidents`, oldest first.
    pub fn incidents_json(&self) -> Value {
        let now = self.now();
        let monitor = self.lock();
        let view = &monitor.view;
        Value::Array(view.incidents().iter().map(|i| self.incident_json(i, now)).collect())
    }

    /// The latest `n` incidents, and a fingerprint of the timeline that
    /// changes whenever an incident is added or ends.
    fn latest_incidents(&self, n: usize) -> (Value, (usize, usize, Option<u64>)) {
        let now = self.now();
        let monitor = self.lock();
        let all = monitor.view.incidents();
        let ended = all.iter().filter(|i| i.ended.is_some()).count();
        let fingerprint = (all.len(), ended, all.last().map(|i| self.unix_ms(i.at)));
        let latest = &all[all.len().saturating_sub(n)..];
        (Value::Array(latest.iter().map(|i| self.incident_json(i, now)).collect()), fingerprint)
    }

    fn incident_json(&self, i: &Incident, now: Instant) -> Value {
        json!({
            "at_ms": self.unix_ms(i.at),
            "ended_ms": i.ended.map(|e| self.unix_ms(e)),
            "duration_s": i.duration(now).as_secs_f64(),
            "text": i.describe(now),
            "detail": i.kind,
        })
    }
}

async fn page() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(PAGE)
}

async fn spacetime() -> HttpResponse {
    HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(SPACETIME)
}

async fn ring(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.ring_json())
}

async fn metrics(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(shared.metrics())
}

/// `/healthz`: the monitor is up and serving (it says nothing of the ring:
/// see `/metrics` or `/api/ring` for that).
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok\n")
}

/// `/api/trace?after=N` (events numbered after N) or
/// `/api/trace?from_ms=A&to_ms=B` (events heard between two Unix times).
#[derive(serde::Deserialize)]
struct TraceQuery {
    after: Option<u64>,
    from_ms: Option<f64>,
    to_ms: Option<f64>,
}

async fn trace(shared: web::Data<Shared>, query: web::Query<TraceQuery>) -> HttpResponse {
    let window = query.from_ms.zip(query.to_ms);
    HttpResponse::Ok().json(shared.trace_json(query.after, window))
}

async fn replay_state(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.replay_json())
}

/// `POST /api/replay` with `{"seek_ms": T, "play": true|false, "speed": X}`
/// (each optional): control a replay.
#[derive(serde::Deserialize)]
struct ReplayControl {
    seek_ms: Option<f64>,
    play: Option<bool>,
    speed: Option<f64>,
}

async fn replay_control(shared: web::Data<Shared>, control: web::Json<ReplayControl>) -> HttpResponse {
    match shared.replay_control(control.seek_ms, control.play, control.speed) {
        Some(state) => HttpResponse::Ok().json(state),
        None => HttpResponse::Conflict()
            .content_type("text/plain; charset=utf-8")
            .body("this monitor is live: only a replay (--replay FILE) can be controlled\n"),
    }
}

async fn incidents(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.incidents_json())
}

/// What one page was last sent.
#[derive(Default)]
struct Sent {
    nodes: std::collections::HashMap<String, Value>,
    incidents: Option<(usize, usize, Option<u64>)>,
    /// A replay's seeks back: after one, everything is sent again.
    restarts: u64,
}

/// One server-sent event: the figures, the nodes that changed, and the
/// timeline if it changed. Durations ("heard 3 s ago") are left to the
/// page, which has the time; otherwise every node would change every tick.
fn delta(shared: &Shared, sent: &mut Sent) -> Value {
    let replay = shared.replay_json();
    let restarts = replay.as_ref().and_then(|r| r["restarts"].as_u64()).unwrap_or(0);
    if restarts != sent.restarts {
        *sent = Sent { restarts, ..Sent::default() };
    }
    let mut ring = shared.ring_json();
    let nodes = match ring.get_mut("nodes").map(Value::take) {
        Some(Value::Array(nodes)) => nodes,
        _ => Vec::new(),
    };
    if let Some(ring) = ring.as_object_mut() {
        ring.remove("nodes");
    }
    let mut changed = Vec::new();
    for mut node in nodes {
        if let Some(node) = node.as_object_mut() {
            node.remove("last_heard_ms_ago");
        }
        let id = node.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if sent.nodes.get(&id) != Some(&node) {
            sent.nodes.insert(id, node.clone());
            changed.push(node);
        }
    }
    let mut event = json!({ "ring": ring, "nodes": changed, "restarts": restarts });
    if let Some(replay) = replay {
        event["replay"] = replay;
    }
    let (incidents, fingerprint) = shared.latest_incidents(200);
    if sent.incidents != Some(fingerprint) {
        sent.incidents = Some(fingerprint);
        event["incidents"] = incidents;
    }
    event
}

async fn events(shared: web::Data<Shared>) -> HttpResponse {
    let ticks = tokio::time::interval(Duration::from_millis(250));
    let state = (shared, ticks, Sent::default());
    let stream = futures_util::stream::unfold(state, |(shared, mut ticks, mut sent)| async move {
        ticks.tick().await;
        let payload = delta(&shared, &mut sent);
        let event = web::Bytes::from(format!("data: {payload}\n\n"));
        Some((Ok::<_, actix_web::Error>(event), (shared, ticks, sent)))
    });
    HttpResponse::Ok().content_type("text/event-stream").insert_header(("Cache-Control", "no-cache")).streaming(stream)
}

/// Bind the HTTP server; run the returned server to serve.
pub fn server(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::from(shared);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/", web::get().to(page))
            .route("/spacetime.js", web::get().to(spacetime))
            .route("/api/ring", web::get().to(ring))
            .route("/api/incidents", web::get().to(incidents))
            .route("/api/events", web::get().to(events))
            .route("/api/trace", web::get().to(trace))
            .route("/api/replay", web::get().to(replay_state))
            .route("/api/replay", web::post().to(replay_control))
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?
    .run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Body, Message, Token};
    use std::net::Ipv4Addr;

    fn heartbeat(shared: &Shared, id: &str) {
        let message = Message::new(id, Body::TokenIsHere { token: Token::new(22, id, 1) });
        shared.lock().view.apply(&message, Ipv4Addr::LOCALHOST, Instant::now());
    }

    /// The replay's ticker moves the player on while the page asks for
    /// the trace: both take the player and the monitor, and must take them
    /// in one order. (A page that polled while a replay played once hung
    /// the monitor for good.)
    #[test]
    fn the_trace_can_be_read_while_the_replay_plays() {
        let entries = (0..1000u64).map(|i| Entry::Tick { at: Duration::from_millis(i) }).collect();
        let recording = Recording { started_unix_ms: 1_700_000_000_000, entries, skipped: 0 };
        let shared = Shared::replay(recording);
        shared.play();
        let (done, finished) = std::sync::mpsc::channel();
        for reader in [false, true] {
            let (shared, done) = (Arc::clone(&shared), done.clone());
            std::thread::spawn(move || {
                for _ in 0..20_000 {
                    if reader {
                        let _ = shared.trace_json(None, None);
                    } else {
                        let _ = shared.replay_advance(Duration::ZERO);
                    }
                }
                let _ = done.send(());
            });
        }
        for _ in 0..2 {
            finished.recv_timeout(Duration::from_secs(20)).expect("a deadlock: the player and the monitor");
        }
    }

    #[actix_rt::test]
    async fn metrics_count_the_ring_in_prometheus_text() {
        let shared = Shared::new(RingView::new());
        heartbeat(&shared, "a");
        shared.lock().view.apply(&Message::new("b", Body::Ping), Ipv4Addr::LOCALHOST, Instant::now());
        let state = crate::protocol::MyState {
            old_state: "WaiterState".into(),
            new_state: "OwnerState".into(),
            progress: Some(2002),
            target_digits: Some(2000),
            ..Default::default()
        };
        shared.lock().view.apply(
            &Message::new("a", Body::MyState(Box::new(state))),
            Ipv4Addr::LOCALHOST,
            Instant::now(),
        );
        let text = shared.metrics();
        for line in [
            "pi_ring_digits 2000",
            "pi_ring_target_digits 2000",
            "pi_ring_target_reached 1",
            "pi_ring_incidents_total{kind=\"node_joined\"} 2",
            "pi_ring_nodes{state=\"holding\"} 1",
            "pi_ring_nodes{state=\"starting\"} 1",
            "# TYPE pi_ring_passes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // Every sample line is a name, optional labels and a number.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[actix_rt::test]
    async fn a_live_monitor_cannot_be_controlled_like_a_replay() {
        let shared = Shared::new(RingView::new());
        assert!(shared.replay_control(Some(0.0), Some(true), None).is_none());
        assert!(shared.replay_json().is_none());
        assert_eq!(shared.ring_json()["mode"], "live");
    }

    #[actix_rt::test]
    async fn events_send_only_what_changed() {
        let shared = Shared::new(RingView::new());
        for id in ["a", "b", "c"] {
            heartbeat(&shared, id);
        }
        let mut sent = Sent::default();
        let first = delta(&shared, &mut sent);
        assert_eq!(first["nodes"].as_array().unwrap().len(), 3);
        assert!(first.get("incidents").is_some(), "the first event carries the timeline");
        let second = delta(&shared, &mut sent);
        assert_eq!(second["nodes"].as_array().unwrap().len(), 0, "{second}");
        assert!(second.get("incidents").is_none());
        heartbeat(&shared, "d");
        let third = delta(&shared, &mut sent);
        let ids: Vec<&str> = third["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"d"), "{ids:?}");
        assert!(third.get("incidents").is_some(), "d joined");
    }
}
