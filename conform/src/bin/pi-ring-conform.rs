//! `pi-ring-conform`: the command line around the library.

use clap::Parser;
use pi_ring_conform::lab::Ports;
use pi_ring_conform::report::{case_lines, section_line, Report};
use pi_ring_conform::subject::{Running, Spawned, Subject, Timing, PLACEHOLDERS};
use pi_ring_conform::{cases, run, select, Plan};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Test an implementation of the pi-ring protocol (docs/PROTOCOL.md) from outside, rule by rule",
    long_about = "Test an implementation of the pi-ring protocol (docs/PROTOCOL.md) from outside, rule by rule.\n\n\
The tool plays every other member of the node's ring: scripted peers on loopback addresses of \
their own, speaking UDP and TCP as the protocol says, and a monitor on the monitoring port. \
Cases are numbered after the protocol's sections; each checks one rule and says, when it fails, \
what it expected and what it observed.",
    after_help = "Examples:\n  \
pi-ring-conform --spawn 'pi-ring-node --id {id} --bind {host} --udp-port {udp} --tcp-port {tcp} --monitor-port {monitor} \
--heartbeat-ms {heartbeat_ms} --waiter-ms {waiter_ms} --looser-ask-ms {looser_ask_ms} --looser-answer-ms {looser_answer_ms} \
--generating-ms {generating_ms}'\n  \
pi-ring-conform --spawn '...' 7          (section 7 only)\n  \
pi-ring-conform --spawn '...' 4.2 7.11   (two cases)\n  \
pi-ring-conform --list --strict\n\n\
Exit status: 0 when every selected case passed, 1 when one failed, 2 for a command line that cannot work."
)]
struct Args {
    /// Sections (`7`), case ids (`7.3`) or case names (`owner-answers-claim`) to run [default: all]
    #[arg(value_name = "CASE")]
    cases: Vec<String>,

    /// Start the implementation for each case with this shell command. Placeholders: {id}, {host}, {broadcast}, {udp}, {tcp}, {monitor}, {heartbeat_ms}, {waiter_ms}, {looser_ask_ms}, {looser_answer_ms}, {generating_ms}
    #[arg(long, value_name = "COMMAND", conflicts_with = "target", required_unless_present_any = ["target", "list"])]
    spawn: Option<String>,

    /// Test a node already running at this address (cases that need a cold start are skipped); it must heart-beat or search so that its id is heard
    #[arg(long, value_name = "IPV4")]
    target: Option<Ipv4Addr>,

    /// Also run the optional cases and pi-ring's own additions (section 10)
    #[arg(long)]
    strict: bool,

    /// List the cases (with --strict, all of them) and exit
    #[arg(long)]
    list: bool,

    /// The implementation's `heartbeat` (ms)
    #[arg(long, value_name = "MS", default_value_t = 500)]
    heartbeat_ms: u64,
    /// The implementation's `waiter` (ms)
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    waiter_ms: u64,
    /// The implementation's `looser_ask` (ms)
    #[arg(long, value_name = "MS", default_value_t = 500)]
    looser_ask_ms: u64,
    /// The implementation's `looser_answer` (ms)
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    looser_answer_ms: u64,
    /// The implementation's `generating` (ms)
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    generating_ms: u64,
    /// How far a timed bound may be missed, and how soon an answer must come (ms)
    #[arg(long, value_name = "MS", default_value_t = 300)]
    slack_ms: u64,
    /// How long a spawned node may take to send its first broadcast (ms)
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    start_ms: u64,

