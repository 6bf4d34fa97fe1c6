//! Persisting a node's expansion (`--data-dir`): written atomically (a
//! temporary file renamed over the old one) by a background thread, so the
//! state machine never waits for the disk. The latest state is written at
//! most once per [`SAVE_EVERY`] (intermediate ones are skipped): a ring at
//! full speed would otherwise rewrite ten megabytes and sync them to disk
//! back to back, on every node, at a cost that grows with the expansion. A
//! planned stop writes the latest state at once ([`Persister::flush`]); a
//! node killed outright resumes from at most a second earlier (the ring
//! has the rest).
//!
//! The directory is checked at start (created if missing, and written to
//! once), so a node that could never save refuses to start. If saving
//! fails later (disk full, permissions changed), the node carries on
//! without saving: the ring needs no disk, only a restart of this node
//! would resume from less. It says so once, then once a minute with the
//! count of failed saves, and again when saving works.

use crate::pi::{Expansion, PiDigits};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

const EXPANSION_FILE: &str = "expansion.txt";
const REVISION_FILE: &str = "revision.txt";

/// What a node keeps across restarts.
#[derive(Clone, Debug)]
pub struct Saved {
    pub expansion: Expansion,
    /// Tokens this node generated (so revisions are not reused).
    pub own_revision: u64,
}

/// Why the saved state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot create the data directory {0}: {1}")]
    CreateDir(PathBuf, std::io::Error),
    #[error("the data directory {0} is a file; give --data-dir a directory (it is created if missing)")]
    NotADirectory(PathBuf),
    #[error("cannot write in the data directory {0}: {1}; give --data-dir a directory this user can write")]
    NotWritable(PathBuf, std::io::Error),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} does not hold a number")]
    BadRevision(PathBuf),
}

/// Load (and verify) what a node saved in `dir`; an empty state if it
/// saved nothing yet. Blocking: it may compute digits to verify them.
pub fn load(dir: &Path, pi: &PiDigits) -> Result<(Saved, Option<usize>), LoadError> {
    check_dir(dir)?;
    let read = |name: &str| -> Result<Option<String>, LoadError> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LoadError::Read(path, e)),
        }
    };
    let (expansion, wrong_from) = match read(EXPANSION_FILE)? {
        Some(text) => {
            let verified = pi.verify(text.trim_end());
            let wrong = (!verified.is_intact()).then_some(verified.expansion.len());
            (verified.expansion, wrong)
        }
        None => (Expansion::empty(), None),
    };
    let own_revision = match read(REVISION_FILE)? {
        Some(text) => text.trim().parse().map_err(|_| LoadError::BadRevision(dir.join(REVISION_FILE)))?,
        None => 0,
    };
    Ok((Saved { expansion, own_revision }, wrong_from))
}

