//! Persistent [`Backend`] in one redb file: the control plane's default, so
//! a restart loses nothing.
//!
//! Layout (schema version 1):
//!
//! - table `kv`: key bytes (UTF-8) → 8-byte little-endian create revision,
//!   8-byte little-endian mod revision, then the value bytes.
//! - table `meta`: `revision` → the latest revision (8 bytes LE), and
//!   `schema_version` → 1.
//!
//! Keys and values are stored as raw bytes and decoded here, so a damaged
//! file gives [`StoreError::Corrupt`] instead of a panic inside redb's typed
//! decoders. Each transaction is one redb write transaction committed with
//! redb's default (immediate, fsynced) durability; the revision counter is
//! written in the same transaction, so it is never reused after a reopen.
//! After an I/O failure (a full or read-only disk) the next call closes
//! the file and opens it again, since redb refuses every call on a
//! database that saw one; the store recovers when the disk does.
//! Deliberately not here: history of old values (only the latest value of a
//! key is kept), watches (see [`Storage`](super::Storage)), and sharing the
//! file between processes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{
    Backend, BackendError, Change, Entry, Event, Op, Page, StoreError, next_revision, plan,
};

/// Entries: key → header (create and mod revision) + value.
pub(super) const KV_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
pub(super) const META_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");
const META_REVISION: &[u8] = b"revision";
pub(super) const META_SCHEMA: &[u8] = b"schema_version";
const SCHEMA_VERSION: u64 = 1;
const HEADER_LEN: usize = 16;

/// How the file becomes a [`Database`]: `Database::create`, or in tests a
/// storage backend that can be made to fail.
pub(super) type Opener =
    Box<dyn Fn(&Path) -> Result<Database, redb::DatabaseError> + Send + Sync + 'static>;

/// See the [module docs](self).
///
/// After an I/O failure redb refuses every later call on that `Database`
/// (`PreviousIo`) until it is closed and opened again; this backend does
/// that itself on the next call, so a store whose disk failed for a while
/// works again once the disk does, without a process restart. Nothing
/// committed is lost: redb's commit is atomic, and the failed transaction
/// was never acknowledged.
pub struct RedbBackend {
    path: PathBuf,
    open: Opener,
    /// `None` only between dropping a failed database and opening it again
    /// (the old one holds the file's lock, so it must go first).
    db: RwLock<Option<Database>>,
    /// Set by an I/O failure: the next call reopens the file first.
    failed: AtomicBool,
}

impl fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .field("failed", &self.failed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RedbBackend {
    /// Opens the store in `path`, creating the file if it is missing. Fails
    /// if the file is already open (in this or another process) or holds
    /// another schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, Box::new(|path| Database::create(path)))
    }

    /// [`RedbBackend::open`] with the file opened by `open` (on every
    /// reopen too).
    pub(super) fn open_with(path: &Path, open: Opener) -> Result<Self, StoreError> {
        let db = open(path).map_err(redb_error)?;
        init(&db)?;
        Ok(Self {
            path: path.to_path_buf(),
            open,
            db: RwLock::new(Some(db)),
            failed: AtomicBool::new(false),
        })
    }

    /// Runs `f` on the database, reopening it first after an I/O failure,
    /// and noting an I/O failure of `f` for the next call.
    fn with_db<T>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.failed.load(Ordering::Acquire) {
            self.reopen()?;
        }
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let Some(db) = guard.as_ref() else {
            // Another call dropped it and could not open it again.
            self.failed.store(true, Ordering::Release);
            return Err(StoreError::Backend(BackendError::Closed {
                path: self.path.display().to_string(),
            }));
        };
        let result = f(db);
        if let Err(StoreError::Backend(BackendError::Redb(err))) = &result
            && is_io(err)
        {
            self.failed.store(true, Ordering::Release);
        }
        result
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.db.write().unwrap_or_else(PoisonError::into_inner);
        if !self.failed.load(Ordering::Acquire) && guard.is_some() {
            return Ok(()); // another call reopened it meanwhile
        }
        *guard = None;
        let db = (self.open)(&self.path).map_err(redb_error)?;
        init(&db)?;
        *guard = Some(db);
        self.failed.store(false, Ordering::Release);
        tracing::warn!(store = %self.path.display(), "reopened the store after an I/O failure");
        Ok(())
    }

    /// Plans and writes `ops` into `txn` without committing it. No events
    /// means nothing was written and the revision is the current one.
    fn apply(txn: &WriteTransaction, ops: Vec<Op>) -> Result<(u64, Vec<Event>), StoreError> {
        let mut meta = txn.open_table(META_TABLE).map_err(redb_error)?;
        let mut kv = txn.open_table(KV_TABLE).map_err(redb_error)?;
        let current = read_revision(&meta)?;
        let changes = plan(ops, |key| get_entry(&kv, key))?;
        if changes.is_empty() {
            return Ok((current, Vec::new()));
        }
        let revision = next_revision(current)?;
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            match &change {
                Change::Put { key, value, .. } => {
                    let stored = encode(change.create_revision(revision), revision, value);
                    kv.insert(key.as_bytes(), stored.as_slice())
                        .map_err(redb_error)?;
                }
                Change::Delete { prev } => {
                    kv.remove(prev.key.as_bytes()).map_err(redb_error)?;
                }
            }
            events.push(change.into_event(revision));
        }
        meta.insert(META_REVISION, revision.to_le_bytes().as_slice())
            .map_err(redb_error)?;
        Ok((revision, events))
    }
}

