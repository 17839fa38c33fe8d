//! In-memory [`Backend`]: a `BTreeMap` under a mutex, for tests and
//! throwaway clusters.
//!
//! It has exactly the transaction semantics of the persistent backend (both
//! use the store's shared planner) but nothing survives the process, and
//! every read copies values out under the one lock. Not meant for large
//! data sets or read-heavy load.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Backend, Change, Entry, Event, Op, Page, StoreError, next_revision, plan};

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct MemBackend {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    revision: u64,
}

impl MemBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // `txn` mutates only after all checks passed and cannot panic half
        // way, so a poisoned lock still guards a consistent map.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for MemBackend {
    fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<(Vec<Entry>, u64), StoreError> {
        let state = self.lock();
        let entries = state
            .entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, entry)| entry.clone())
            .collect();
        Ok((entries, state.revision))
    }

    fn list_page(&self, prefix: &str, after: &str, limit: usize) -> Result<Page, StoreError> {
        let state = self.lock();
        let start = if after.is_empty() {
            Bound::Included(prefix)
        } else {
            Bound::Excluded(after.max(prefix))
        };
        let mut rest = state
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix));
        let entries = rest
            .by_ref()
            .take(limit.max(1))
            .map(|(_, entry)| entry.clone())
            .collect();
        Ok(Page {
            entries,
            remaining: rest.count() as u64,
            revision: state.revision,
        })
    }

    fn revision(&self) -> Result<u64, StoreError> {
        Ok(self.lock().revision)
    }

    fn txn(&self, ops: Vec<Op>) -> Result<(u64, Vec<Event>), StoreError> {
        let mut state = self.lock();
        let changes = plan(ops, |key| Ok(state.entries.get(key).cloned()))?;
        if changes.is_empty() {
            return Ok((state.revision, Vec::new()));
        }
        let revision = next_revision(state.revision)?;
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            match &change {
                Change::Put { key, value, .. } => {
                    let entry = Entry {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: change.create_revision(revision),
                        mod_revision: revision,
                    };
                    state.entries.insert(key.clone(), entry);
                }
                Change::Delete { prev } => {
                    state.entries.remove(&prev.key);
                }
            }
            events.push(change.into_event(revision));
        }
        state.revision = revision;
        Ok((revision, events))
    }
}
