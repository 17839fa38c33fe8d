//! Tests of the store: backend semantics run against every backend through
//! [`for_each_backend`], redb persistence and corruption handling, and the
//! watch machinery of [`Storage`].

use std::path::Path;
use std::sync::Arc;

use futures::FutureExt;

use super::redb::{KV_TABLE, META_SCHEMA, META_TABLE};
use super::{
    Backend, Entry, Event, EventType, MemBackend, Op, Precondition, RedbBackend, Storage,
    StorageConfig, StoreError, WatchError, Watcher,
};

/// Runs `test` once per backend, each time on a fresh, empty store.
fn for_each_backend(test: impl Fn(&str, Box<dyn Backend>)) {
    test("mem", Box::new(MemBackend::new()));
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbBackend::open(&dir.path().join("store.redb")).unwrap();
    test("redb", Box::new(redb));
}

fn put(key: &str, value: &str) -> Op {
    put_if(key, value, Precondition::None)
}

fn put_if(key: &str, value: &str, pre: Precondition) -> Op {
    Op::Put {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        pre,
    }
}

fn delete(key: &str, pre: Precondition) -> Op {
    Op::Delete {
        key: key.to_owned(),
        pre,
    }
}

fn entry(key: &str, value: &str, create_revision: u64, mod_revision: u64) -> Entry {
    Entry {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        create_revision,
        mod_revision,
    }
}

