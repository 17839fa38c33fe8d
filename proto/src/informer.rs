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

/// Objects one list request asks for, as client-go's reflector pages.
const LIST_CHUNK: u32 = 500;

/// The objects of `kind` matching `field_selector`, page by page, and the
/// list's revision.
async fn list_pages(
    api: &mut ApiClient<Channel>,
    kind: &str,
    field_selector: &str,
) -> Result<(Cache, u64), tonic::Status> {
    let mut req = ListRequest {
        kind: kind.into(),
        field_selector: field_selector.into(),
        limit: LIST_CHUNK,
        ..Default::default()
    };
    let mut cache = Cache::new();
    loop {
        let page = api.list(req.clone()).await?.into_inner();
        for item in &page.items {
            if let Ok(v) = serde_json::from_slice::<Value>(item) {
                cache.insert(cache_key(&v), v);
            }
        }
        if page.r#continue.is_empty() {
            return Ok((cache, page.revision));
        }
        req.r#continue = page.r#continue;
    }
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
        let listed = list_pages(&mut api, kind, &field_selector).await;
        match listed {
            Ok((cache, revision)) => {
                tx.send_replace(cache);
                let req = WatchRequest {
                    kind: kind.into(),
                    field_selector: field_selector.clone(),
                    from_revision: revision,
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
