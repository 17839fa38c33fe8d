//! The registry: Kubernetes object semantics on top of the revisioned store,
//! the way the API server's generic registry does it.
//!
//! It validates and defaults (through `validate`), fills in server-owned
//! metadata (uid, creationTimestamp, generation, resourceVersion), enforces
//! optimistic concurrency, deletes pods gracefully, cascades deletion to
//! dependents (ownerReferences) and to the contents of a deleted namespace,
//! and serves list and watch with label and field selectors. A Service's
//! ClusterIP and NodePorts are allocated inside the write that stores it
//! (`alloc`).
//!
//! `resourceVersion` is never stored inside an object: it is the store's
//! mod revision, filled in on every read, so it can never disagree with it.
//! The gRPC layer and the in-process controllers both go through here.

mod alloc;
mod bootstrap;
mod lifecycle;
mod paging;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use podnet_proto::model::str_at;
use podnet_proto::model::{
    FieldSelector, InvalidSelector, Kind, LabelSelector, ObjectKey, UnknownKind,
};
use serde_json::{Value, json};

use crate::store::{
    Entry, Event, EventType, Op, Precondition, Storage, StoreError, WatchError, Watcher,
};
use crate::validate::{self, InvalidObject, Validated};

use alloc::Taken;
pub use alloc::{API_SERVICE, DNS_SERVICE, ServiceRanges};
pub use bootstrap::{INGRESS_CONTROLLER, INGRESS_NAMESPACE};
pub use lifecycle::IMMORTAL_NAMESPACES;
pub use paging::{InvalidContinue, ListPage};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },
    #[error(
        "operation cannot be fulfilled on {key}: the object has been modified (resourceVersion {given}, now {current}); read it again and retry"
    )]
    Conflict {
        key: ObjectKey,
        given: String,
        current: u64,
    },
    #[error("namespace {namespace:?} not found (needed by {key})")]
    NamespaceNotFound { namespace: String, key: ObjectKey },
    #[error(transparent)]
    Invalid(#[from] InvalidObject),
    #[error("object is not valid JSON")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Kind(#[from] UnknownKind),
    #[error(transparent)]
    Selector(#[from] InvalidSelector),
    #[error("{key}: {reason}")]
    Forbidden { key: ObjectKey, reason: String },
    /// NamespaceLifecycle refused a delete, with upstream's message.
    #[error("namespaces {name:?} is forbidden: this namespace may not be deleted")]
    ImmortalNamespace { name: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Continue(#[from] InvalidContinue),
}

/// What an apply did to one object, as kubectl prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyAction {
    Created,
    Configured,
    Unchanged,
}

impl ApplyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyAction::Created => "created",
            ApplyAction::Configured => "configured",
            ApplyAction::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug)]
pub struct Applied {
    pub object: Value,
    pub action: ApplyAction,
    pub warnings: Vec<String>,
}

/// A watch event with its object's resourceVersion filled in.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub ty: &'static str,
    pub object: Value,
    pub revision: u64,
}

/// What a new cluster gets besides its namespaces and the `kubernetes`
/// Service: cluster DNS and the ingress controller.
#[derive(Debug, Clone, Default)]
pub struct Addons {
    /// Replicas of the `coredns` Deployment.
    pub dns_replicas: u32,
    /// Replicas of the ingress controller (0: none).
    pub ingress_replicas: u32,
    /// NAMESPACE/NAME of the ingress controller's default backend Service.
    pub ingress_default_backend: Option<String>,
}

impl Addons {
    /// Cluster DNS of `replicas`, no ingress controller.
    pub fn dns(replicas: u32) -> Addons {
        Addons {
            dns_replicas: replicas,
            ..Addons::default()
        }
    }
}

#[derive(Clone)]
pub struct Registry {
    storage: Storage,
    services: Arc<ServiceAllocator>,
}

