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

use super::view::{Incident, RingView};
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

const PAGE: &str = include_str!("page.html");

/// The view shared by the UDP listeners and the HTTP handlers.
pub struct Shared {
    pub view: Mutex<RingView>,
    started: Instant,
    started_unix_ms: u64,
}

impl Shared {
    pub fn new(view: RingView) -> Arc<Self> {
        let started_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Arc::new(Shared { view: Mutex::new(view), started: Instant::now(), started_unix_ms })
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        self.started_unix_ms + at.saturating_duration_since(self.started).as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RingView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `/api/ring`.
    pub fn ring_json(&self) -> Value {
        let now = Instant::now();
        let mut view = self.lock();
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
                })
            })
            .collect();
        let open_loss = view
            .incidents()
            .iter()
            .rev()
            .find(|i| i.ended.is_none() && matches!(i.kind, super::IncidentKind::TokenLost { .. }));
        json!({
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
        let now = Instant::now();
        let mut view = self.lock();
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
        let now = Instant::now();
        let view = self.lock();
        Value::Array(view.incidents().iter().map(|i| self.incident_json(i, now)).collect())
    }

    /// The latest `n` incidents, and a fingerprint of the timeline that
    /// changes whenever an incident is added or ends.
    fn latest_incidents(&self, n: usize) -> (Value, (usize, usize, Option<u64>)) {
        let now = Instant::now();
        let view = self.lock();
        let all = view.incidents();
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

async fn incidents(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.incidents_json())
}

/// What one page was last sent.
#[derive(Default)]
struct Sent {
    nodes: std::collections::HashMap<String, Value>,
    incidents: Option<(usize, usize, Option<u64>)>,
}

/// One server-sent event: the figures, the nodes that changed, and the
/// timeline if it changed. Durations ("heard 3 s ago") are left to the
/// page, which has the time; otherwise every node would change every tick.
fn delta(shared: &Shared, sent: &mut Sent) -> Value {
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
    let mut event = json!({ "ring": ring, "nodes": changed });
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
            .route("/api/ring", web::get().to(ring))
            .route("/api/incidents", web::get().to(incidents))
            .route("/api/events", web::get().to(events))
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
        shared.lock().apply(&message, Ipv4Addr::LOCALHOST, Instant::now());
    }

    #[actix_rt::test]
    async fn metrics_count_the_ring_in_prometheus_text() {
        let shared = Shared::new(RingView::new());
        heartbeat(&shared, "a");
        shared.lock().apply(&Message::new("b", Body::Ping), Ipv4Addr::LOCALHOST, Instant::now());
        let state = crate::protocol::MyState {
            old_state: "WaiterState".into(),
            new_state: "OwnerState".into(),
            progress: Some(2002),
            target_digits: Some(2000),
            ..Default::default()
        };
        shared.lock().apply(&Message::new("a", Body::MyState(Box::new(state))), Ipv4Addr::LOCALHOST, Instant::now());
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
