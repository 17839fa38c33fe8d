//! A disk that fails and comes back: the redb backend reopens its file on
//! the next call after an I/O failure, so the store works again without a
//! process restart, and loses nothing that was committed.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{put, put_if};
use crate::store::{Precondition, RedbBackend, Storage, StoreError};

/// An in-memory file whose writes fail while `full` is set, as on a full
/// or read-only disk; reads keep working. Shared by every reopen.
#[derive(Debug, Clone, Default)]
struct FlakyDisk {
    bytes: Arc<Mutex<Vec<u8>>>,
    full: Arc<AtomicBool>,
}

impl FlakyDisk {
    fn bytes(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check(&self) -> io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        Ok(())
    }
}

impl redb::StorageBackend for FlakyDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes();
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let src = bytes
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.bytes().resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let mut bytes = self.bytes();
        if bytes.len() < start + data.len() {
            bytes.resize(start + data.len(), 0);
        }
        bytes[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

fn storage_on(disk: &FlakyDisk) -> Storage {
    let opened = disk.clone();
    let backend = RedbBackend::open_with(
        std::path::Path::new("flaky.redb"),
        Box::new(move |_| redb::Builder::new().create_with_backend(opened.clone())),
    )
    .unwrap();
    Storage::new(Box::new(backend)).unwrap()
}

fn is_backend_failure<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Backend(_)))
}

#[test]
fn a_store_whose_disk_fails_works_again_when_the_disk_does() {
    let disk = FlakyDisk::default();
    let s = storage_on(&disk);
    assert_eq!(s.txn(vec![put("a", "1")]).unwrap().0, 1);

    disk.full.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(is_backend_failure(s.txn(vec![put("b", "1")])));
    }
    // While it fails, nothing half-written shows.
    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(s.get("b").unwrap(), None);
    assert_eq!(s.get("a").unwrap().unwrap().value, b"1");

    // The disk is back: writes work on the same Storage, the failed ones
    // used no revision, and preconditions see the committed state.
    assert_eq!(s.txn(vec![put("b", "2")]).unwrap().0, 2);
    assert_eq!(
        s.txn(vec![put_if("a", "3", Precondition::ModRevision(1))])
            .unwrap()
            .0,
        3
    );
    let (entries, revision) = s.list("").unwrap();
    assert_eq!(revision, 3);
    assert_eq!(entries.len(), 2);
}

#[test]
fn a_disk_that_fails_on_reopen_is_retried_until_it_works() {
    let disk = FlakyDisk::default();
    let s = storage_on(&disk);
    s.txn(vec![put("a", "1")]).unwrap();
    disk.full.store(true, Ordering::SeqCst);
    assert!(is_backend_failure(s.txn(vec![put("b", "1")])));
    // Still failing: the reopen itself fails (redb writes when it opens a
    // file that was not closed cleanly), and so does every call.
    assert!(is_backend_failure(s.txn(vec![put("b", "1")])));
    assert!(is_backend_failure(s.get("a")));
    disk.full.store(false, Ordering::SeqCst);
    assert_eq!(s.get("a").unwrap().unwrap().value, b"1");
    assert_eq!(s.txn(vec![put("b", "1")]).unwrap().0, 2);
}