impl Backend for RedbBackend {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(redb_error)?;
            let kv = txn.open_table(KV_TABLE).map_err(redb_error)?;
            get_entry(&kv, key)
        })
    }

    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError> {
        self.with_db(|db| {
            // One read transaction is one snapshot: entries and revision agree.
            let txn = db.begin_read().map_err(redb_error)?;
            let meta = txn.open_table(META_TABLE).map_err(redb_error)?;
            let kv = txn.open_table(KV_TABLE).map_err(redb_error)?;
            let revision = read_revision(&meta)?;
            let mut entries = Vec::new();
            for item in kv.range(prefix.as_bytes()..).map_err(redb_error)? {
                let (key, value) = item.map_err(redb_error)?;
                if !key.value().starts_with(prefix.as_bytes()) {
                    break;
                }
                let key = decode_key(key.value())?;
                entries.push(decode(key, value.value())?);
            }
            Ok((entries, revision))
        })
    }

    fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Page, StoreError> {
        use std::ops::Bound;
        self.with_db(|db| {
            let txn = db.begin_read().map_err(redb_error)?;
            let meta = txn.open_table(META_TABLE).map_err(redb_error)?;
            let kv = txn.open_table(KV_TABLE).map_err(redb_error)?;
            let revision = read_revision(&meta)?;
            let start = if after.is_empty() {
                Bound::Included(prefix.as_bytes())
            } else {
                Bound::Excluded(after.max(prefix).as_bytes())
            };
            let mut entries = Vec::new();
            let mut remaining = 0;
            for item in kv
                .range::<&[u8]>((start, Bound::Unbounded))
                .map_err(redb_error)?
            {
                let (key, value) = item.map_err(redb_error)?;
                if !key.value().starts_with(prefix.as_bytes()) {
                    break;
                }
                if entries.len() < limit.max(1) {
                    let key = decode_key(key.value())?;
                    entries.push(decode(key, value.value())?);
                } else {
                    // Counted, not read: the rest of the page's values stay on disk.
                    remaining += 1;
                }
            }
            Ok(Page {
                entries,
                remaining,
                revision,
            })
        })
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(redb_error)?;
            let meta = txn.open_table(META_TABLE).map_err(redb_error)?;
            read_revision(&meta)
        })
    }

    fn txn(&self, ops: Vec<Op>) -> Result<(u64, Vec<Event>), StoreError> {
        self.with_db(|db| {
            let txn = db.begin_write().map_err(redb_error)?;
            // On any error `txn` is dropped uncommitted, which aborts it.
            let (revision, events) = Self::apply(&txn, ops)?;
            if events.is_empty() {
                txn.abort().map_err(redb_error)?;
            } else {
                txn.commit().map_err(redb_error)?;
            }
            Ok((revision, events))
        })
    }
}