fn event(ty: EventType, key: &str, value: &str, revision: u64, created: bool) -> Event {
    Event {
        ty,
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        revision,
        created,
    }
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn revision_increases_by_one_per_txn() {
    for_each_backend(|name, b| {
        assert_eq!(b.revision().unwrap(), 0, "{name}");
        assert_eq!(b.get("a").unwrap(), None, "{name}");

        let (rev, events) = b.txn(vec![put("a", "1"), put("b", "1")]).unwrap();
        assert_eq!(rev, 1, "{name}");
        assert_eq!(
            events,
            [
                event(EventType::Put, "a", "1", 1, true),
                event(EventType::Put, "b", "1", 1, true),
            ],
            "{name}"
        );
        assert_eq!(b.get("a").unwrap(), Some(entry("a", "1", 1, 1)), "{name}");

        let (rev, events) = b.txn(vec![put("a", "2")]).unwrap();
        assert_eq!(rev, 2, "{name}");
        assert_eq!(
            events,
            [event(EventType::Put, "a", "2", 2, false)],
            "{name}"
        );
        assert_eq!(b.get("a").unwrap(), Some(entry("a", "2", 1, 2)), "{name}");

        let (rev, events) = b.txn(vec![delete("b", Precondition::None)]).unwrap();
        assert_eq!(rev, 3, "{name}");
        // A delete event carries the last value, so watchers can clean up.
        assert_eq!(
            events,
            [event(EventType::Delete, "b", "1", 3, false)],
            "{name}"
        );
        assert_eq!(b.get("b").unwrap(), None, "{name}");

        // Re-creating a deleted key starts a new life: a new create revision.
        let (rev, events) = b.txn(vec![put("b", "new")]).unwrap();
        assert_eq!(rev, 4, "{name}");
        assert!(events[0].created, "{name}");
        assert_eq!(b.get("b").unwrap(), Some(entry("b", "new", 4, 4)), "{name}");
        assert_eq!(b.revision().unwrap(), 4, "{name}");
    });
}

#[test]
fn txn_that_changes_nothing_keeps_the_revision() {
    for_each_backend(|name, b| {
        b.txn(vec![put("a", "1")]).unwrap();
        assert_eq!(b.txn(vec![]).unwrap(), (1, vec![]), "{name}");
        assert_eq!(
            b.txn(vec![delete("missing", Precondition::None)]).unwrap(),
            (1, vec![]),
            "{name}"
        );
        assert_eq!(b.revision().unwrap(), 1, "{name}");
        assert_eq!(b.txn(vec![put("a", "1")]).unwrap().0, 2, "{name}");
    });
}

#[test]
fn preconditions() {
    for_each_backend(|name, b| {
        b.txn(vec![put("a", "1")]).unwrap();
        b.txn(vec![put("a", "2")]).unwrap();
        let before = b.get("a").unwrap();
        assert_eq!(before, Some(entry("a", "2", 1, 2)), "{name}");

        let check = |ops: Vec<Op>, expected: &str| {
            let err = b.txn(ops).unwrap_err();
            assert_eq!(format!("{err:?}"), expected, "{name}");
            assert_eq!(b.revision().unwrap(), 2, "{name}: revision bumped by {err}");
            assert_eq!(b.get("a").unwrap(), before, "{name}: a changed by {err}");
            assert_eq!(b.get("new").unwrap(), None, "{name}: new written by {err}");
        };
        check(
            vec![put_if("a", "x", Precondition::ModRevision(1))],
            r#"Conflict { key: "a", expected: 1, actual: 2 }"#,
        );
        check(
            vec![delete("a", Precondition::ModRevision(7))],
            r#"Conflict { key: "a", expected: 7, actual: 2 }"#,
        );
        check(
            vec![put_if("a", "x", Precondition::MustNotExist)],
            r#"AlreadyExists { key: "a" }"#,
        );
        check(
            vec![put_if("new", "x", Precondition::MustExist)],
            r#"NotFound { key: "new" }"#,
        );
        check(
            vec![put_if("new", "x", Precondition::ModRevision(2))],
            r#"NotFound { key: "new" }"#,
        );
        check(
            vec![delete("new", Precondition::MustExist)],
            r#"NotFound { key: "new" }"#,
        );
        check(
            vec![put("a", "x"), delete("a", Precondition::None)],
            r#"DuplicateKey { key: "a" }"#,
        );

        // The matching preconditions succeed.
        let (rev, _) = b
            .txn(vec![
                put_if("a", "3", Precondition::ModRevision(2)),
                put_if("new", "1", Precondition::MustNotExist),
            ])
            .unwrap();
        assert_eq!(rev, 3, "{name}");
        assert_eq!(b.get("a").unwrap(), Some(entry("a", "3", 1, 3)), "{name}");
        let (rev, _) = b
            .txn(vec![
                delete("a", Precondition::ModRevision(3)),
                delete("new", Precondition::MustExist),
            ])
            .unwrap();
        assert_eq!(rev, 4, "{name}");
        assert_eq!(b.list("").unwrap(), (vec![], 4), "{name}");
    });
}

#[test]
fn failed_op_later_in_txn_writes_nothing() {
    for_each_backend(|name, b| {
        b.txn(vec![put("keep", "1")]).unwrap();
        let err = b
            .txn(vec![
                put("first", "1"),
                delete("keep", Precondition::None),
                put_if("second", "1", Precondition::MustExist),
            ])
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NotFound { ref key } if key == "second"),
            "{name}: {err}"
        );
        assert_eq!(b.get("first").unwrap(), None, "{name}");
        assert_eq!(
            b.get("keep").unwrap(),
            Some(entry("keep", "1", 1, 1)),
            "{name}"
        );
        assert_eq!(b.revision().unwrap(), 1, "{name}");
        // The next successful txn gets the very next revision: none was used up.
        assert_eq!(b.txn(vec![put("first", "1")]).unwrap().0, 2, "{name}");
    });
}

#[test]
fn list_by_prefix_in_key_order() {
    for_each_backend(|name, b| {
        for key in [
            "pods/b",
            "services/a",
            "pods/c/x",
            "pods/é",
            "podsx",
            "pods/a",
            "pod",
        ] {
            b.txn(vec![put(key, key)]).unwrap();
        }
        let (entries, rev) = b.list("pods/").unwrap();
        assert_eq!(rev, 7, "{name}");
        assert_eq!(
            keys(&entries),
            ["pods/a", "pods/b", "pods/c/x", "pods/é"],
            "{name}"
        );
        assert_eq!(entries[0], entry("pods/a", "pods/a", 6, 6), "{name}");

        let (all, rev) = b.list("").unwrap();
        assert_eq!(rev, 7, "{name}");
        assert_eq!(
            keys(&all),
            [
                "pod",
                "pods/a",
                "pods/b",
                "pods/c/x",
                "pods/é",
                "podsx",
                "services/a"
            ],
            "{name}"
        );
        assert_eq!(b.list("zzz").unwrap(), (vec![], 7), "{name}");
        assert_eq!(b.list("pods/a").unwrap().0.len(), 1, "{name}");
    });
}

