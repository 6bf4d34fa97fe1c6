//! `pi-ring-monitor`: watch a pi-ring from the outside. See `--help`.

use clap::Parser;
use pi_ring::actors::udp::{shared_listener, MAX_DATAGRAM};
use pi_ring::logging::{LogFormat, VERSION};
use pi_ring::monitor::record::{Heard, Recording};
use pi_ring::monitor::web::RecordTo;
use pi_ring::monitor::web::{self, Shared};
use pi_ring::monitor::RingView;
use pi_ring::protocol::RawMessage;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

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
/// Recordings: --record FILE writes everything the monitor hears, with the
/// time it heard it, as JSON lines (a file of at most --record-max-mb,
/// then rotated to FILE.1, FILE.2, ... keeping --record-keep older parts).
/// --replay FILE serves the same page and API from a recording: play,
/// pause, speed and seek on the page, or POST /api/replay.
///
/// Exit status: 0 after Ctrl-C or SIGTERM, 2 for bad options, 1 when a
/// port or address cannot be used, or a recording cannot be written or
/// read.
#[derive(Parser, Debug)]
#[command(name = "pi-ring-monitor", version = VERSION)]
struct Args {
    /// Address of the web page and the API (/api/ring, /api/incidents,
    /// /api/events, /api/trace, /api/replay, /metrics, /healthz)
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

    /// Record everything heard to FILE (JSON lines; replaced if it exists)
    #[arg(long, value_name = "FILE", conflicts_with = "replay")]
    record: Option<PathBuf>,

    /// Size limit of one recording file, in MB (10^6 bytes); at the limit
    /// FILE becomes FILE.1 and a new FILE begins
    #[arg(long, value_name = "MB", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    record_max_mb: u64,

    /// Older recording files kept (FILE.1 ... FILE.N; 0: none)
    #[arg(long, value_name = "N", default_value_t = 1)]
    record_keep: usize,

    /// Replay a recording instead of listening to a ring: give its parts
    /// oldest first (FILE.1 FILE), or just FILE
    #[arg(long, value_name = "FILE", num_args = 1..)]
    replay: Vec<PathBuf>,

    /// Replay speed, times real time (0.01 to 1000)
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    speed: f64,

    /// Start the replay paused (press play on the page)
    #[arg(long, requires = "replay")]
    paused: bool,
}

/// A replay speed: a number from 0.01 to 1000.
fn parse_speed(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(speed) if (0.01..=pi_ring::monitor::replay::MAX_SPEED).contains(&speed) => Ok(speed),
        _ => Err(format!("{text:?} is not a speed from 0.01 to 1000 (times real time)")),
    }
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
    let shared = if !args.replay.is_empty() {
        let recording = Recording::load(&args.replay).map_err(|e| e.to_string())?;
        if recording.entries.is_empty() {
            return Err(format!("{}: the recording holds nothing to replay", args.replay[0].display()));
        }
        println!(
            "replaying {} entries, {:.1} s{}",
            recording.entries.len(),
            recording.duration().as_secs_f64(),
            if recording.skipped > 0 {
                format!(" ({} unreadable lines skipped)", recording.skipped)
            } else {
                String::new()
            }
        );
        let shared = Shared::replay(recording);
        shared.replay_control(None, None, Some(args.speed));
        if !args.paused {
            shared.play();
        }
        shared
    } else {
        let shared = match &args.record {
            Some(path) => {
                let to =
                    RecordTo { path: path.clone(), max_bytes: args.record_max_mb * 1_000_000, keep: args.record_keep };
                let shared = Shared::recording(&to).map_err(|e| format!("cannot record: {e}"))?;
                println!(
                    "recording to {} (files of at most {} MB, {} older kept)",
                    path.display(),
                    args.record_max_mb,
                    args.record_keep
                );
                shared
            }
            None => Shared::new(RingView::new()),
        };
        for (port, heard) in [(args.monitor_port, Heard::Monitor), (args.udp_port, Heard::Ring)] {
            let socket = shared_listener(args.bind, port).map_err(|e| e.to_string())?;
            actix_web::rt::spawn(listen(socket, heard, Arc::clone(&shared)));
        }
        shared
    };
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

/// Feed every decodable datagram to the monitor; ignore the rest.
async fn listen(socket: UdpSocket, heard: Heard, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let Ok((n, SocketAddr::V4(from))) = socket.recv_from(&mut buf).await else { continue };
        let Ok(raw) = RawMessage::decode(&buf[..n], MAX_DATAGRAM) else { continue };
        let Ok(message) = raw.without_data() else { continue };
        shared.hear(heard, &message, *from.ip());
    }
}

/// Check for silent nodes (or move the replay on), print the incidents as
/// they become final and the summary line.
async fn report(shared: Arc<Shared>, every: f64) {
    let started = std::time::Instant::now();
    // A replay moves in small steps, so that the page follows smoothly;
    // a live monitor ticks four times a second (a recording holds when).
    let step = if shared.is_replay() { Duration::from_millis(50) } else { Duration::from_millis(250) };
    let mut ticks = tokio::time::interval(step);
    let mut last = std::time::Instant::now();
    let mut next_line = started;
    loop {
        ticks.tick().await;
        let now = std::time::Instant::now();
        let told = if shared.is_replay() { shared.replay_advance(now - last) } else { shared.tick() };
        last = now;
        for line in told {
            println!("*** {line}");
        }
        if every > 0.0 && now >= next_line {
            println!("{:>7.1}s  {}", (now - started).as_secs_f64(), shared.summary_line());
            next_line += Duration::from_secs_f64(every);
        }
    }
}
