//! Recordings of what a monitor heard, for replays (`pi-ring-monitor
//! --record FILE`, `--replay FILE`).
//!
//! A recording is JSON lines. The first line of each file says what it is:
//!
//! ```text
//! {"pi_ring_recording":1,"started_unix_ms":1764576000123,"part":0,"version":"pi-ring 0.1.0"}
//! ```
//!
//! Then one object per line, in the order the monitor took them, each with
//! `t_ns`, nanoseconds since the monitor started:
//!
//! - `{"t_ns":..,"port":"ring"|"monitor","from":"10.0.0.2","msg":{..}}`: a
//!   message heard (MY_STATE on the monitoring port, the ring's broadcasts),
//!   as the monitor decoded it;
//! - `{"t_ns":..,"tick":true}`: the monitor looked for silent nodes (four
//!   times a second);
//! - `{"t_ns":..,"incident":{..}}`: its conclusion, once final (the same
//!   object as `/api/incidents` serves).
//!
//! A replay applies the messages and ticks at their times to a fresh view,
//! so it reaches the same conclusions at the same moments; the incident
//! lines are for people and tools reading the file.
//!
//! A recording is bounded: when a file reaches its size limit it is renamed
//! `FILE.1` (older parts shift to `.2`, ...; the oldest beyond `keep` is
//! deleted) and a new `FILE` begins with a header whose `part` counts on.
//! Replaying a later part alone starts from what that part holds.

use crate::protocol::{Message, RawMessage};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The format's version, in every header.
pub const FORMAT: u64 = 1;

/// The largest line a recording may hold (a MY_STATE is well under).
const MAX_LINE: usize = 1 << 20;

/// What went wrong with a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a pi-ring recording (its first line is not a recording header)")]
    NotARecording { path: PathBuf },
    #[error("{path}: recording format {found}, this monitor reads format {FORMAT}")]
    Format { path: PathBuf, found: u64 },
    #[error("{path} line {line}: {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
    #[error("{path} and {other} are parts of different recordings (started at different times)")]
    Mixed { path: PathBuf, other: PathBuf },
}

/// Which port a message was heard on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    Ring,
    Monitor,
}

impl Heard {
    fn name(self) -> &'static str {
        match self {
            Heard::Ring => "ring",
            Heard::Monitor => "monitor",
        }
    }
}

/// One line of a recording, after the header.
#[derive(Clone, Debug)]
pub enum Entry {
    Message { at: Duration, port: Heard, from: Ipv4Addr, message: Message },
    Tick { at: Duration },
    Incident { at: Duration, incident: Value },
}

impl Entry {
    pub fn at(&self) -> Duration {
        match self {
            Entry::Message { at, .. } | Entry::Tick { at } | Entry::Incident { at, .. } => *at,
        }
    }
}

/// Appends to a recording, rotating it at its size limit.
pub struct Recorder {
    path: PathBuf,
    file: BufWriter<File>,
    written: u64,
    max_bytes: u64,
    keep: usize,
    part: u64,
    started_unix_ms: u64,
    /// The first write error, said once; recording then stops.
    failed: bool,
}

impl Recorder {
    /// Start recording to `path` (replacing it), files of at most
    /// `max_bytes`, keeping `keep` older parts.
    pub fn create(path: &Path, max_bytes: u64, keep: usize, started_unix_ms: u64) -> Result<Self, RecordingError> {
        let file = open_new(path)?;
        let mut recorder = Recorder {
            path: path.to_owned(),
            file,
            written: 0,
            max_bytes: max_bytes.max(4096),
            keep,
            part: 0,
            started_unix_ms,
            failed: false,
        };
        recorder.header();
        Ok(recorder)
    }