/// Service address allocation: the ranges, and the lock held from reading
/// the stored Services until a Service write is committed.
struct ServiceAllocator {
    ranges: ServiceRanges,
    lock: Mutex<()>,
}

/// Namespaces every cluster starts with.
pub const INITIAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reads an entry into an object with its resourceVersion.
fn decode(entry: &Entry) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&entry.value)?;
    set_resource_version(&mut v, entry.mod_revision);
    Ok(v)
}

fn set_resource_version(v: &mut Value, revision: u64) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

fn encode(v: &Value) -> Result<Vec<u8>, ApiError> {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    Ok(serde_json::to_vec(&v)?)
}

pub fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn key_of(v: &Value) -> Result<ObjectKey, ApiError> {
    let kind = Kind::from_type(str_at(v, "/apiVersion"), str_at(v, "/kind"))?;
    Ok(ObjectKey::new(
        kind,
        str_at(v, "/metadata/namespace"),
        str_at(v, "/metadata/name"),
    ))
}

/// Carries server-owned metadata from the stored object to its replacement.
fn carry_metadata(old: &Value, new: &mut Value) {
    let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    if meta.get("ownerReferences").is_none()
        && let Some(owners) = old.pointer("/metadata/ownerReferences")
    {
        meta.insert("ownerReferences".into(), owners.clone());
    }
}

/// A pod re-applied from its manifest keeps the node it is bound to, as
/// `kubectl apply` does (the manifest never names the node).
fn carry_binding(old: &Value, new: &mut Value) {
    let bound = str_at(old, "/spec/nodeName");
    if str_at(old, "/kind") == "Pod"
        && !bound.is_empty()
        && str_at(new, "/spec/nodeName").is_empty()
        && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.insert("nodeName".into(), json!(bound));
    }
}