#[test]
fn list_revision_is_the_snapshot_revision() {
    for_each_backend(|name, b| {
        b.txn(vec![put("a", "1")]).unwrap();
        b.txn(vec![put("other", "1")]).unwrap();
        // The revision is the store's, not the newest entry's in the prefix.
        let (entries, rev) = b.list("a").unwrap();
        assert_eq!((entries.len(), rev), (1, 2), "{name}");
    });
}

fn reopen(path: &Path) -> RedbBackend {
    RedbBackend::open(path).unwrap()
}

#[test]
fn redb_reopen_keeps_entries_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let b = reopen(&path);
        b.txn(vec![put("a", "1"), put("b", "1")]).unwrap();
        b.txn(vec![put("a", "2")]).unwrap();
        b.txn(vec![put("gone", "1")]).unwrap();
        b.txn(vec![delete("gone", Precondition::None)]).unwrap();
    }
    let b = reopen(&path);
    assert_eq!(b.revision().unwrap(), 4);
    assert_eq!(
        b.list("").unwrap(),
        (vec![entry("a", "2", 1, 2), entry("b", "1", 1, 1)], 4)
    );
    // The counter continues: revisions are never reused after a restart.
    assert_eq!(b.txn(vec![put("b", "2")]).unwrap().0, 5);
    assert_eq!(b.get("b").unwrap(), Some(entry("b", "2", 1, 5)));

    // Even with every key deleted, the revision survives.
    b.txn(vec![
        delete("a", Precondition::None),
        delete("b", Precondition::None),
    ])
    .unwrap();
    drop(b);
    let b = reopen(&path);
    assert_eq!(b.list("").unwrap(), (vec![], 6));
    assert_eq!(b.txn(vec![put("a", "1")]).unwrap().0, 7);
}

#[test]
fn redb_second_open_of_same_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let _first = reopen(&path);
    let err = RedbBackend::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

/// Writes raw bytes into the store's tables behind the backend's back.
fn write_raw(path: &Path, table: ::redb::TableDefinition<&[u8], &[u8]>, key: &[u8], value: &[u8]) {
    let db = ::redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn redb_garbage_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    reopen(&path).txn(vec![put("pods/ok", "1")]).unwrap();
    write_raw(&path, KV_TABLE, b"pods/bad", b"junk");

    let b = reopen(&path);
    let is_corrupt = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Corrupt { ref key, .. }) if key == "pods/bad");
    assert!(is_corrupt(b.get("pods/bad").map(drop)));
    assert!(is_corrupt(b.list("pods/").map(drop)));
    assert!(is_corrupt(b.txn(vec![put("pods/bad", "x")]).map(drop)));
    // The rest of the store still works, and the failed txn wrote nothing.
    assert_eq!(b.get("pods/ok").unwrap(), Some(entry("pods/ok", "1", 1, 1)));
    assert_eq!(b.revision().unwrap(), 1);
    drop(b);

    // A key that is not UTF-8 is reported, not unwrapped.
    write_raw(&path, KV_TABLE, b"z\xff", &[0; 16]);
    let err = reopen(&path).list("z").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("UTF-8")),
        "{err:?}"
    );
}

#[test]
fn redb_unknown_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    drop(reopen(&path));
    write_raw(&path, META_TABLE, META_SCHEMA, &2u64.to_le_bytes());
    let err = RedbBackend::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

// --- watches ---

fn storage(backend: Box<dyn Backend>, history_capacity: usize) -> Storage {
    let config = StorageConfig {
        history_capacity,
        ..StorageConfig::default()
    };
    Storage::with_config(backend, config).unwrap()
}

