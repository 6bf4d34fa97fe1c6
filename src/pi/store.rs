//! Digits shared by the nodes of one user on one host: a directory of
//! files `pi-v1-N.txt`, each the first N fractional digits of pi, so that
//! five (or 250) nodes on one machine compute each doubling once, not once
//! each.
//!
//! Trust: the directory must belong to the user the node runs as and be
//! closed to everyone else (mode 0700, not a symbolic link); otherwise the
//! node does not share. Anything running as that user could change the
//! node's memory anyway, so sharing adds no one to trust (SECURITY.md).
//! Digits read from a file are checked for form and against every digit
//! the node already has; the ones beyond are taken as they are.
//!
//! Coordination: a computation that the ring waits for takes an exclusive
//! `flock` on `compute.lock` while it computes and writes, so that the
//! other nodes wait for it rather than compute the same digits beside it;
//! a node waits at most a bounded time (a stopped process may hold the
//! lock), then computes itself. Files are written whole and renamed into
//! place, so a reader never sees a partial file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The files' names: the format's version, then the digit count.
const PREFIX: &str = "pi-v1-";
const SUFFIX: &str = ".txt";

/// Directory entries looked at, at most (a directory full of junk costs
/// nothing beyond that).
const MAX_ENTRIES: usize = 64;

/// Why a directory cannot be shared.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use {path} for shared digits: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a directory of this user's closed to others (it must be owned by uid {uid}, mode 0700, and not a symbolic link)")]
    NotPrivate { path: PathBuf, uid: u32 },
}

/// A host's shared digits.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

/// An exclusive hold on the right to compute; released when dropped.
pub struct ComputeLock {
    _file: File,
}

impl Store {
    /// The default directory: `$XDG_RUNTIME_DIR/pi-ring-digits` (a user's
    /// own), else `/dev/shm/pi-ring-digits-UID`, else the temporary
    /// directory's `pi-ring-digits-UID`.
    pub fn default_dir() -> PathBuf {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
            if runtime.is_absolute() && runtime.is_dir() {
                return runtime.join("pi-ring-digits");
            }
        }
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        base.join(format!("pi-ring-digits-{uid}"))
    }

    /// Open (creating it, mode 0700) the directory `dir`, refusing one that
    /// is not this user's alone.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io { path: dir.to_path_buf(), source };
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let meta = fs::symlink_metadata(dir).map_err(io)?;
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return Err(StoreError::NotPrivate { path: dir.to_path_buf(), uid });
        }
        Ok(Store { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The first `digits` fractional digits, if a file holds that many;
    /// `None` otherwise, or when what it holds is not digits.
    pub fn load(&self, digits: usize) -> Option<String> {
        let (count, path) = self.files().into_iter().filter(|(n, _)| *n >= digits).min_by_key(|(n, _)| *n)?;
        let mut text = String::with_capacity(digits);
        let read = File::open(&path).and_then(|f| f.take(digits as u64).read_to_string(&mut text));
        match read {
            Ok(n) if n == digits && text.bytes().all(|b| b.is_ascii_digit()) => Some(text),
            Ok(_) | Err(_) => {
                log::warn!(
                    "pi: {} does not hold {digits} digits as its name says ({count}); ignoring it",
                    path.display()
                );
                None
            }
        }
    }

    /// Keep `digits` (fractional digits of pi, just computed) for the other
    /// nodes: written whole, then renamed into place (over a file of the
    /// same size, which may be one this node refused); smaller files go.
    pub fn save(&self, digits: &str) {
        let count = digits.len();
        let path = self.dir.join(format!("{PREFIX}{count}{SUFFIX}"));
        let temporary = self.dir.join(format!(".{PREFIX}{count}.{}", std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut f| f.write_all(digits.as_bytes()))
            .and_then(|()| fs::rename(&temporary, &path));
        if let Err(e) = written {
            log::warn!("pi: cannot share {count} digits in {}: {e}", self.dir.display());
            let _ = fs::remove_file(&temporary);
            return;
        }
        for (n, smaller) in self.files() {
            if n < count {
                let _ = fs::remove_file(smaller);
            }
        }
    }

    /// The right to compute for the host, waiting at most `patience` for a
    /// node that computes now; `None` if it did not finish by then (the
    /// caller computes anyway) or the lock file cannot be had.
    pub fn lock(&self, patience: Duration) -> Option<ComputeLock> {
        let path = self.dir.join("compute.lock");
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).ok()?;
        let deadline = Instant::now() + patience;
        // Looked at again after 5 ms, then ever less often (at most every
        // 100 ms): 250 nodes waiting on one machine must not spin.
        let mut pause = Duration::from_millis(5);
        loop {
            // SAFETY: the descriptor is open for as long as `file` lives.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Some(ComputeLock { _file: file });
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The digit files: (count, path), at most [`MAX_ENTRIES`] looked at.
    fn files(&self) -> Vec<(usize, PathBuf)> {
        let Ok(entries) = fs::read_dir(&self.dir) else { return Vec::new() };
        entries
            .take(MAX_ENTRIES)
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let count = name.to_str()?.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok()?;
                Some((count, entry.path()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pi-ring-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn digits_saved_by_one_are_loaded_by_another_as_a_prefix() {
        let dir = scratch("share");
        let store = Store::open(&dir).unwrap();
        assert_eq!(store.load(10), None);
        store.save("1415926535");
        store.save("14159265358979323846");
        let other = Store::open(&dir).unwrap();
        assert_eq!(other.load(5).as_deref(), Some("14159"));
        assert_eq!(other.load(20).as_deref(), Some("14159265358979323846"));
        assert_eq!(other.load(21), None);
        // The smaller file went.
        assert_eq!(other.files().len(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_what_its_name_says_is_ignored() {
        let dir = scratch("junk");
        let store = Store::open(&dir).unwrap();
        fs::write(dir.join("pi-v1-30.txt"), "14159x6535").unwrap();
        assert_eq!(store.load(10), None, "not digits");
        assert_eq!(store.load(20), None, "too short");
        // Only the digits asked for are read.
        fs::write(dir.join("pi-v1-30.txt"), "1415926535x").unwrap();
        assert_eq!(store.load(10).as_deref(), Some("1415926535"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        let dir = scratch("open");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(matches!(Store::open(&dir), Err(StoreError::NotPrivate { .. })));
        let link = scratch("link");
        std::os::unix::fs::symlink(std::env::temp_dir(), &link).unwrap();
        assert!(matches!(Store::open(&link), Err(StoreError::NotPrivate { .. })));
        fs::remove_file(link).unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_compute_lock_is_exclusive_and_waits_at_most_its_patience() {
        let dir = scratch("lock");
        let store = Store::open(&dir).unwrap();
        let held = store.lock(Duration::ZERO).expect("free");
        let started = Instant::now();
        assert!(store.lock(Duration::from_millis(50)).is_none(), "held by another");
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(held);
        assert!(store.lock(Duration::ZERO).is_some(), "released");
        fs::remove_dir_all(dir).unwrap();
    }
}
