//! What a node knows of the cluster's Services and EndpointSlices, kept
//! current by the agent's informers and shared by the service proxy and the
//! cluster DNS workload. Objects are Kubernetes JSON, keyed `namespace/name`.
//!
//! Readers get a consistent snapshot (`Arc<ClusterView>`) and wait for the
//! next one with `changed()`; nothing here talks to the network.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, Default, Clone)]
pub struct ClusterView {
    /// Service objects by `namespace/name`.
    pub services: BTreeMap<String, Value>,
    /// EndpointSlice objects by `namespace/name`.
    pub endpoint_slices: BTreeMap<String, Value>,
}

/// A subscription to the node's view of the cluster.
pub type ClusterViewRx = watch::Receiver<Arc<ClusterView>>;

/// A receiver whose view never changes (tests, standalone namespaces).
pub fn fixed(view: ClusterView) -> ClusterViewRx {
    let (tx, rx) = watch::channel(Arc::new(view));
    // The sender is dropped: `changed()` reports an error, `borrow()` keeps
    // returning the last view.
    drop(tx);
    rx
}