/// Everything the watcher yields without waiting: `Ok` events as
/// `key@revision`, errors as themselves, `END` once the stream has ended.
fn drain(w: &mut Watcher) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(item) = w.next().now_or_never() {
        match item {
            Some(Ok(ev)) => out.push(format!("{}@{}", ev.key, ev.revision)),
            Some(Err(err)) => out.push(format!("{err:?}")),
            None => {
                out.push("END".to_owned());
                break;
            }
        }
    }
    out
}

#[test]
fn watch_from_current_revision_sees_only_new_events() {
    for_each_backend(|name, b| {
        let s = storage(b, 100);
        s.txn(vec![put("a", "1")]).unwrap();
        s.txn(vec![put("b", "1")]).unwrap();
        let (_, rev) = s.list("").unwrap();
        let mut w = s.watch("", rev).unwrap();
        assert_eq!(drain(&mut w), Vec::<String>::new(), "{name}");

        let (_, events) = s
            .txn(vec![put("c", "1"), delete("a", Precondition::None)])
            .unwrap();
        assert_eq!(drain(&mut w), ["c@3", "a@3"], "{name}");
        // Watchers share the events the txn returned instead of copying them.
        assert_eq!(events[0].value, b"1", "{name}");
        s.txn(vec![put("b", "2")]).unwrap();
        assert_eq!(drain(&mut w), ["b@4"], "{name}");
        assert_eq!(w.last_revision(), 4, "{name}");
    });
}

#[test]
fn watch_resumes_from_history_then_goes_live() {
    for_each_backend(|name, b| {
        let s = storage(b, 100);
        for v in ["1", "2", "3"] {
            s.txn(vec![put("k", v)]).unwrap();
        }
        let mut w = s.watch("", 1).unwrap();
        assert_eq!(drain(&mut w), ["k@2", "k@3"], "{name}");
        s.txn(vec![put("k", "4")]).unwrap();
        assert_eq!(drain(&mut w), ["k@4"], "{name}");

        let mut all = s.watch("", 0).unwrap();
        assert_eq!(drain(&mut all), ["k@1", "k@2", "k@3", "k@4"], "{name}");
    });
}

#[test]
fn watch_event_values() {
    let s = Storage::new(Box::new(MemBackend::new())).unwrap();
    let mut w = s.watch("", 0).unwrap();
    s.txn(vec![put("a", "1")]).unwrap();
    s.txn(vec![put("a", "2")]).unwrap();
    s.txn(vec![delete("a", Precondition::None)]).unwrap();
    // Through the `Stream` impl this time.
    let got: Vec<Event> =
        std::iter::from_fn(|| futures::StreamExt::next(&mut w).now_or_never().flatten())
            .map(|item| Event::clone(&item.unwrap()))
            .collect();
    assert_eq!(
        got,
        [
            event(EventType::Put, "a", "1", 1, true),
            event(EventType::Put, "a", "2", 2, false),
            event(EventType::Delete, "a", "2", 3, false),
        ]
    );
}

#[test]
fn watch_from_evicted_revision_is_too_old() {
    for_each_backend(|name, b| {
        let s = storage(b, 3);
        // Revision 2 has two events; the history keeps the last three events.
        s.txn(vec![put("a", "1")]).unwrap();
        s.txn(vec![put("a", "2"), put("b", "2")]).unwrap();
        s.txn(vec![put("a", "3")]).unwrap();
        s.txn(vec![put("a", "4")]).unwrap();
        // History: b@2, a@3, a@4; a@2 is gone, so revision 2 is incomplete.
        assert_eq!(
            s.watch("", 1).unwrap_err(),
            WatchError::TooOld {
                requested: 1,
                oldest_available: 2,
            },
            "{name}"
        );
        let mut w = s.watch("", 2).unwrap();
        assert_eq!(drain(&mut w), ["a@3", "a@4"], "{name}");
        assert_eq!(
            s.watch("", 5).unwrap_err(),
            WatchError::FutureRevision {
                requested: 5,
                current: 4,
            },
            "{name}"
        );
    });
}