fn generation(v: &Value) -> i64 {
    v.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn parse_rv(key: &ObjectKey, rv: &str) -> Result<Option<u64>, ApiError> {
    if rv.is_empty() {
        return Ok(None);
    }
    rv.parse().map(Some).map_err(|_| ApiError::Conflict {
        key: key.clone(),
        given: rv.to_string(),
        current: 0,
    })
}

impl Registry {
    /// A registry allocating Service addresses from the default ranges.
    pub fn new(storage: Storage) -> Registry {
        Registry::with_service_ranges(storage, ServiceRanges::default())
    }

    pub fn with_service_ranges(storage: Storage, ranges: ServiceRanges) -> Registry {
        Registry {
            storage,
            services: Arc::new(ServiceAllocator {
                ranges,
                lock: Mutex::new(()),
            }),
        }
    }

    pub fn service_ranges(&self) -> &ServiceRanges {
        &self.services.ranges
    }

    /// Creates what a cluster starts with, each only if missing: the
    /// initial namespaces, the `kubernetes` Service, and cluster DNS (the
    /// `kube-dns` Service and the `coredns` Deployment of `dns_replicas`
    /// pods), and the ingress controller (`ingress_replicas` pods; none
    /// at all when 0).
    pub fn bootstrap(&self, addons: &Addons) -> Result<(), ApiError> {
        let ranges = self.service_ranges();
        let objects = INITIAL_NAMESPACES
            .into_iter()
            .map(bootstrap::namespace)
            .chain([
                bootstrap::kubernetes_service(ranges.api_service_ip()),
                bootstrap::dns_service(ranges.dns_service_ip()),
                bootstrap::dns_deployment(addons.dns_replicas),
            ])
            .chain(
                (addons.ingress_replicas > 0)
                    .then(|| {
                        bootstrap::ingress_objects(
                            addons.ingress_replicas,
                            addons.ingress_default_backend.as_deref(),
                        )
                    })
                    .into_iter()
                    .flatten(),
            );
        for object in objects {
            if self.get(&key_of(&object)?)?.is_none() {
                match self.create(object) {
                    Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Held across "read the Services, pick, write" of any Service write.
    fn allocation_lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is as good as a fresh one.
        self.services
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn taken(&self) -> Result<Taken, ApiError> {
        Ok(Taken::of(&self.list_all(Kind::Service, "")?))
    }

    /// Validates an update body against the stored `old`: for a Service,
    /// fields its new type does not use are dropped first.
    fn validate_replacement(old: &Value, object: &Value) -> Result<Validated, ApiError> {
        if str_at(object, "/kind") == Kind::Service.as_str() {
            let mut object = object.clone();
            alloc::drop_type_dependent_fields(old, &mut object);
            alloc::release_secondary(old, &mut object);
            Ok(validate::validate(&object)?)
        } else {
            Ok(validate::validate(object)?)
        }
    }

    /// Validates one object of an apply: as a replacement of the stored
    /// object when it is a Service that exists (see `validate_replacement`).
    fn validate_applied(&self, object: &Value) -> Result<Validated, ApiError> {
        if str_at(object, "/kind") == Kind::Service.as_str()
            && str_at(object, "/apiVersion") == Kind::Service.api_version()
        {
            let namespace = match str_at(object, "/metadata/namespace") {
                "" => validate::DEFAULT_NAMESPACE,
                ns => ns,
            };
            let key = ObjectKey::new(Kind::Service, namespace, str_at(object, "/metadata/name"));
            if let Some(entry) = self.storage.get(&key.storage_key())? {
                return Registry::validate_replacement(&decode(&entry)?, object);
            }
        }
        Ok(validate::validate(object)?)
    }

    /// What the registry adds to a validated update of `old` before it is
    /// checked against `old`: the binding of a pod, the addresses of a
    /// Service.
    fn carry_over(old: &Value, new: &mut Validated) {
        carry_binding(old, &mut new.object);
        if new.key.kind == Kind::Service {
            alloc::carry_allocations(old, &mut new.object);
        }
    }

    pub fn revision(&self) -> Result<u64, ApiError> {
        Ok(self.storage.revision()?)
    }

    pub fn get(&self, key: &ObjectKey) -> Result<Option<Value>, ApiError> {
        self.storage
            .get(&key.storage_key())?
            .as_ref()
            .map(decode)
            .transpose()
    }

    pub fn must_get(&self, key: &ObjectKey) -> Result<Value, ApiError> {
        self.get(key)?
            .ok_or_else(|| ApiError::NotFound { key: key.clone() })
    }

    /// Objects of `kind` (in `namespace` if non-empty) matching both
    /// selectors, and the revision the list was read at.
    pub fn list(
        &self,
        kind: Kind,
        namespace: &str,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<(Vec<Value>, u64), ApiError> {
        let (entries, revision) = self.storage.list(&ObjectKey::prefix(kind, namespace))?;
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            let v = decode(e)?;
            if labels.matches(&labels_of(&v)) && fields.matches(&v) {
                out.push(v);
            }
        }
        Ok((out, revision))
    }

    pub fn list_all(&self, kind: Kind, namespace: &str) -> Result<Vec<Value>, ApiError> {
        Ok(self
            .list(
                kind,
                namespace,
                &LabelSelector::everything(),
                &FieldSelector::default(),
            )?
            .0)
    }

    fn check_namespace(&self, key: &ObjectKey, batch: &[ObjectKey]) -> Result<(), ApiError> {
        if !key.kind.namespaced() {
            return Ok(());
        }
        let ns_key = ObjectKey::new(Kind::Namespace, "", &key.namespace);
        if batch.contains(&ns_key) || self.get(&ns_key)?.is_some() {
            return Ok(());
        }
        Err(ApiError::NamespaceNotFound {
            namespace: key.namespace.clone(),
            key: key.clone(),
        })
    }

    /// Fills in what the server owns on a new object.
    fn prepare_new(mut object: Value) -> Value {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert(
                "uid".into(),
                Value::String(uuid::Uuid::new_v4().to_string()),
            );
            meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
            meta.insert("generation".into(), json!(1));
            meta.remove("deletionTimestamp");
            meta.remove("deletionGracePeriodSeconds");
        }
        object
    }

    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let validated = validate::validate(&object)?;
        self.check_namespace(&validated.key, &[])?;
        let mut object = Registry::prepare_new(validated.object);
        let key = validated.key;
        let _allocating = (key.kind == Kind::Service).then(|| self.allocation_lock());
        if key.kind == Kind::Service {
            alloc::allocate(
                self.service_ranges(),
                &self.taken()?,
                &key,
                &mut object,
                None,
            )?;
        }
        let (revision, _) = self
            .storage
            .txn(vec![Op::Put {
                key: key.storage_key(),
                value: encode(&object)?,
                pre: Precondition::MustNotExist,
            }])
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => ApiError::AlreadyExists { key: key.clone() },
                e => e.into(),
            })?;
        set_resource_version(&mut object, revision);
        Ok(object)
    }

    /// Replaces an object's spec and metadata (not its status), checking
    /// `metadata.resourceVersion` when given.
    pub fn update(&self, object: Value) -> Result<Value, ApiError> {
        self.replace(object, false)
    }

    /// Replaces an object's status only.
    pub fn update_status(&self, object: Value) -> Result<Value, ApiError> {
        self.replace(object, true)
    }

    fn replace(&self, object: Value, status_only: bool) -> Result<Value, ApiError> {
        // Without a resourceVersion the caller replaces whatever is stored:
        // a write that slipped in between our read and our commit is
        // retried (with one, it is the caller's Conflict).
        let unconditional = str_at(&object, "/metadata/resourceVersion").is_empty();
        let mut attempts = 0;
        loop {
            match self.replace_once(object.clone(), status_only) {
                Err(ApiError::Store(StoreError::Conflict { .. }))
                    if unconditional && attempts < 16 =>
                {
                    attempts += 1
                }
                other => return other,
            }
        }
    }

    fn replace_once(&self, object: Value, status_only: bool) -> Result<Value, ApiError> {
        let key = key_of(&object)?;
        let allocating = key.kind == Kind::Service && !status_only;
        let _allocating = allocating.then(|| self.allocation_lock());
        let entry = self
            .storage
            .get(&key.storage_key())?
            .ok_or_else(|| ApiError::NotFound { key: key.clone() })?;
        if let Some(rv) = parse_rv(&key, str_at(&object, "/metadata/resourceVersion"))?
            && rv != entry.mod_revision
        {
            return Err(ApiError::Conflict {
                key,
                given: rv.to_string(),
                current: entry.mod_revision,
            });
        }
        let old = decode(&entry)?;
        let new = if status_only {
            let mut new = old.clone();
            match object.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            new
        } else {
            let mut validated = Registry::validate_replacement(&old, &object)?;
            Registry::carry_over(&old, &mut validated);
            validate::validate_update(&old, &validated)?;
            if allocating {
                alloc::allocate(
                    self.service_ranges(),
                    &self.taken()?,
                    &key,
                    &mut validated.object,
                    Some(&old),
                )?;
            }
            let mut new = self.merge_update(&old, validated.object);
            if allocating {
                alloc::clear_stale_status(&old, &mut new);
            }
            new
        };
        if new == old {
            return Ok(old);
        }
        let (revision, _) = self.storage.txn(vec![Op::Put {
            key: key.storage_key(),
            value: encode(&new)?,
            pre: Precondition::ModRevision(entry.mod_revision),
        }])?;
        let mut new = new;
        set_resource_version(&mut new, revision);
        Ok(new)
    }

    /// The stored form of `new` replacing `old`: server metadata carried,
    /// status kept, generation bumped when the spec changed.
    fn merge_update(&self, old: &Value, mut new: Value) -> Value {
        carry_metadata(old, &mut new);
        if let Some(o) = new.as_object_mut() {
            match old.get("status") {
                Some(s) => o.insert("status".into(), s.clone()),
                None => o.remove("status"),
            };
        }
        let mut next_gen = generation(old);
        if old.get("spec") != new.get("spec") {
            next_gen += 1;
        }
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("generation".into(), json!(next_gen));
            meta.insert(
                "resourceVersion".into(),
                json!(str_at(old, "/metadata/resourceVersion")),
            );
        }
        new
    }

    /// Creates or updates every object; all are validated (and Services
    /// allocated) before anything is written, and all are written in one
    /// store transaction. A dry run allocates too, to report what a real
    /// apply would, and writes nothing.
    /// Writes objects a controller derived from already validated state
    /// (EndpointSlices, Endpoints) in one transaction, without validating
    /// them again: a pod change rewrites the slices of every Service that
    /// selects it, and validating each made the EndpointSlice pass the
    /// slowest step of network programming. Server metadata is kept as
    /// `apply` keeps it; unchanged objects are not written.
    pub fn apply_derived(&self, objects: Vec<Value>) -> Result<(), ApiError> {
        let mut ops = Vec::new();
        for object in objects {
            let key = key_of(&object)?;
            debug_assert!(
                matches!(key.kind, Kind::EndpointSlice | Kind::Endpoints),
                "{key} is not derived state"
            );
            let (new, pre) = match self.storage.get(&key.storage_key())? {
                None => (Registry::prepare_new(object), Precondition::MustNotExist),
                Some(entry) => {
                    let old = decode(&entry)?;
                    let new = self.merge_update(&old, object);
                    if new == old {
                        continue;
                    }
                    (new, Precondition::ModRevision(entry.mod_revision))
                }
            };
            ops.push(Op::Put {
                key: key.storage_key(),
                value: encode(&new)?,
                pre,
            });
        }
        if !ops.is_empty() {
            self.storage.txn(ops)?;
        }
        Ok(())
    }

    pub fn apply(&self, objects: Vec<Value>, dry_run: bool) -> Result<Vec<Applied>, ApiError> {
        // Objects without a resourceVersion are applied whatever the stored
        // version: a controller's write landing between the read and the
        // write (a Deployment's status) is merged again, not an error.
        let unconditional = objects
            .iter()
            .all(|o| str_at(o, "/metadata/resourceVersion").is_empty());
        let mut attempts = 0;
        loop {
            match self.apply_once(&objects, dry_run) {
                Err(ApiError::Store(StoreError::Conflict { .. }))
                    if unconditional && attempts < 16 =>
                {
                    attempts += 1;
                }
                result => return result,
            }
        }
    }

    fn apply_once(&self, objects: &[Value], dry_run: bool) -> Result<Vec<Applied>, ApiError> {
        let services = objects
            .iter()
            .any(|o| str_at(o, "/kind") == Kind::Service.as_str());
        let _allocating = services.then(|| self.allocation_lock());
        let mut taken = if services {
            self.taken()?
        } else {
            Taken::default()
        };
        let mut validated = Vec::with_capacity(objects.len());
        for object in objects {
            validated.push(self.validate_applied(object)?);
        }
        let keys: Vec<ObjectKey> = validated.iter().map(|v| v.key.clone()).collect();
        let mut ops = Vec::new();
        let mut results = Vec::new();
        for mut v in validated {
            self.check_namespace(&v.key, &keys)?;
            let current = self.storage.get(&v.key.storage_key())?;
            let service = v.key.kind == Kind::Service;
            let (object, action, pre) = match &current {
                None => {
                    let mut new = Registry::prepare_new(v.object);
                    if service {
                        alloc::allocate(self.service_ranges(), &taken, &v.key, &mut new, None)?;
                        taken.insert(&new);
                    }
                    (new, ApplyAction::Created, Precondition::MustNotExist)
                }
                Some(entry) => {
                    let old = decode(entry)?;
                    Registry::carry_over(&old, &mut v);
                    validate::validate_update(&old, &v)?;
                    if service {
                        alloc::allocate(
                            self.service_ranges(),
                            &taken,
                            &v.key,
                            &mut v.object,
                            Some(&old),
                        )?;
                        taken.insert(&v.object);
                    }
                    let mut new = self.merge_update(&old, v.object);
                    if service {
                        alloc::clear_stale_status(&old, &mut new);
                    }
                    let action = if new == old {
                        ApplyAction::Unchanged
                    } else {
                        ApplyAction::Configured
                    };
                    (new, action, Precondition::ModRevision(entry.mod_revision))
                }
            };
            if action != ApplyAction::Unchanged {
                ops.push(Op::Put {
                    key: v.key.storage_key(),
                    value: encode(&object)?,
                    pre,
                });
            }
            results.push(Applied {
                object,
                action,
                warnings: v.warnings,
            });
        }
        if !dry_run && !ops.is_empty() {
            let (revision, _) = self.storage.txn(ops)?;
            for r in &mut results {
                if r.action != ApplyAction::Unchanged {
                    set_resource_version(&mut r.object, revision);
                }
            }
        }
        Ok(results)
    }

    /// Deletes an object. A pod bound to a node with a grace period is only
    /// marked (deletionTimestamp) and removed by its node once stopped.
    /// Dependents (by ownerReference) and a namespace's contents go with it.
    pub fn delete(
        &self,
        key: &ObjectKey,
        grace_period_seconds: Option<i64>,
        precondition_rv: &str,
    ) -> Result<Value, ApiError> {
        lifecycle::admit_delete(key).map_err(|name| ApiError::ImmortalNamespace { name })?;
        // Without a resourceVersion precondition the caller asked for the
        // object's deletion whatever its version: a concurrent write (a
        // status update racing a node's final delete) is retried, not
        // reported.
        let mut attempts = 0;
        loop {
            match self.delete_once(key, grace_period_seconds, precondition_rv) {
                Err(ApiError::Store(StoreError::Conflict { .. }))
                    if precondition_rv.is_empty() && attempts < 16 =>
                {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    fn delete_once(
        &self,
        key: &ObjectKey,
        grace_period_seconds: Option<i64>,
        precondition_rv: &str,
    ) -> Result<Value, ApiError> {
        let entry = self
            .storage
            .get(&key.storage_key())?
            .ok_or_else(|| ApiError::NotFound { key: key.clone() })?;
        if let Some(rv) = parse_rv(key, precondition_rv)?
            && rv != entry.mod_revision
        {
            return Err(ApiError::Conflict {
                key: key.clone(),
                given: rv.to_string(),
                current: entry.mod_revision,
            });
        }
        let mut object = decode(&entry)?;
        // A pod that never ran or has ended (Succeeded, Failed) has no
        // containers to stop: deleted at once, as the API server's
        // CheckGracefulDelete.
        let ended = matches!(str_at(&object, "/status/phase"), "Succeeded" | "Failed");
        if key.kind == Kind::Pod && !str_at(&object, "/spec/nodeName").is_empty() && !ended {
            let grace = grace_period_seconds
                .or_else(|| {
                    object
                        .pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30)
                .max(0);
            if grace > 0 {
                let current = object
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64);
                // Deleting a terminating pod again may only shorten its
                // grace period, as the API server's BeforeDelete: the
                // deletionTimestamp moves by the difference.
                // Deleting a terminating pod again without a period leaves
                // its deletion pending.
                let asked = grace_period_seconds.unwrap_or(i64::MAX);
                let at = match (object.pointer("/metadata/deletionTimestamp"), current) {
                    (Some(_), Some(current)) if asked >= current => return Ok(object),
                    (Some(at), Some(current)) => at
                        .as_str()
                        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                        .map(|at| {
                            at.with_timezone(&chrono::Utc)
                                - chrono::Duration::seconds(current - grace)
                        })
                        .unwrap_or_else(|| chrono::Utc::now() + chrono::Duration::seconds(grace)),
                    (Some(_), None) => return Ok(object),
                    (None, _) => chrono::Utc::now() + chrono::Duration::seconds(grace),
                };
                object["metadata"]["deletionTimestamp"] =
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                object["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                let (revision, _) = self.storage.txn(vec![Op::Put {
                    key: key.storage_key(),
                    value: encode(&object)?,
                    pre: Precondition::ModRevision(entry.mod_revision),
                }])?;
                set_resource_version(&mut object, revision);
                return Ok(object);
            }
        }
        match self.storage.txn(vec![Op::Delete {
            key: key.storage_key(),
            pre: Precondition::ModRevision(entry.mod_revision),
        }]) {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => return Ok(object),
            Err(e) => return Err(e.into()),
        }
        self.delete_dependents(key, &object)?;
        Ok(object)
    }

    fn delete_dependents(&self, key: &ObjectKey, object: &Value) -> Result<(), ApiError> {
        let uid = str_at(object, "/metadata/uid");
        let mut dependents = Vec::new();
        if key.kind == Kind::Namespace {
            for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
                dependents.extend(self.list_all(kind, &key.name)?);
            }
        } else if key.kind.namespaced() && !uid.is_empty() {
            for &kind in dependent_kinds(key.kind) {
                for v in self.list_all(kind, &key.namespace)? {
                    let owned = v
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|owners| owners.iter().any(|o| str_at(o, "/uid") == uid));
                    if owned {
                        dependents.push(v);
                    }
                }
            }
        }
        for d in dependents {
            match self.delete(&key_of(&d)?, None, "") {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Events after `from_revision` for `kind` (in `namespace` if
    /// non-empty) that match the selectors.
    pub fn watch(
        &self,
        kind: Kind,
        namespace: &str,
        labels: LabelSelector,
        fields: FieldSelector,
        from_revision: u64,
    ) -> Result<RegistryWatch, ApiError> {
        let watcher = self
            .storage
            .watch(&ObjectKey::prefix(kind, namespace), from_revision)?;
        Ok(RegistryWatch {
            watcher,
            labels,
            fields,
        })
    }
}

pub struct RegistryWatch {
    watcher: Watcher,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl RegistryWatch {
    /// The next matching event; `None` when the watch ended.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, ApiError>> {
        loop {
            let event = match self.watcher.next().await? {
                Ok(e) => e,
                Err(e) => return Some(Err(e.into())),
            };
            match to_watch_event(&event) {
                Ok(w)
                    if self.labels.matches(&labels_of(&w.object))
                        && self.fields.matches(&w.object) =>
                {
                    return Some(Ok(w));
                }
                Ok(_) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The kinds whose objects podnet's controllers make owned by an object of
/// `owner`: what a delete of one cascades to at once. Deleting a pod then
/// reads nothing more, where looking through every kind made deleting n
/// pods read n² objects. Dependents any other way (an ownerReference a
/// user wrote) are the garbage collector's (`controllers::garbagecollector`).
fn dependent_kinds(owner: Kind) -> &'static [Kind] {
    match owner {
        Kind::Deployment => &[Kind::ReplicaSet],
        Kind::ReplicaSet => &[Kind::Pod],
        Kind::Service => &[Kind::EndpointSlice],
        // The mirroring controller's slices.
        Kind::Endpoints => &[Kind::EndpointSlice],
        _ => &[],
    }
}

fn to_watch_event(event: &Arc<Event>) -> Result<WatchEvent, ApiError> {
    let mut object: Value = serde_json::from_slice(&event.value)?;
    set_resource_version(&mut object, event.revision);
    let ty = match (&event.ty, event.created) {
        (EventType::Put, true) => "ADDED",
        (EventType::Put, false) => "MODIFIED",
        (EventType::Delete, _) => "DELETED",
    };
    Ok(WatchEvent {
        ty,
        object,
        revision: event.revision,
    })
}

#[cfg(test)]
mod tests;
