//! The control plane's API as the client, the runner, the launcher and the
//! benchmarks use it: connect (as the admin of a state directory), list,
//! apply, exec, Link objects, and API errors turned into the errors a user
//! should see (invalid input exits with 64).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use podnet_proto::auth::{self, Credentials};
use podnet_proto::model::{Kind, LINK_API_VERSION, LinkSpec, MAX_API_MESSAGE_BYTES};
use podnet_proto::v1::api_client::ApiClient;
use podnet_proto::v1::{ApplyRequest, ExecRequest, ListRequest};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::manifest::InputError;
use crate::record::ClusterRecord;

pub type Api = ApiClient<Channel>;

/// The admin's credentials of the cluster whose state dir is `state`
/// (`controlplane/ca.crt` and `controlplane/podnet-admin.{crt,key}`).
pub fn admin_credentials(state: &Path) -> anyhow::Result<Credentials> {
    Credentials::read(&controlplane_dir(state), auth::ADMIN_CREDENTIALS).with_context(|| {
        format!(
            "no credentials for the cluster in {} (is it a podnet state dir?)",
            state.display()
        )
    })
}

/// Where the control plane of the cluster in `state` keeps its store and
/// credentials.
pub fn controlplane_dir(state: &Path) -> std::path::PathBuf {
    state.join("controlplane")
}

/// The API at `addr` over TLS as `credentials`' user.
pub async fn connect(addr: &str, credentials: &Credentials) -> anyhow::Result<Api> {
    let channel = credentials
        .endpoint(addr, auth::API_SERVER_NAME)
        .with_context(|| format!("bad control plane address {addr:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot reach the control plane at {addr}"))?;
    Ok(ApiClient::new(channel))
}

/// The API of the cluster in `state`, as its admin.
pub async fn from_state(state: &Path) -> anyhow::Result<Api> {
    let record = ClusterRecord::read(state)?;
    connect(&record.controlplane, &admin_credentials(state)?)
        .await
        .map_err(|e| crate::failure::unreachable(state, e))
}

/// Turns an API error into the error a user should see; invalid input
/// exits with 64.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    match s.code() {
        tonic::Code::InvalidArgument => InputError(s.message().to_string()).into(),
        _ => anyhow::anyhow!("{}", s.message()),
    }
}

/// Every object of `kind` in every namespace matching `label_selector`.
pub async fn list_objects(
    api: &mut Api,
    kind: &str,
    label_selector: &str,
) -> anyhow::Result<Vec<Value>> {
    let req = ListRequest {
        kind: kind.into(),
        label_selector: label_selector.into(),
        ..Default::default()
    };
    Ok(list_all(api, req).await?.0)
}

/// Objects one list request asks for: kubectl's `--chunk-size` default,
/// so a response stays far below the 4 MiB a gRPC message may have.
pub const LIST_CHUNK: u32 = 500;

/// Every object `req` selects, asked for [`LIST_CHUNK`] at a time (as
/// kubectl pages), and the revision of the list (watch from it).
pub async fn list_all(api: &mut Api, mut req: ListRequest) -> anyhow::Result<(Vec<Value>, u64)> {
    req.limit = LIST_CHUNK;
    req.r#continue.clear();
    let mut items = Vec::new();
    loop {
        let page = api
            .list(req.clone())
            .await
            .map_err(status_error)?
            .into_inner();
        for b in &page.items {
            items.push(serde_json::from_slice(b).context("server sent a bad object")?);
        }
        if page.r#continue.is_empty() {
            return Ok((items, page.revision));
        }
        req.r#continue = page.r#continue;
    }
}

/// Sets `namespace` on namespaced objects that have none.
pub fn default_namespace(objects: &mut [Value], namespace: &str) {
    for o in objects {
        let namespaced = Kind::from_type(
            o.get("apiVersion").and_then(Value::as_str).unwrap_or(""),
            o.get("kind").and_then(Value::as_str).unwrap_or(""),
        )
        .is_ok_and(|k| k.namespaced());
        if namespaced
            && o.pointer("/metadata/namespace").is_none()
            && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("namespace".into(), json!(namespace));
        }
    }
}

