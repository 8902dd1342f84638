//! [`OutputLock`]: one run at a time writes a model folder.
//!
//! A training writes `metrics.jsonl`, checkpoints and finally the model into its `--out` folder
//! over minutes; two runs given the same folder (the default `runs/latest`, say) would interleave
//! those files. The lock is an advisory file lock on `DIR/.modelsmith.lock`, so it ends with the
//! process however the process ends. Within one process it is counted: `auto` holds it over its
//! final training, which takes it again.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ModelError;

/// The lock file's name inside a model folder.
pub const LOCK_FILE: &str = ".modelsmith.lock";

/// Held while a run writes a model folder; released on drop.
#[derive(Debug)]
pub struct OutputLock {
    key: PathBuf,
}

/// Locked folders of this process: (lock file, holders).
static HELD: Mutex<Option<HashMap<PathBuf, (File, usize)>>> = Mutex::new(None);

impl OutputLock {
    /// Creates `dir` if needed and locks it for this run. Another process writing it is an error
    /// naming the folder (bad input: choose another folder or wait).
    pub fn acquire(dir: &Path) -> Result<OutputLock, ModelError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ModelError::file(dir, format!("cannot create folder: {e}")))?;
        let key = dir
            .canonicalize()
            .map_err(|e| ModelError::file(dir, format!("cannot open folder: {e}")))?;
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        let held = held.get_or_insert_with(HashMap::new);
        if let Some((_, holders)) = held.get_mut(&key) {
            *holders += 1;
            return Ok(OutputLock { key });
        }
        let path = key.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ModelError::file(&path, format!("cannot create lock file: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ModelError::file(
                    dir,
                    "another modelsmith run is writing this model folder; wait for it to finish or choose another --out",
                ))
            }
            Err(TryLockError::Error(e)) => {
                return Err(ModelError::file(&path, format!("cannot lock: {e}")))
            }
        }
        held.insert(key.clone(), (file, 1));
        Ok(OutputLock { key })
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(map) = held.as_mut() {
            if let Some((_, holders)) = map.get_mut(&self.key) {
                *holders -= 1;
                if *holders == 0 {
                    // Closing the file releases the lock; the file stays (removing it would
                    // race with a process that has just opened it).
                    map.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_locked_once_per_process_and_counted_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let first = OutputLock::acquire(&out).unwrap();
        let nested = OutputLock::acquire(&out).unwrap();
        // Another open file description (as another process has) is refused while it is held.
        let other = File::options()
            .write(true)
            .open(out.join(LOCK_FILE))
            .unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(nested);
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        drop(first);
        other
            .try_lock()
            .expect("released when the last holder drops");
        other.unlock().unwrap();
        drop(other);
        let again = OutputLock::acquire(&out).unwrap();
        drop(again);
    }
}
