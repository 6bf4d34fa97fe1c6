//! `pi-ring-monitor`: watch a pi-ring from the outside. See `--help`.

use clap::Parser;
use pi_ring::actors::udp::{shared_listener, MAX_DATAGRAM};
use pi_ring::logging::{LogFormat, VERSION};
use pi_ring::monitor::web::{self, Shared};
use pi_ring::monitor::RingView;
use pi_ring::protocol::RawMessage;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Watch a pi-ring: listens for the nodes' MY_STATE broadcasts (monitor
/// port) and the holder's heartbeats (ring port), serves a live web page
/// and a JSON API, and prints one line per second: who holds the token, how
/// many digits, passes per second, every node's state. Incidents (token
/// lost and regenerated, duplicate tokens, silent nodes) are printed as
/// they happen.
///
/// For tools: /metrics (Prometheus text: digits, passes, holder changes,
/// incidents, nodes by state) and /healthz (200 while the monitor serves).
///
/// Exit status: 0 after Ctrl-C or SIGTERM, 2 for bad options, 1 when a
/// port or address cannot be used.
#[derive(Parser, Debug)]
#[command(name = "pi-ring-monitor", version = VERSION)]
struct Args {
    /// Address of the web page and the API (/api/ring, /api/incidents,
    /// /api/events, /metrics, /healthz)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    http: SocketAddr,

    /// UDP port the nodes send MY_STATE to
    #[arg(long, default_value_t = 23937)]
    monitor_port: u16,

    /// UDP port of the ring's broadcasts (heartbeats are read from it)
    #[arg(long, default_value_t = 23912)]
    udp_port: u16,

    /// Listen on this address only, e.g. the ring's broadcast address
    /// (192.168.1.255) to hear one network of several [default: any]
    #[arg(long, value_name = "IPV4", default_value_t = Ipv4Addr::UNSPECIFIED)]
    bind: Ipv4Addr,

    /// Seconds between summary lines (0: none)
    #[arg(long, default_value_t = 1.0)]
    every: f64,

    /// Do not serve the web page and API (terminal lines only)
    #[arg(long)]
    no_http: bool,

    /// Log lines for people (text) or one JSON object per line (json)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    pi_ring::logging::init(args.log_format, "info,actix_server=warn,actix_web=warn");
    match actix_web::rt::System::new().block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pi-ring-monitor: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let shared = Shared::new(RingView::new());
    for port in [args.monitor_port, args.udp_port] {
        let socket = shared_listener(args.bind, port).map_err(|e| e.to_string())?;
        actix_web::rt::spawn(listen(socket, Arc::clone(&shared)));
    }
    actix_web::rt::spawn(report(Arc::clone(&shared), args.every));
    if args.no_http {
        std::future::pending::<()>().await;
        return Ok(());
    }
    let server = web::server(args.http, Arc::clone(&shared))
        .map_err(|e| format!("cannot serve HTTP on {}: {e} (pick another with --http)", args.http))?;
    println!("monitor page: http://{}/ ({VERSION})", args.http);
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut terminate) = signal(SignalKind::terminate()) else { return };
        let name = tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        log::info!("{name}: stopping");
        handle.stop(false).await;
    });
    server.await.map_err(|e| e.to_string())
}

/// Feed every decodable datagram to the view; ignore the rest.
async fn listen(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf).await else { continue };
        let Ok(raw) = RawMessage::decode(&buf[..n], MAX_DATAGRAM) else { continue };
        let Ok(message) = raw.without_data() else { continue };
        shared.view.lock().unwrap_or_else(|e| e.into_inner()).apply(&message, *from.ip(), Instant::now());
    }
}

/// Check for silent nodes, print the summary line and new incidents.
async fn report(shared: Arc<Shared>, every: f64) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let mut next_line = started;
    let mut printed = 0u64; // incidents printed, in order, by number
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let mut view = shared.view.lock().unwrap_or_else(|e| e.into_inner());
        view.tick(now);
        // Print incidents in order, each once it is over (a lost token is
        // printed when it is regenerated, with the gap).
        // Dropped from the timeline unprinted (a flood of incidents within
        // one tick): skip them.
        printed = printed.max(view.incidents_dropped());
        while let Some(incident) = view.incident_number(printed) {
            let lasting = matches!(
                incident.kind,
                pi_ring::monitor::IncidentKind::TokenLost { .. }
                    | pi_ring::monitor::IncidentKind::DuplicateTokens { .. }
            );
            if lasting && incident.ended.is_none() {
                break;
            }
            println!("*** {}", incident.describe(now));
            printed += 1;
        }
        if every > 0.0 && now >= next_line {
            println!("{:>7.1}s  {}", (now - started).as_secs_f64(), view.summary_line(now));
            next_line += Duration::from_secs_f64(every);
        }
    }
}