/// Create `dir` if needed and prove it writable: a node that could never
/// save must not start as if it could.
pub fn check_dir(dir: &Path) -> Result<(), LoadError> {
    if dir.exists() && !dir.is_dir() {
        return Err(LoadError::NotADirectory(dir.to_owned()));
    }
    std::fs::create_dir_all(dir).map_err(|e| LoadError::CreateDir(dir.to_owned(), e))?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"pi-ring").map_err(|e| LoadError::NotWritable(dir.to_owned(), e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// How often a persistent failure to save is repeated in the log.
const FAILURE_REPEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// Says what saving does: the first failure, a reminder a minute, and the
/// recovery (not one line per failed save).
#[derive(Debug, Default)]
struct FailureLog {
    failing_since: Option<std::time::Instant>,
    last_said: Option<std::time::Instant>,
    failures: u64,
}

impl FailureLog {
    fn failed(&mut self, dir: &Path, e: &std::io::Error, now: std::time::Instant) {
        self.failures += 1;
        if self.failing_since.is_none() {
            self.failing_since = Some(now);
            self.last_said = Some(now);
            log::error!(
                "cannot save the expansion in {}: {e}; carrying on without saving (the ring is not affected, \
                 but a restart of this node resumes from what was saved last)",
                dir.display()
            );
        } else if self.last_said.is_some_and(|at| now.duration_since(at) >= FAILURE_REPEAT) {
            self.last_said = Some(now);
            log::error!("still cannot save the expansion in {}: {e} ({} failed saves)", dir.display(), self.failures);
        }
    }

    fn saved(&mut self, dir: &Path) {
        if self.failing_since.take().is_some() {
            log::info!("saving the expansion in {} works again (after {} failed saves)", dir.display(), self.failures);
            self.failures = 0;
        }
    }
}

/// The latest state is written at most this often.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the writer thread is told.
enum Order {
    Save(Saved),
    /// Write the latest state now, then say so.
    Flush(mpsc::Sender<()>),
}

/// Hands states to the writer thread.
pub struct Persister {
    sender: mpsc::Sender<Order>,
    last_len: usize,
    last_revision: u64,
}

impl Persister {
    /// Start the writer thread for `dir`.
    pub fn start(dir: PathBuf, initial: &Saved) -> Persister {
        Persister::start_every(dir, initial, SAVE_EVERY)
    }

    /// Start the writer thread for `dir`, writing at most once per `every`.
    fn start_every(dir: PathBuf, initial: &Saved, every: std::time::Duration) -> Persister {
        let (sender, receiver) = mpsc::channel::<Order>();
        std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || {
                let mut failures = FailureLog::default();
                let mut write = |saved: &Saved| match write_atomically(&dir, saved) {
                    Ok(()) => failures.saved(&dir),
                    Err(e) => failures.failed(&dir, &e, std::time::Instant::now()),
                };
                let mut pending: Option<Saved> = None;
                let mut next = std::time::Instant::now();
                loop {
                    let order = match &pending {
                        Some(_) => receiver.recv_timeout(next.saturating_duration_since(std::time::Instant::now())),
                        None => receiver.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                    };
                    match order {
                        Ok(Order::Save(saved)) => pending = Some(saved),
                        Ok(Order::Flush(done)) => {
                            if let Some(saved) = pending.take() {
                                write(&saved);
                                next = std::time::Instant::now() + every;
                            }
                            let _ = done.send(());
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            if let Some(saved) = pending.take() {
                                write(&saved);
                            }
                            return;
                        }
                    }
                    let now = std::time::Instant::now();
                    if now >= next {
                        if let Some(saved) = pending.take() {
                            write(&saved);
                            next = now + every;
                        }
                    }
                }
            })
            .expect("spawn the persist thread");
        Persister { sender, last_len: initial.expansion.len(), last_revision: initial.own_revision }
    }

    /// Write the latest state now and wait until it is written (a planned
    /// stop).
    pub fn flush(&mut self) {
        let (done, written) = mpsc::channel();
        if self.sender.send(Order::Flush(done)).is_ok() {
            let _ = written.recv();
        }
    }

    /// Save this state if it differs from the last one saved.
    pub fn save(&mut self, expansion: &Expansion, own_revision: u64) {
        if expansion.len() == self.last_len && own_revision == self.last_revision {
            return;
        }
        self.last_len = expansion.len();
        self.last_revision = own_revision;
        let _ = self.sender.send(Order::Save(Saved { expansion: expansion.clone(), own_revision }));
    }
}

fn write_atomically(dir: &Path, saved: &Saved) -> std::io::Result<()> {
    let write = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&tmp, dir.join(name))
    };
    write(REVISION_FILE, saved.own_revision.to_string().as_bytes())?;
    write(EXPANSION_FILE, saved.expansion.as_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_disk_is_reported_once_then_once_a_minute() {
        let mut log = FailureLog::default();
        let dir = Path::new("/nowhere");
        let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let t0 = std::time::Instant::now();
        log.failed(dir, &e, t0);
        let first = log.last_said;
        for i in 1..1000 {
            log.failed(dir, &e, t0 + std::time::Duration::from_millis(i));
        }
        assert_eq!(log.last_said, first, "repeated within the minute");
        log.failed(dir, &e, t0 + FAILURE_REPEAT);
        assert_eq!(log.last_said, Some(t0 + FAILURE_REPEAT));
        assert_eq!(log.failures, 1001);
        log.saved(dir);
        assert!(log.failing_since.is_none());
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_refused() {
        let file = std::env::temp_dir().join(format!("pi-ring-not-a-dir-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        let result = check_dir(&file);
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(result, Err(LoadError::NotADirectory(_))), "{result:?}");
    }

    #[test]
    fn states_are_written_at_most_once_a_period_and_at_once_on_a_planned_stop() {
        let dir = std::env::temp_dir().join(format!("pi-ring-persist-paced-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pi = PiDigits::new(10_000);
        let at = |len: usize| Saved { expansion: pi.expansion(len), own_revision: 1 };
        let saved = || std::fs::read_to_string(dir.join(EXPANSION_FILE)).unwrap_or_default().len();
        let mut persister = Persister::start_every(dir.clone(), &at(0), std::time::Duration::from_secs(3600));
        persister.save(&at(102).expansion, 1);
        persister.flush();
        assert_eq!(saved(), 102);
        // Within the period: nothing written, however many holdings.
        for len in (122..=2_002).step_by(20) {
            persister.save(&at(len).expansion, 1);
        }
        persister.save(&at(2_022).expansion, 1);
        assert_eq!(saved(), 102, "nothing written within the period");
        persister.flush();
        assert_eq!(saved(), 2_022, "the latest, at once on a planned stop");
        drop(persister);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn saves_and_loads_a_verified_expansion() {
        let dir = std::env::temp_dir().join(format!("pi-ring-persist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pi = PiDigits::new(10_000);
        let (empty, wrong) = load(&dir, &pi).unwrap();
        assert!(empty.expansion.is_empty() && wrong.is_none());
        let saved = Saved { expansion: pi.expansion(1002), own_revision: 7 };
        write_atomically(&dir, &saved).unwrap();
        let (loaded, wrong) = load(&dir, &pi).unwrap();
        assert_eq!(loaded.expansion.len(), 1002);
        assert_eq!(loaded.own_revision, 7);
        assert!(wrong.is_none());
        // A corrupted file keeps its correct prefix.
        std::fs::write(dir.join(EXPANSION_FILE), "3,14159265358979399999").unwrap();
        let (loaded, wrong) = load(&dir, &pi).unwrap();
        assert_eq!(loaded.expansion.as_str(), "3,141592653589793");
        assert_eq!(wrong, Some(17));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
