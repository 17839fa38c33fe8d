//! The cluster's identity: a random id made when the cluster is created,
//! kept in two places — `STATE/cluster-id` beside the CA, and the key
//! [`STORE_KEY`] inside the store — so that a control plane that starts on
//! a store that is not its cluster's refuses to run instead of serving it.
//!
//! What it guards against: a store file that is missing or empty (deleted,
//! truncated, a fresh file redb made over a lost one) while the cluster's
//! CA and id are still there, which would otherwise come back as a new,
//! empty cluster with no error anywhere; and a store copied from another
//! cluster's state dir. The decision is the pure [`decide`]; [`open_store`]
//! does the file I/O around it.
//!
//! Deliberately not here: detecting a store rolled back to an older copy of
//! the same cluster (the ids match; a revision check against the nodes would
//! be needed), and repairing anything: every refusal says what to restore.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::store::{Op, Precondition, RedbBackend, Storage, StoreError};

/// The file beside the CA that holds the id.
pub const FILE: &str = "cluster-id";
/// The store file in the state dir.
pub const STORE_FILE: &str = "store.redb";
/// The store key that holds the id. No object key starts with `/` (they
/// start with a Kind), so it never shows up in a list or a watch of objects.
pub const STORE_KEY: &str = "/podnet/cluster-id";
/// What to do when the store is not this cluster's, said by every refusal.
const REMEDY: &str = "restore this cluster's store from a backup, or run `podnet down` and start a new cluster with `podnet up` (a new cluster starts in an empty state dir)";

/// A cluster's id: 32 lowercase hex digits, uuid-like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterId(String);

