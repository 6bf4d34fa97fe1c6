//! Persisting a node's expansion (`--data-dir`): written atomically (a
//! temporary file renamed over the old one) by a background thread, so the
//! state machine never waits for the disk. When holdings come faster than
//! the disk, intermediate states are skipped and the latest is written.

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
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} does not hold a number")]
    BadRevision(PathBuf),
}

/// Load (and verify) what a node saved in `dir`; an empty state if it
/// saved nothing yet. Blocking: it may compute digits to verify them.
pub fn load(dir: &Path, pi: &PiDigits) -> Result<(Saved, Option<usize>), LoadError> {
    std::fs::create_dir_all(dir).map_err(|e| LoadError::CreateDir(dir.to_owned(), e))?;
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

/// Hands states to the writer thread.
pub struct Persister {
    sender: mpsc::Sender<Saved>,
    last_len: usize,
    last_revision: u64,
}

impl Persister {
    /// Start the writer thread for `dir`.
    pub fn start(dir: PathBuf, initial: &Saved) -> Persister {
        let (sender, receiver) = mpsc::channel::<Saved>();
        std::thread::Builder::new()
            .name("persist".into())
            .spawn(move || {
                while let Ok(mut saved) = receiver.recv() {
                    // Skip to the newest state.
                    while let Ok(newer) = receiver.try_recv() {
                        saved = newer;
                    }
                    if let Err(e) = write_atomically(&dir, &saved) {
                        log::error!("cannot save the expansion in {}: {e}", dir.display());
                    }
                }
            })
            .expect("spawn the persist thread");
        Persister { sender, last_len: initial.expansion.len(), last_revision: initial.own_revision }
    }

    /// Save this state if it differs from the last one saved.
    pub fn save(&mut self, expansion: &Expansion, own_revision: u64) {
        if expansion.len() == self.last_len && own_revision == self.last_revision {
            return;
        }
        self.last_len = expansion.len();
        self.last_revision = own_revision;
        let _ = self.sender.send(Saved { expansion: expansion.clone(), own_revision });
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
