//! The implementation under test: started fresh for each case from a
//! command template (`--spawn`), or one node already running (`--target`).

use crate::lab::Ports;
use std::fmt;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The timeouts the node under test was given (PROTOCOL section 7), and
/// the tool's tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat: Duration,
    pub waiter: Duration,
    pub looser_ask: Duration,
    pub looser_answer: Duration,
    pub generating: Duration,
    /// What a bound may be missed by (scheduling, a busy machine), and how
    /// soon an answer must come.
    pub slack: Duration,
    /// How long a node may take from its start to its first message.
    pub start: Duration,
}

impl Default for Timing {
    /// The protocol's defaults.
    fn default() -> Self {
        let ms = Duration::from_millis;
        Timing {
            heartbeat: ms(500),
            waiter: ms(2000),
            looser_ask: ms(500),
            looser_answer: ms(2000),
            generating: ms(2000),
            slack: ms(300),
            start: ms(5000),
        }
    }
}

impl Timing {
    /// Short timeouts for a quick run (and CI's): `heartbeat` 100 ms,
    /// `waiter` 400, `looser_ask` 100, `looser_answer` 400, `generating`
    /// 400, slack 150.
    pub fn quick() -> Self {
        let ms = Duration::from_millis;
        Timing {
            heartbeat: ms(100),
            waiter: ms(400),
            looser_ask: ms(100),
            looser_answer: ms(400),
            generating: ms(400),
            slack: ms(150),
            start: ms(5000),
        }
    }

    /// Section 8's recovery bound: `waiter + looser_answer + generating`.
    pub fn recovery(&self) -> Duration {
        self.waiter + self.looser_answer + self.generating
    }
}

/// Where the node under test runs in one case.
#[derive(Clone, Debug)]
pub struct Slot {
    pub id: String,
    pub host: Ipv4Addr,
    pub broadcast: Ipv4Addr,
    pub ports: Ports,
    pub timing: Timing,
}

/// The placeholders a `--spawn` template may use.
pub const PLACEHOLDERS: [&str; 11] = [
    "id",
    "host",
    "broadcast",
    "udp",
    "tcp",
    "monitor",
    "heartbeat_ms",
    "waiter_ms",
    "looser_ask_ms",
    "looser_answer_ms",
    "generating_ms",
];

impl Slot {
    fn value(&self, name: &str) -> Option<String> {
        let ms = |d: Duration| d.as_millis().to_string();
        let t = &self.timing;
        Some(match name {
            "id" => self.id.clone(),
            "host" => self.host.to_string(),
            "broadcast" => self.broadcast.to_string(),
            "udp" => self.ports.udp.to_string(),
            "tcp" => self.ports.tcp.to_string(),
            "monitor" => self.ports.monitor.to_string(),
            "heartbeat_ms" => ms(t.heartbeat),
            "waiter_ms" => ms(t.waiter),
            "looser_ask_ms" => ms(t.looser_ask),
            "looser_answer_ms" => ms(t.looser_answer),
            "generating_ms" => ms(t.generating),
            _ => return None,
        })
    }

    /// `template` with every `{placeholder}` replaced.
    pub fn fill(&self, template: &str) -> Result<String, SubjectError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}').ok_or_else(|| SubjectError::Template(rest[open..].to_owned()))?;
            let name = &rest[open + 1..open + close];
            out.push_str(&self.value(name).ok_or_else(|| SubjectError::Template(format!("{{{name}}}")))?);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Why the node under test could not be started.
#[derive(Debug)]
pub enum SubjectError {
    /// A `{...}` that names no placeholder.
    Template(String),
    /// The command could not be run.
    Spawn(std::io::Error),
    /// Anything else (an in-process subject's own reason).
    Other(String),
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectError::Template(what) => {
                write!(
                    f,
                    "the --spawn template has {what}, which is no placeholder; use {{{}}}",
                    PLACEHOLDERS.join("}, {")
                )
            }
            SubjectError::Spawn(e) => write!(f, "could not run the --spawn command: {e}"),
            SubjectError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SubjectError {}

/// An implementation under test.
pub trait Subject {
    /// Whether every case gets a node of its own; if not, cases that need
    /// a cold start are skipped.
    fn fresh(&self) -> bool;
    /// Start a node in `slot` (nothing, for a node already running).
    fn start(&mut self, slot: &Slot) -> Result<Box<dyn Instance>, SubjectError>;
    /// For the report's first line.
    fn describe(&self) -> String;
}

/// One running node under test; stopped when dropped.
pub trait Instance {
    /// `Err(how it ended)` once the node is gone.
    fn alive(&mut self) -> Result<(), String>;
    /// Where its output went, for a failure report.
    fn log(&self) -> Option<PathBuf> {
        None
    }
}

/// `--spawn`: a shell command per case, with placeholders.
pub struct Spawned {
    pub template: String,
    /// Each node's output goes to a file here.
    pub log_dir: PathBuf,
    started: u32,
}

impl Spawned {
    pub fn new(template: &str, log_dir: PathBuf) -> Self {
        Spawned { template: template.into(), log_dir, started: 0 }
    }
}

impl Subject for Spawned {
    fn fresh(&self) -> bool {
        true
    }

    fn start(&mut self, slot: &Slot) -> Result<Box<dyn Instance>, SubjectError> {
        let command = slot.fill(&self.template)?;
        self.started += 1;
        std::fs::create_dir_all(&self.log_dir).map_err(SubjectError::Spawn)?;
        let log = self.log_dir.join(format!("node-{}-{}.log", std::process::id(), self.started));
        let out = std::fs::File::create(&log).map_err(SubjectError::Spawn)?;
        let err = out.try_clone().map_err(SubjectError::Spawn)?;
        let child = Command::new("sh")
            .args(["-c", &command])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(SubjectError::Spawn)?;
        Ok(Box::new(Process { child, log }))
    }

    fn describe(&self) -> String {
        format!("--spawn '{}'", self.template)
    }
}

/// A spawned node: its process group is killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Instance for Process {
    fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("the node exited ({status})")),
            Err(e) => Err(format!("the node's state is unknown ({e})")),
        }
    }

    fn log(&self) -> Option<PathBuf> {
        Some(self.log.clone())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: signalling the process group we created.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// `--target`: a node that is already running (cases needing a cold start
/// are skipped).
pub struct Running {
    pub host: Ipv4Addr,
}

impl Subject for Running {
    fn fresh(&self) -> bool {
        false
    }

    fn start(&mut self, _slot: &Slot) -> Result<Box<dyn Instance>, SubjectError> {
        struct Nothing;
        impl Instance for Nothing {
            fn alive(&mut self) -> Result<(), String> {
                Ok(())
            }
        }
        Ok(Box::new(Nothing))
    }

    fn describe(&self) -> String {
        format!("--target {}", self.host)
    }
}