impl ClusterId {
    /// A new random id.
    pub fn generate() -> ClusterId {
        ClusterId(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Parses an id as written by [`ClusterId::generate`] (surrounding
    /// whitespace allowed, as an editor may leave a newline).
    pub fn parse(text: &str) -> Option<ClusterId> {
        let id = text.trim();
        (id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| ClusterId(id.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the store holds, as far as identity goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// No store file.
    Missing,
    /// A store with nothing in it (revision 0): new, or truncated to zero.
    Empty,
    /// A store with data, and the cluster id it carries (`None`: written
    /// before stores carried one, or by something else).
    Holds(Option<ClusterId>),
}

/// What [`open_store`] should do, decided by [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The store and the id file agree: run.
    Run(ClusterId),
    /// A new cluster: write this id into the store and the file.
    Create(ClusterId),
    /// A store that carries no id, in a state dir without one: a store
    /// from before cluster ids. Record this id in both and run.
    Adopt(ClusterId),
    /// Creation stopped between writing the store and the file (the store
    /// is written first, the CA last): finish it by writing the file.
    WriteFile(ClusterId),
    /// Refuse to start.
    Refuse(Refusal),
}

/// Why a store is not this cluster's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The state dir belongs to a cluster (`id`, or only its CA when
    /// `None`) but the store is missing or empty.
    StoreLost {
        id: Option<ClusterId>,
        missing: bool,
    },
    /// The store carries another cluster's id (or none, `stored: None`).
    Foreign {
        stored: Option<ClusterId>,
        expected: ClusterId,
    },
    /// The store and the CA are there but the id file is not.
    FileMissing { stored: ClusterId },
}

/// The pure core: from the id file's content, whether the CA exists and
/// what the store holds, what to do. `fresh` is the id a new cluster gets.
pub fn decide(
    file: Option<&ClusterId>,
    ca_exists: bool,
    store: &StoreState,
    fresh: ClusterId,
) -> Decision {
    match (file, store) {
        (None, StoreState::Missing | StoreState::Empty) if !ca_exists => Decision::Create(fresh),
        (None, StoreState::Holds(None)) => Decision::Adopt(fresh),
        (None, StoreState::Holds(Some(stored))) if !ca_exists => {
            Decision::WriteFile(stored.clone())
        }
        (None, StoreState::Holds(Some(stored))) => Decision::Refuse(Refusal::FileMissing {
            stored: stored.clone(),
        }),
        (id, StoreState::Missing | StoreState::Empty) => Decision::Refuse(Refusal::StoreLost {
            id: id.cloned(),
            missing: *store == StoreState::Missing,
        }),
        (Some(expected), StoreState::Holds(stored)) => {
            if stored.as_ref() == Some(expected) {
                Decision::Run(expected.clone())
            } else {
                Decision::Refuse(Refusal::Foreign {
                    stored: stored.clone(),
                    expected: expected.clone(),
                })
            }
        }
    }
}

/// Why the control plane cannot start on the store in its state dir.
#[derive(Debug, thiserror::Error)]
pub enum ClusterIdError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} does not hold a cluster id (found {found:?}; expected 32 lowercase hex digits): restore it, or {REMEDY}"
    )]
    BadFile { path: PathBuf, found: String },
    #[error("cannot open the store {path}: {REMEDY}")]
    Open {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot read or write the cluster id in the store {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("the store {path} holds a bad cluster id {found:?} at {STORE_KEY}: {REMEDY}")]
    BadStoredId { path: PathBuf, found: String },
    #[error("{}", refusal_message(.refusal, .dir))]
    Refused { refusal: Refusal, dir: PathBuf },
}

fn refusal_message(refusal: &Refusal, dir: &Path) -> String {
    let store = dir.join(STORE_FILE);
    let file = dir.join(FILE);
    let (store, file) = (store.display(), file.display());
    match refusal {
        Refusal::StoreLost { id, missing } => {
            let what = if *missing { "missing" } else { "empty" };
            let whose = match id {
                Some(id) => format!("cluster {id} ({file})"),
                None => format!("the cluster whose CA is {}", dir.join("ca.crt").display()),
            };
            format!(
                "the store {store} is {what} but this state dir belongs to {whose}: refusing to start it as a new, empty cluster; {REMEDY}"
            )
        }
        Refusal::Foreign { stored, expected } => {
            let stored = stored
                .as_ref()
                .map_or_else(|| "no cluster id".to_owned(), |s| format!("cluster {s}"));
            format!(
                "the store {store} belongs to {stored}, but this state dir is cluster {expected} ({file}): refusing to serve another cluster's objects; {REMEDY}"
            )
        }
        Refusal::FileMissing { stored } => format!(
            "{file} is missing, but the CA and the store {store} (cluster {stored}) are there: restore {file}, or {REMEDY}"
        ),
    }
}

/// Opens the store in `dir` and checks that it is this cluster's (see the
/// [module docs](self)); on a new cluster writes the id into the store and
/// then into `dir/cluster-id`. Call it before the CA is created, so that a
/// CA on disk means creation finished.
pub fn open_store(dir: &Path) -> Result<(Storage, ClusterId), ClusterIdError> {
    let file_path = dir.join(FILE);
    let store_path = dir.join(STORE_FILE);
    let file = match std::fs::read_to_string(&file_path) {
        Ok(text) => Some(
            ClusterId::parse(&text).ok_or_else(|| ClusterIdError::BadFile {
                path: file_path.clone(),
                found: text.trim().chars().take(64).collect(),
            })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ClusterIdError::Io {
                path: file_path,
                source,
            });
        }
    };
    let ca_exists = dir.join("ca.key").exists() || dir.join("ca.crt").exists();
    let refused = |refusal| ClusterIdError::Refused {
        refusal,
        dir: dir.to_path_buf(),
    };
    // A missing store is refused before redb would create a new file.
    if !store_path.exists()
        && let Decision::Refuse(refusal) = decide(
            file.as_ref(),
            ca_exists,
            &StoreState::Missing,
            ClusterId::generate(),
        )
    {
        return Err(refused(refusal));
    }
    let open_error = |source| ClusterIdError::Open {
        path: store_path.clone(),
        source,
    };
    let backend = RedbBackend::open(&store_path).map_err(open_error)?;
    let storage = Storage::new(Box::new(backend)).map_err(open_error)?;
    let store_error = |source| ClusterIdError::Store {
        path: store_path.clone(),
        source,
    };
    let state = match storage.get(STORE_KEY).map_err(store_error)? {
        Some(entry) => {
            let text = String::from_utf8_lossy(&entry.value);
            let id = ClusterId::parse(&text).ok_or_else(|| ClusterIdError::BadStoredId {
                path: store_path.clone(),
                found: text.chars().take(64).collect(),
            })?;
            StoreState::Holds(Some(id))
        }
        None if storage.revision().map_err(store_error)? == 0 => StoreState::Empty,
        None => StoreState::Holds(None),
    };
    let write_store = |id: &ClusterId| {
        storage
            .txn(vec![Op::Put {
                key: STORE_KEY.to_owned(),
                value: id.as_str().as_bytes().to_vec(),
                pre: Precondition::MustNotExist,
            }])
            .map_err(store_error)
    };
    let write_file = |id: &ClusterId| write_atomic(&file_path, &format!("{id}\n"));
    let id = match decide(file.as_ref(), ca_exists, &state, ClusterId::generate()) {
        Decision::Run(id) => id,
        Decision::Create(id) => {
            write_store(&id)?;
            write_file(&id)?;
            tracing::info!(cluster.id = %id, "new cluster");
            id
        }
        Decision::Adopt(id) => {
            write_store(&id)?;
            write_file(&id)?;
            tracing::warn!(cluster.id = %id, store = %store_path.display(), "the store carried no cluster id; it now carries this one");
            id
        }
        Decision::WriteFile(id) => {
            write_file(&id)?;
            id
        }
        Decision::Refuse(refusal) => return Err(refused(refusal)),
    };
    Ok((storage, id))
}