/// Applies objects in one request (all or nothing) and prints kubectl's
/// lines; warnings go to stderr.
pub async fn apply_objects(
    api: &mut Api,
    objects: &[Value],
    dry_run: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let req = ApplyRequest {
        objects: objects
            .iter()
            .map(|o| serde_json::to_vec(o).unwrap_or_default())
            .collect(),
        dry_run,
    };
    let size = prost::Message::encoded_len(&req);
    if size > MAX_API_MESSAGE_BYTES {
        return Err(InputError(format!(
            "{} objects encode to {size} bytes, more than the {MAX_API_MESSAGE_BYTES} bytes one apply may carry; apply them in several parts",
            objects.len()
        ))
        .into());
    }
    // The answer carries every object back.
    let mut api = api.clone().max_decoding_message_size(MAX_API_MESSAGE_BYTES);
    let resp = api
        .apply(req)
        .await
        .map_err(|s| match s.code() {
            // An apply finds nothing missing but a namespace an object
            // names: the manifest is what is wrong, as for an invalid one.
            tonic::Code::NotFound => InputError(s.message().to_string()).into(),
            _ => status_error(s),
        })?
        .into_inner();
    for r in resp.results {
        let v: Value = serde_json::from_slice(&r.object).context("server sent a bad object")?;
        for w in &r.warnings {
            eprintln!("Warning: {w}");
        }
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let suffix = if dry_run { " (server dry run)" } else { "" };
        writeln!(out, "{kind}/{name} {}{suffix}", r.action)?;
    }
    Ok(())
}

pub async fn exec_in(
    api: &mut Api,
    namespace: &str,
    pod: &str,
    command: &[String],
    stdin: Vec<u8>,
) -> anyhow::Result<podnet_proto::v1::ExecResponse> {
    let req = ExecRequest {
        namespace: namespace.into(),
        pod: pod.into(),
        container: String::new(),
        command: command.to_vec(),
        stdin,
    };
    Ok(api.exec(req).await.map_err(status_error)?.into_inner())
}

/// Link objects for one direction, or both.
/// Sets `spec.replicas` of a Deployment or ReplicaSet and gives the number
/// it had. Read, set, write with the version read; a controller's status
/// write in between is a conflict, and the scale is tried again on the new
/// version (what kubectl scale does through the scale subresource).
pub async fn scale(
    api: &mut Api,
    kind: &str,
    namespace: &str,
    name: &str,
    replicas: u32,
) -> anyhow::Result<i64> {
    for _ in 0..10 {
        let req = podnet_proto::v1::GetRequest {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut object: Value = serde_json::from_slice(
            &api.get(req)
                .await
                .map_err(status_error)?
                .into_inner()
                .object,
        )?;
        let before = object
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        object["spec"]["replicas"] = json!(replicas);
        let body = podnet_proto::v1::ObjectRequest {
            object: serde_json::to_vec(&object)?,
        };
        match api.update(body).await {
            Ok(_) => return Ok(before),
            Err(s) if s.code() == tonic::Code::Aborted => continue,
            Err(s) => return Err(status_error(s)),
        }
    }
    anyhow::bail!(
        "{}/{name} kept changing while being scaled; try again",
        kind.to_ascii_lowercase()
    )
}

/// Sets the image and env of every container of a Deployment's pod
/// template (a rollout, as `kubectl set image` / `set env` start one);
/// gives the Deployment's new generation.
pub async fn set_template(
    api: &mut Api,
    namespace: &str,
    name: &str,
    image: Option<&str>,
    env: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<i64> {
    for _ in 0..10 {
        let req = podnet_proto::v1::GetRequest {
            kind: "Deployment".into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut object: Value = serde_json::from_slice(
            &api.get(req)
                .await
                .map_err(status_error)?
                .into_inner()
                .object,
        )?;
        let Some(containers) = object
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
        else {
            anyhow::bail!("deployment {namespace}/{name} has no containers");
        };
        for c in containers {
            if let Some(image) = image {
                c["image"] = json!(image);
            }
            for (k, v) in env {
                let list = c
                    .as_object_mut()
                    .map(|m| m.entry("env").or_insert_with(|| json!([])));
                if let Some(Value::Array(list)) = list {
                    match list.iter_mut().find(|e| e["name"] == k.as_str()) {
                        Some(e) => *e = json!({"name": k, "value": v}),
                        None => list.push(json!({"name": k, "value": v})),
                    }
                }
            }
        }
        let body = podnet_proto::v1::ObjectRequest {
            object: serde_json::to_vec(&object)?,
        };
        match api.update(body).await {
            Ok(r) => {
                let updated: Value = serde_json::from_slice(&r.into_inner().object)?;
                return Ok(updated
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0));
            }
            Err(s) if s.code() == tonic::Code::Aborted => continue,
            Err(s) => return Err(status_error(s)),
        }
    }
    anyhow::bail!(
        "deployment {namespace}/{name} kept changing while its template was set; try again"
    )
}

pub fn link_objects(spec: &LinkSpec, one_way: bool) -> Vec<Value> {
    let mut specs = vec![spec.clone()];
    if !one_way {
        specs.push(LinkSpec {
            from: spec.to.clone(),
            to: spec.from.clone(),
            ..spec.clone()
        });
    }
    specs
        .into_iter()
        .map(|s| json!({"apiVersion": LINK_API_VERSION, "kind": "Link", "metadata": {"name": s.name()}, "spec": s}))
        .collect()
}