    /// Broadcast address of the ring
    #[arg(long, value_name = "IPV4", default_value = "127.255.255.255")]
    broadcast: Ipv4Addr,
    /// Run the peers and the spawned nodes in a network namespace of their own (needs root and `ip`), whose only interface is the loopback, also its default route: broadcasts to 255.255.255.255 are heard there (say --broadcast 255.255.255.255 if the node uses it), and nothing the node sends can reach a real network
    #[arg(long, conflicts_with = "target")]
    netns: bool,
    /// With --target: the ring's UDP port
    #[arg(long, default_value_t = 23912)]
    udp_port: u16,
    /// With --target: the ring's TCP port
    #[arg(long, default_value_t = 8239)]
    tcp_port: u16,
    /// With --target: the monitoring port
    #[arg(long, default_value_t = 23937)]
    monitor_port: u16,

    /// Spawned nodes' output goes here (kept for failed cases)
    #[arg(long, value_name = "DIR", default_value_os_t = std::env::temp_dir().join("pi-ring-conform"))]
    log_dir: PathBuf,
    /// Also write the report as JSON to this file
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the report as JUnit XML to this file
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cases = match select(&args.cases, args.strict) {
        Ok(cases) => cases,
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        let mut section = "";
        for case in &cases {
            if case.section() != section {
                section = case.section();
                print!("{}", section_line(case));
            }
            let level = if case.level == cases::Level::Required {
                String::new()
            } else {
                format!(" ({})", case.level.as_str())
            };
            println!("  {} {}{level}: {}", case.id, case.slug, case.rule);
        }
        return ExitCode::SUCCESS;
    }
    let ms = Duration::from_millis;
    let timing = Timing {
        heartbeat: ms(args.heartbeat_ms),
        waiter: ms(args.waiter_ms),
        looser_ask: ms(args.looser_ask_ms),
        looser_answer: ms(args.looser_answer_ms),
        generating: ms(args.generating_ms),
        slack: ms(args.slack_ms),
        start: ms(args.start_ms),
    };
    if args.netns {
        // Before any thread or process starts: they all belong in it.
        if let Err(e) = pi_ring_conform::netns::enter_private_network() {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    let mut subject: Box<dyn Subject> = match (&args.spawn, args.target) {
        (Some(template), _) => {
            if let Some(bad) = check_template(template) {
                eprintln!("error: {bad}");
                return ExitCode::from(2);
            }
            Box::new(Spawned::new(template, args.log_dir.clone()))
        }
        (None, Some(host)) => Box::new(Running { host }),
        (None, None) => unreachable!("clap requires --spawn or --target"),
    };
    let target =
        args.target.map(|host| (host, Ports { udp: args.udp_port, tcp: args.tcp_port, monitor: args.monitor_port }));
    let plan = Plan { timing, broadcast: args.broadcast, target };
    print!("{}", Report::head(&subject.describe(), &timing));
    if args.netns {
        println!("in a network namespace of its own (--netns), broadcasts to {}", args.broadcast);
    }
    let mut section = "";
    let report = run(subject.as_mut(), &cases, &plan, |result| {
        if result.case.section() != section {
            section = result.case.section();
            print!("{}", section_line(result.case));
        }
        print!("{}", case_lines(result));
        let _ = std::io::stdout().flush();
    });
    println!("\n{}", report.last_line());
    let mut written = true;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json()).expect("JSON");
        written &= write(path, &text);
    }
    if let Some(path) = &args.junit {
        written &= write(path, &report.junit());
    }
    if report.failed() == 0 && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A template whose placeholders the tool does not know, said plainly.
fn check_template(template: &str) -> Option<String> {
    let slot = pi_ring_conform::subject::Slot {
        id: "x".into(),
        host: Ipv4Addr::LOCALHOST,
        broadcast: Ipv4Addr::BROADCAST,
        ports: Ports { udp: 1, tcp: 2, monitor: 3 },
        timing: Timing::default(),
    };
    match slot.fill(template) {
        Ok(_) if !template.contains("{host}") => Some(format!(
            "the --spawn template has no {{host}}: the node must listen on the address the tool gives it (placeholders: {})",
            PLACEHOLDERS.join(", ")
        )),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

fn write(path: &PathBuf, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            false
        }
    }
}
