//! The client side of list-then-watch, shared by every role that follows
//! the API: an informer keeps a local cache of one kind equal to the
//! control plane's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::model::str_at;
use crate::v1::api_client::ApiClient;
use crate::v1::{ListRequest, WatchRequest};

/// Objects of one kind by `namespace/name` (`/name` for cluster-scoped).
pub type Cache = BTreeMap<String, Value>;

/// The key of `v` in a [`Cache`].
pub fn cache_key(v: &Value) -> String {
    format!(
        "{}/{}",
        str_at(v, "/metadata/namespace"),
        str_at(v, "/metadata/name")
    )
}

/// Keeps `tx` equal to the objects of `kind` matching `field_selector`:
/// list, then watch from the list's revision; list again when the watch
/// breaks (backing off up to a second while the control plane is away).
/// Objects that do not decode are skipped.
pub async fn informer(
    mut api: ApiClient<Channel>,
    kind: &'static str,
    field_selector: String,
    tx: watch::Sender<Cache>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let listed = api
            .list(ListRequest {
                kind: kind.into(),
                field_selector: field_selector.clone(),
                ..Default::default()
            })
            .await;
        match listed {
            Ok(list) => {
                let list = list.into_inner();
                let mut cache = Cache::new();
                for item in &list.items {
                    if let Ok(v) = serde_json::from_slice::<Value>(item) {
                        cache.insert(cache_key(&v), v);
                    }
                }
                tx.send_replace(cache);
                let req = WatchRequest {
                    kind: kind.into(),
                    field_selector: field_selector.clone(),
                    from_revision: list.revision,
                    ..Default::default()
                };
                match api.watch(req).await {
                    Ok(stream) => {
                        backoff = Duration::from_millis(50);
                        let mut stream = stream.into_inner();
                        loop {
                            let msg = tokio::select! {
                                _ = shutdown.cancelled() => return,
                                m = stream.message() => m,
                            };
                            match msg {
                                Ok(Some(ev)) => {
                                    let Ok(v) = serde_json::from_slice::<Value>(&ev.object) else {
                                        continue;
                                    };
                                    let key = cache_key(&v);
                                    tx.send_modify(|c| {
                                        if ev.r#type == "DELETED" {
                                            c.remove(&key);
                                        } else {
                                            c.insert(key, v);
                                        }
                                    });
                                }
                                Ok(None) => break,
                                Err(s) => {
                                    tracing::debug!(code = ?s.code(), error = %s.message(), "watch ended");
                                    break;
                                }
                            }
                        }
                    }
                    Err(s) => tracing::debug!(error = %s.message(), "watch failed"),
                }
            }
            Err(s) => tracing::debug!(error = %s.message(), "list failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