    /// The file being written (older parts are `PATH.1`, `PATH.2`, ...).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn header(&mut self) {
        let line = serde_json::json!({
            "pi_ring_recording": FORMAT,
            "started_unix_ms": self.started_unix_ms,
            "part": self.part,
            "version": crate::logging::VERSION,
        });
        self.line(line.to_string().as_bytes());
    }

    /// A message heard at `at` (since the monitor started).
    pub fn message(&mut self, at: Duration, port: Heard, from: Ipv4Addr, message: &Message) {
        let mut line =
            format!("{{\"t_ns\":{},\"port\":\"{}\",\"from\":\"{from}\",\"msg\":", at.as_nanos(), port.name())
                .into_bytes();
        line.extend_from_slice(&message.encode());
        line.push(b'}');
        self.line(&line);
    }

    pub fn tick(&mut self, at: Duration) {
        self.line(format!("{{\"t_ns\":{},\"tick\":true}}", at.as_nanos()).as_bytes());
    }

    pub fn incident(&mut self, at: Duration, incident: &Value) {
        self.line(format!("{{\"t_ns\":{},\"incident\":{incident}}}", at.as_nanos()).as_bytes());
    }

    /// Flush what is buffered (the monitor does so every tick, so a
    /// recording is at most a quarter second behind).
    pub fn flush(&mut self) {
        if !self.failed {
            if let Err(e) = self.file.flush() {
                self.fail(&e);
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        if self.failed {
            return;
        }
        if self.written > 0 && self.written + line.len() as u64 + 1 > self.max_bytes {
            if let Err(e) = self.rotate() {
                self.fail(&e);
                return;
            }
        }
        let result = self.file.write_all(line).and_then(|()| self.file.write_all(b"\n"));
        match result {
            Ok(()) => self.written += line.len() as u64 + 1,
            Err(e) => self.fail(&e),
        }
    }

    fn fail(&mut self, e: &dyn std::fmt::Display) {
        self.failed = true;
        log::error!("recording to {} stopped: {e}", self.path.display());
    }

    /// `FILE` becomes `FILE.1`, and so on; a new part begins.
    fn rotate(&mut self) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io { path: self.path.clone(), source };
        self.file.flush().map_err(io)?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            std::fs::remove_file(&self.path).map_err(io)?;
        } else {
            let _ = std::fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1)).map_err(io)?;
        }
        self.file = open_new(&self.path)?;
        self.written = 0;
        self.part += 1;
        log::info!("recording: {} reached {} bytes; part {} begins", self.path.display(), self.max_bytes, self.part);
        self.header();
        Ok(())
    }
}

fn open_new(path: &Path) -> Result<BufWriter<File>, RecordingError> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|source| RecordingError::Io { path: path.to_owned(), source })?;
    Ok(BufWriter::with_capacity(64 * 1024, file))
}

/// A recording read back: its start and its entries in order.
#[derive(Debug)]
pub struct Recording {
    pub started_unix_ms: u64,
    pub entries: Vec<Entry>,
    /// Lines skipped because they could not be read (said in the log).
    pub skipped: usize,
}

impl Recording {
    /// Read the parts `paths`, oldest first (`FILE.2 FILE.1 FILE`).
    pub fn load(paths: &[PathBuf]) -> Result<Recording, RecordingError> {
        let mut recording = Recording { started_unix_ms: 0, entries: Vec::new(), skipped: 0 };
        let mut first: Option<(PathBuf, u64)> = None;
        for path in paths {
            let started = recording.read_part(path)?;
            match &first {
                Some((other, at)) if *at != started => {
                    return Err(RecordingError::Mixed { path: path.clone(), other: other.clone() })
                }
                Some(_) => {}
                None => first = Some((path.clone(), started)),
            }
            recording.started_unix_ms = started;
        }
        // Parts are in order, and lines within them; a stable sort keeps
        // the order of lines of equal time.
        recording.entries.sort_by_key(Entry::at);
        Ok(recording)
    }

    fn read_part(&mut self, path: &Path) -> Result<u64, RecordingError> {
        let io = |source| RecordingError::Io { path: path.to_owned(), source };
        let mut reader = BufReader::new(File::open(path).map_err(io)?);
        let mut header = String::new();
        reader.by_ref().take(MAX_LINE as u64).read_line(&mut header).map_err(io)?;
        let header: Value =
            serde_json::from_str(&header).map_err(|_| RecordingError::NotARecording { path: path.to_owned() })?;
        let format = header.get("pi_ring_recording").and_then(Value::as_u64);
        let Some(format) = format else { return Err(RecordingError::NotARecording { path: path.to_owned() }) };
        if format != FORMAT {
            return Err(RecordingError::Format { path: path.to_owned(), found: format });
        }
        let started = header.get("started_unix_ms").and_then(Value::as_u64).unwrap_or(0);
        let mut line = Vec::new();
        let mut number = 1;
        loop {
            line.clear();
            let n = reader.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut line).map_err(io)?;
            if n == 0 {
                break;
            }
            number += 1;
            match parse_line(&line) {
                Ok(Some(entry)) => self.entries.push(entry),
                Ok(None) => {}
                Err(reason) => {
                    // A recording cut short by a crash ends with half a
                    // line: say so and go on.
                    self.skipped += 1;
                    log::warn!("{} line {number}: skipped: {reason}", path.display());
                }
            }
        }
        Ok(started)
    }

    /// How long the recording lasts (its last entry's time).
    pub fn duration(&self) -> Duration {
        self.entries.last().map_or(Duration::ZERO, Entry::at)
    }
}