#[test]
fn watch_without_history() {
    let s = storage(Box::new(MemBackend::new()), 0);
    s.txn(vec![put("a", "1")]).unwrap();
    assert!(matches!(s.watch("", 0), Err(WatchError::TooOld { .. })));
    let mut w = s.watch("", 1).unwrap();
    s.txn(vec![put("a", "2")]).unwrap();
    assert_eq!(drain(&mut w), ["a@2"]);
}

#[test]
fn after_restart_only_the_current_revision_can_be_watched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    {
        let s = Storage::new(Box::new(reopen(&path))).unwrap();
        s.txn(vec![put("a", "1")]).unwrap();
        s.txn(vec![put("a", "2")]).unwrap();
    }
    let s = Storage::new(Box::new(reopen(&path))).unwrap();
    assert_eq!(
        s.watch("", 1).unwrap_err(),
        WatchError::TooOld {
            requested: 1,
            oldest_available: 2,
        }
    );
    let mut w = s.watch("", 2).unwrap();
    s.txn(vec![put("a", "3")]).unwrap();
    assert_eq!(drain(&mut w), ["a@3"]);
}

#[test]
fn watch_filters_by_prefix() {
    for_each_backend(|name, b| {
        let s = storage(b, 100);
        s.txn(vec![put("pods/old", "1"), put("services/old", "1")])
            .unwrap();
        let mut pods = s.watch("pods/", 0).unwrap();
        let mut services = s.watch("services/", 1).unwrap();
        s.txn(vec![
            put("pods/a", "1"),
            put("services/a", "1"),
            put("podsx", "1"),
        ])
        .unwrap();
        s.txn(vec![delete("pods/old", Precondition::None)]).unwrap();
        assert_eq!(
            drain(&mut pods),
            ["pods/old@1", "pods/a@2", "pods/old@3"],
            "{name}"
        );
        assert_eq!(drain(&mut services), ["services/a@2"], "{name}");
    });
}

#[test]
fn slow_watcher_is_terminated_without_blocking_others() {
    for_each_backend(|name, b| {
        let s = storage(b, 100);
        let mut slow = s.watch_with_queue("", 0, 2).unwrap();
        let mut fast = s.watch("", 0).unwrap();
        let mut other = s.watch("other/", 0).unwrap();
        for v in ["1", "2", "3", "4"] {
            // Writers never wait for the slow watcher.
            s.txn(vec![put("k", v)]).unwrap();
            assert_eq!(drain(&mut fast), [format!("k@{v}")], "{name}");
        }
        assert_eq!(
            s.watcher_count(),
            2,
            "{name}: slow watcher still registered"
        );
        // The queued events come first, then the error that says where to resume.
        assert_eq!(
            drain(&mut slow),
            ["k@1", "k@2", "Lagged { resume_from: 2 }", "END"],
            "{name}"
        );
        assert_eq!(drain(&mut slow), ["END"], "{name}");

        // Resuming from there continues without a gap while history has it.
        let mut resumed = s.watch("", 2).unwrap();
        assert_eq!(drain(&mut resumed), ["k@3", "k@4"], "{name}");

        s.txn(vec![put("other/x", "1")]).unwrap();
        assert_eq!(drain(&mut other), ["other/x@5"], "{name}");
        assert_eq!(drain(&mut fast), ["other/x@5"], "{name}");
    });
}

#[test]
fn lagging_never_splits_a_txn() {
    let s = Storage::new(Box::new(MemBackend::new())).unwrap();
    s.txn(vec![put("a", "1")]).unwrap();
    let mut w = s.watch_with_queue("", 1, 2).unwrap();
    s.txn(vec![put("a", "2")]).unwrap();
    // Three events do not fit in the one free slot: none of them is queued.
    s.txn(vec![put("x", "1"), put("y", "1"), put("z", "1")])
        .unwrap();
    assert_eq!(drain(&mut w), ["a@2", "Lagged { resume_from: 2 }", "END"]);
    let mut resumed = s.watch("", 2).unwrap();
    assert_eq!(drain(&mut resumed), ["x@3", "y@3", "z@3"]);
}