/// Creates both tables (so readers can assume they exist) and checks the
/// schema version, writing it into a new file.
fn init(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(redb_error)?;
    {
        let mut meta = txn.open_table(META_TABLE).map_err(redb_error)?;
        txn.open_table(KV_TABLE).map_err(redb_error)?;
        match read_u64(&meta, META_SCHEMA)? {
            None => {
                meta.insert(META_SCHEMA, SCHEMA_VERSION.to_le_bytes().as_slice())
                    .map_err(redb_error)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Corrupt {
                    key: "(schema version)".to_owned(),
                    reason: format!(
                        "file has schema version {other}, this build reads {SCHEMA_VERSION}"
                    ),
                });
            }
        }
    }
    txn.commit().map_err(redb_error)
}

/// Failures of the file rather than of its contents: worth reopening for.
fn is_io(err: &redb::Error) -> bool {
    matches!(
        err,
        redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
    )
}

fn redb_error(err: impl Into<redb::Error>) -> StoreError {
    StoreError::Backend(BackendError::Redb(err.into()))
}

fn get_entry(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &str,
) -> Result<Option<Entry>, StoreError> {
    match kv.get(key.as_bytes()).map_err(redb_error)? {
        Some(value) => decode(key.to_owned(), value.value()).map(Some),
        None => Ok(None),
    }
}

fn read_u64(
    meta: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &[u8],
) -> Result<Option<u64>, StoreError> {
    let Some(value) = meta.get(name).map_err(redb_error)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = value.value().try_into().map_err(|_| StoreError::Corrupt {
        key: format!("(meta {})", String::from_utf8_lossy(name)),
        reason: format!("expected 8 bytes, found {}", value.value().len()),
    })?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

fn read_revision(
    meta: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<u64, StoreError> {
    // Absent until the first write: revision 0.
    read_u64(meta, META_REVISION).map(Option::unwrap_or_default)
}

fn encode(create_revision: u64, mod_revision: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&mod_revision.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_key(bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|err| StoreError::Corrupt {
        key: String::from_utf8_lossy(err.as_bytes()).into_owned(),
        reason: "key is not UTF-8".to_owned(),
    })
}

fn decode(key: String, bytes: &[u8]) -> Result<Entry, StoreError> {
    let parsed = bytes.split_first_chunk::<8>().and_then(|(create, rest)| {
        let (modified, value) = rest.split_first_chunk::<8>()?;
        Some((
            u64::from_le_bytes(*create),
            u64::from_le_bytes(*modified),
            value,
        ))
    });
    let Some((create_revision, mod_revision, value)) = parsed else {
        return Err(StoreError::Corrupt {
            key,
            reason: format!(
                "value has {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ),
        });
    };
    if create_revision == 0 || create_revision > mod_revision {
        return Err(StoreError::Corrupt {
            key,
            reason: format!("impossible revisions: create {create_revision}, mod {mod_revision}"),
        });
    }
    Ok(Entry {
        key,
        value: value.to_vec(),
        create_revision,
        mod_revision,
    })
}

#[cfg(test)]
mod decode_tests {
    use super::{decode, encode};
    use crate::store::StoreError;

    #[test]
    fn round_trip() {
        let entry = decode("k".to_owned(), &encode(3, 7, b"v")).unwrap();
        assert_eq!(
            (entry.create_revision, entry.mod_revision, entry.value),
            (3, 7, b"v".to_vec())
        );
    }

    #[test]
    fn garbage_is_corrupt() {
        for bytes in [&b""[..], b"short", &encode(0, 1, b"x"), &encode(5, 4, b"x")] {
            assert!(
                matches!(
                    decode("k".to_owned(), bytes),
                    Err(StoreError::Corrupt { .. })
                ),
                "{bytes:?}"
            );
        }
    }
}