fn parse_line(line: &[u8]) -> Result<Option<Entry>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("pi_ring_recording").is_some() {
        return Ok(None); // a header within (parts concatenated by hand)
    }
    let at = value.get("t_ns").and_then(Value::as_u64).ok_or("no t_ns")?;
    let at = Duration::from_nanos(at);
    if value.get("tick").is_some() {
        return Ok(Some(Entry::Tick { at }));
    }
    if let Some(incident) = value.get("incident") {
        return Ok(Some(Entry::Incident { at, incident: incident.clone() }));
    }
    let port = match value.get("port").and_then(Value::as_str) {
        Some("ring") => Heard::Ring,
        Some("monitor") => Heard::Monitor,
        other => return Err(format!("unknown port {other:?}")),
    };
    let from: Ipv4Addr = value.get("from").and_then(Value::as_str).and_then(|s| s.parse().ok()).ok_or("no from")?;
    let msg = value.get("msg").ok_or("no msg")?.to_string();
    let raw = RawMessage::decode(msg.as_bytes(), MAX_LINE).map_err(|e| format!("msg: {e}"))?;
    let message = raw.without_data().map_err(|_| "msg: a TAKE_TOKEN, which monitors never hear".to_string())?;
    Ok(Some(Entry::Message { at, port, from, message }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Body, Token};

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pi-ring-record-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("rec.jsonl")
    }

    fn heartbeat(id: &str) -> Message {
        Message::new(id, Body::TokenIsHere { token: Token::new(22, id, 1) })
    }

    #[test]
    fn what_is_recorded_reads_back_in_order() {
        let path = temp("read");
        let mut r = Recorder::create(&path, 1 << 20, 1, 1_000).unwrap();
        let from = Ipv4Addr::new(127, 0, 0, 2);
        r.message(Duration::from_millis(5), Heard::Ring, from, &heartbeat("a"));
        r.tick(Duration::from_millis(250));
        r.incident(Duration::from_millis(251), &serde_json::json!({"text": "a went silent"}));
        r.flush();
        let rec = Recording::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(rec.started_unix_ms, 1_000);
        assert_eq!(rec.entries.len(), 3);
        match &rec.entries[0] {
            Entry::Message { at, port, from: f, message } => {
                assert_eq!((*at, *port, *f), (Duration::from_millis(5), Heard::Ring, from));
                assert_eq!(message, &heartbeat("a"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(rec.entries[1], Entry::Tick { .. }));
        assert_eq!(rec.duration(), Duration::from_millis(251));
    }

    #[test]
    fn a_recording_rotates_at_its_limit_and_keeps_its_older_parts() {
        let path = temp("rotate");
        let mut r = Recorder::create(&path, 4096, 2, 7).unwrap();
        for i in 0..300u64 {
            r.message(Duration::from_millis(i), Heard::Ring, Ipv4Addr::LOCALHOST, &heartbeat("node"));
        }
        r.flush();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let parts: Vec<PathBuf> =
            [".2", ".1", ""].iter().map(|s| PathBuf::from(format!("{}{s}", path.display()))).collect();
        for part in &parts {
            assert!(size(part) > 0 && size(part) <= 4096, "{} has {} bytes", part.display(), size(part));
        }
        assert!(!PathBuf::from(format!("{}.3", path.display())).exists(), "only 2 older parts are kept");
        // The parts read back in order, the oldest ones gone.
        let rec = Recording::load(&parts).unwrap();
        let times: Vec<Duration> = rec.entries.iter().map(Entry::at).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(times.last(), Some(&Duration::from_millis(299)));
        assert!(times[0] > Duration::ZERO, "the oldest part was deleted");
    }

    #[test]
    fn a_file_that_is_not_a_recording_is_refused_and_a_cut_line_skipped() {
        let path = temp("bad");
        std::fs::write(&path, "hello\n").unwrap();
        assert!(matches!(Recording::load(std::slice::from_ref(&path)), Err(RecordingError::NotARecording { .. })));
        std::fs::write(
            &path,
            "{\"pi_ring_recording\":1,\"started_unix_ms\":5}\n{\"t_ns\":1,\"tick\":true}\n{\"t_ns\":2,\"po",
        )
        .unwrap();
        let rec = Recording::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!((rec.entries.len(), rec.skipped), (1, 1));
    }
}