#[test]
fn dropping_a_watcher_unregisters_it() {
    let s = Storage::new(Box::new(MemBackend::new())).unwrap();
    assert_eq!(s.watcher_count(), 0);
    let a = s.watch("", 0).unwrap();
    let b = s.watch("x/", 0).unwrap();
    assert_eq!(s.watcher_count(), 2);
    drop(a);
    assert_eq!(s.watcher_count(), 1);
    drop(b);
    assert_eq!(s.watcher_count(), 0);
    s.txn(vec![put("x/a", "1")]).unwrap();
    assert_eq!(s.watcher_count(), 0);
}

#[test]
fn watch_ends_when_storage_is_dropped() {
    let s = Storage::new(Box::new(MemBackend::new())).unwrap();
    let mut w = s.watch("", 0).unwrap();
    s.txn(vec![put("a", "1")]).unwrap();
    drop(s);
    assert_eq!(drain(&mut w), ["a@1", "END"]);
}

#[tokio::test(start_paused = true)]
async fn watcher_wakes_up_for_a_live_event() {
    let s = Storage::new(Box::new(MemBackend::new())).unwrap();
    let mut w = s.watch("", 0).unwrap();
    let writer = tokio::spawn({
        let s = s.clone();
        async move { s.txn(vec![put("a", "1")]).map(|(rev, _)| rev) }
    });
    let ev = w.next().await.unwrap().unwrap();
    assert_eq!((ev.key.as_str(), ev.revision), ("a", 1));
    assert_eq!(writer.await.unwrap().unwrap(), 1);
    assert_eq!(
        Arc::strong_count(&ev),
        2,
        "shared with the history, not copied"
    );
}

#[test]
fn public_types_cross_threads() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Storage>();
    check::<StoreError>();
    check::<WatchError>();
    fn check_send<T: Send + 'static>() {}
    check_send::<Watcher>();
}

mod disk;
/// A backend with only the required methods: [`Backend::list_page`]'s
/// default.
struct DefaultPaging(MemBackend);

impl Backend for DefaultPaging {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        self.0.get(key)
    }
    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError> {
        self.0.list(prefix)
    }
    fn revision(&self) -> Result<u64, StoreError> {
        self.0.revision()
    }
    fn txn(&self, ops: Vec<Op>) -> Result<(u64, Vec<Event>), StoreError> {
        self.0.txn(ops)
    }
}

#[test]
fn list_page_reads_after_a_key_up_to_a_limit() {
    let check = |name: &str, b: &dyn Backend| {
        for key in ["pod", "pods/a", "pods/b", "pods/c/x", "pods/é", "podsx"] {
            b.txn(vec![put(key, key)]).unwrap();
        }
        let cases: &[(&str, &str, usize, &[&str], u64)] = &[
            ("pods/", "", 2, &["pods/a", "pods/b"], 2),
            ("pods/", "pods/b", 2, &["pods/c/x", "pods/é"], 0),
            ("pods/", "pods/a", 10, &["pods/b", "pods/c/x", "pods/é"], 0),
            // A key between entries: the page starts after it.
            ("pods/", "pods/bb", 1, &["pods/c/x"], 1),
            ("pods/", "pods/é", 3, &[], 0),
            // Limit 0 reads one, never nothing forever.
            ("pods/", "", 0, &["pods/a"], 3),
            ("", "pods/é", 5, &["podsx"], 0),
            ("zzz/", "", 5, &[], 0),
        ];
        for (prefix, after, limit, want, remaining) in cases {
            let page = b.list_page(prefix, after, *limit).unwrap();
            assert_eq!(
                (
                    keys(&page.entries).as_slice(),
                    page.remaining,
                    page.revision
                ),
                (*want, *remaining, 6),
                "{name}: list_page({prefix:?}, {after:?}, {limit})"
            );
        }
    };
    for_each_backend(|name, b| check(name, b.as_ref()));
    check("default", &DefaultPaging(MemBackend::new()));
}