/// Through a temporary file and a rename, so a crash never leaves half an id.
fn write_atomic(path: &Path, text: &str) -> Result<(), ClusterIdError> {
    let tmp = path.with_extension("tmp");
    let io = |source| ClusterIdError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> ClusterId {
        ClusterId(std::iter::repeat_n(c, 32).collect())
    }

    fn check(file: Option<char>, ca: bool, store: &StoreState, expected: Decision) {
        let file = file.map(id);
        assert_eq!(
            decide(file.as_ref(), ca, store, id('f')),
            expected,
            "file {file:?}, ca {ca}, store {store:?}"
        );
    }

    #[test]
    fn decisions() {
        use Decision::*;
        use StoreState::*;
        let holds = |c| Holds(Some(id(c)));
        let lost = |i: Option<char>, missing| {
            Refuse(Refusal::StoreLost {
                id: i.map(id),
                missing,
            })
        };
        // A new state dir.
        check(None, false, &Missing, Create(id('f')));
        check(None, false, &Empty, Create(id('f')));
        // The running cluster.
        check(Some('a'), true, &holds('a'), Run(id('a')));
        // Lost or truncated stores, with or without the id file.
        check(Some('a'), true, &Missing, lost(Some('a'), true));
        check(Some('a'), true, &Empty, lost(Some('a'), false));
        check(Some('a'), false, &Empty, lost(Some('a'), false));
        check(None, true, &Missing, lost(None, true));
        check(None, true, &Empty, lost(None, false));
        // Another cluster's store, or one without an id, in this cluster.
        check(
            Some('a'),
            true,
            &holds('b'),
            Refuse(Refusal::Foreign {
                stored: Some(id('b')),
                expected: id('a'),
            }),
        );
        check(
            Some('a'),
            true,
            &Holds(None),
            Refuse(Refusal::Foreign {
                stored: None,
                expected: id('a'),
            }),
        );
        // Only the id file is gone.
        check(
            None,
            true,
            &holds('b'),
            Refuse(Refusal::FileMissing { stored: id('b') }),
        );
        // Creation stopped after the store was written, before the CA.
        check(None, false, &holds('b'), WriteFile(id('b')));
        // A store from before cluster ids.
        check(None, true, &Holds(None), Adopt(id('f')));
        check(None, false, &Holds(None), Adopt(id('f')));
    }

    #[test]
    fn ids_parse_only_as_generated() {
        let fresh = ClusterId::generate();
        assert_eq!(ClusterId::parse(&format!("{fresh}\n")), Some(fresh));
        for bad in ["", "abc", &"g".repeat(32), &"A".repeat(32), &"a".repeat(33)] {
            assert_eq!(ClusterId::parse(bad), None, "{bad:?}");
        }
    }

    fn open(dir: &Path) -> Result<ClusterId, ClusterIdError> {
        open_store(dir).map(|(_, id)| id)
    }

    /// The CA is made after the store, as `run` does.
    fn create(dir: &Path) -> ClusterId {
        let id = open(dir).unwrap();
        crate::ca::ClusterCa::load_or_create(dir).unwrap();
        id
    }

    #[test]
    fn a_cluster_keeps_its_id_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let id = create(dir.path());
        let on_disk = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(ClusterId::parse(&on_disk), Some(id.clone()));
        assert_eq!(open(dir.path()).unwrap(), id);
    }

    #[test]
    fn a_truncated_or_missing_store_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = create(dir.path());
        let store = dir.path().join(STORE_FILE);
        std::fs::File::create(&store).unwrap(); // truncates
        let err = open(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&store.display().to_string()), "{err}");
        assert!(err.contains("is empty"), "{err}");
        assert!(err.contains(id.as_str()), "{err}");
        assert!(err.contains("podnet down"), "{err}");
        // Refused again: the refusal wrote nothing that would pass next time.
        assert!(open(dir.path()).is_err());

        std::fs::remove_file(&store).unwrap();
        let err = open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is missing"), "{err}");
        assert!(!store.exists(), "a refused start must not create a store");
    }

    #[test]
    fn another_clusters_store_is_refused_naming_both_ids() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (id_a, id_b) = (create(a.path()), create(b.path()));
        std::fs::copy(b.path().join(STORE_FILE), a.path().join(STORE_FILE)).unwrap();
        let err = open(a.path()).unwrap_err().to_string();
        assert!(err.contains(&format!("belongs to cluster {id_b}")), "{err}");
        assert!(
            err.contains(&format!("this state dir is cluster {id_a}")),
            "{err}"
        );
    }

    #[test]
    fn a_bad_id_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path());
        std::fs::write(dir.path().join(FILE), "not an id").unwrap();
        let err = open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("does not hold a cluster id"), "{err}");
        assert!(err.contains("\"not an id\""), "{err}");
    }
}
