//! Who gets in: every gRPC service of a running cluster refuses calls
//! without a certificate from the cluster CA (UNAUTHENTICATED, or no TLS
//! session at all) and calls its user may not make (PERMISSION_DENIED),
//! and the cluster's keys are readable by their owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use podnet_controlplane::ca::ClusterCa;
use podnet_proto::auth::{self, Credentials};
use podnet_proto::model::ANNOTATION_AGENT;
use podnet_proto::v1::api_client::ApiClient;
use podnet_proto::v1::node_agent_client::NodeAgentClient;
use podnet_proto::v1::trace_source_client::TraceSourceClient;
use podnet_proto::v1::{
    ApplyRequest, DeleteRequest, ExecRequest, GetRequest, HeartbeatRequest, JoinEdgeRequest,
    JoinRequest, ListRequest, ObjectRequest, ProxyStatusRequest, ServiceAccountCredentialsRequest,
    SpansRequest, TracesRequest, WatchRequest,
};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::{Cluster, eventually};
use podnet_lab::record::ClusterRecord;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A channel to `address` as `credentials`, verifying the server as
/// `server_name`.
fn channel(credentials: &Credentials, address: &str, server_name: &str) -> Channel {
    credentials
        .endpoint(address, server_name)
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

fn code<T>(what: &str, got: Result<T, tonic::Status>) -> Code {
    match got {
        Ok(_) => panic!("{what}: was allowed"),
        Err(s) => s.code(),
    }
}

fn expect_code<T>(what: &str, got: Result<T, tonic::Status>, want: Code) {
    match got {
        Ok(_) => panic!("{what}: was allowed, expected {want:?}"),
        Err(s) => assert_eq!(s.code(), want, "{what}: {}", s.message()),
    }
}

fn object(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// Real TCP ports the process `pid` listens on at 127.0.0.1.
fn loopback_listeners(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    tcp.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode.
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            let (ip, port) = local.split_once(':')?;
            (*state == "0A" && ip == "0100007F" && inodes.iter().any(|i| i == inode))
                .then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

#[test]
fn every_service_refuses_strangers_and_each_user_gets_only_its_share() {
    let c = Cluster::up(&["--nodes", "2"]);
    let web = r#"
apiVersion: v1
kind: Pod
metadata: {name: pinned, labels: {app: pinned}}
spec:
  nodeName: node-2
  containers: [{name: web, image: podnet/http-echo}]
---
apiVersion: v1
kind: Secret
metadata: {name: s}
type: Opaque
stringData: {password: hunter2}
"#;
    c.apply(web);
    c.ready_pods("pinned", 1);

    let cp_dir = c.state.join("controlplane");
    // Keys and the directory that holds them: the owner's only.
    assert_eq!(mode(&cp_dir), 0o700, "controlplane dir");
    for f in ["ca.key", "podnet-admin.key", "podnet-admin.crt"] {
        assert_eq!(mode(&cp_dir.join(f)), 0o600, "{f}");
    }

    let record = ClusterRecord::read(&c.state).expect("record");
    let cp = record.controlplane.clone();
    let ca = ClusterCa::load_or_create(&cp_dir).expect("the cluster CA");
    let ca_pem = ca.cert_pem().to_string();
    let as_user = |issued| ca.credentials(issued);
    let admin = Credentials::read(&cp_dir, auth::ADMIN_CREDENTIALS).expect("admin credentials");
    let node1 = as_user(ca.issue_node("node-1").unwrap());
    let node2 = as_user(ca.issue_node("node-2").unwrap());
    let edge = as_user(ca.issue_edge().unwrap());
    let kubelet_client = as_user(ca.issue_kubelet_client().unwrap());
    let stranger_sa = as_user(ca.issue_service_account("default", "default").unwrap());
    let foreign_ca = ClusterCa::generate().unwrap();
    let foreign_admin = {
        // A certificate that claims to be the admin, from another CA.
        let issued = foreign_ca.issue_kubelet_client().unwrap();
        Credentials {
            ca_pem: ca_pem.clone(),
            ..foreign_ca.credentials(issued)
        }
    };

    runtime().block_on(async {
        let mut api_admin = ApiClient::new(channel(&admin, &cp, auth::API_SERVER_NAME));
        let nodes: Vec<Value> = api_admin
            .list(ListRequest {
                kind: "Node".into(),
                ..Default::default()
            })
            .await
            .expect("the admin lists nodes")
            .into_inner()
            .items
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap())
            .collect();
        let node_named = |name: &str| {
            nodes
                .iter()
                .find(|n| n["metadata"]["name"] == name)
                .cloned()
                .expect("node")
        };
        let pinned: Value = serde_json::from_slice(
            &api_admin
                .get(GetRequest {
                    kind: "Pod".into(),
                    namespace: "default".into(),
                    name: "pinned".into(),
                })
                .await
                .expect("the admin reads the pod")
                .into_inner()
                .object,
        )
        .unwrap();

        // Plain gRPC, without TLS, gets no answer at all.
        let plain = tonic::transport::Endpoint::from_shared(format!("http://{cp}"))
            .unwrap()
            .connect_lazy();
        let got = ApiClient::new(plain)
            .list(ListRequest {
                kind: "Pod".into(),
                ..Default::default()
            })
            .await;
        assert!(got.is_err(), "plain gRPC was answered");

        // TLS without a client certificate: every call but Join and
        // JoinEdge is UNAUTHENTICATED.
        let anonymous = auth::join_endpoint(&cp, &ca_pem).unwrap().connect_lazy();
        let mut anon = ApiClient::new(anonymous);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "default"},
                         "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}});
        let list = |kind: &str| ListRequest {
            kind: kind.into(),
            ..Default::default()
        };
        let un = Code::Unauthenticated;
        expect_code("anonymous list", anon.list(list("Secret")).await, un);
        expect_code(
            "anonymous get",
            anon.get(GetRequest {
                kind: "Secret".into(),
                namespace: "default".into(),
                name: "s".into(),
            })
            .await,
            un,
        );
        expect_code(
            "anonymous apply",
            anon.apply(ApplyRequest {
                objects: vec![object(&pod)],
                dry_run: false,
            })
            .await,
            un,
        );
        expect_code(
            "anonymous create",
            anon.create(ObjectRequest {
                object: object(&pod),
            })
            .await,
            un,
        );
        expect_code(
            "anonymous update",
            anon.update(ObjectRequest {
                object: object(&node_named("node-1")),
            })
            .await,
            un,
        );
        expect_code(
            "anonymous update status",
            anon.update_status(ObjectRequest {
                object: object(&pinned),
            })
            .await,
            un,
        );
        expect_code(
            "anonymous delete",
            anon.delete(DeleteRequest {
                kind: "Namespace".into(),
                name: "kube-system".into(),
                ..Default::default()
            })
            .await,
            un,
        );
        expect_code(
            "anonymous watch",
            anon.watch(WatchRequest {
                kind: "Secret".into(),
                ..Default::default()
            })
            .await,
            un,
        );
        expect_code(
            "anonymous heartbeat",
            anon.heartbeat(HeartbeatRequest {
                node_name: "node-1".into(),
            })
            .await,
            un,
        );
        let exec = ExecRequest {
            namespace: "default".into(),
            pod: "pinned".into(),
            command: vec!["hostname".into()],
            ..Default::default()
        };
        expect_code("anonymous exec", anon.exec(exec.clone()).await, un);
        expect_code(
            "anonymous traces",
            anon.traces(TracesRequest::default()).await,
            un,
        );
        let sa_request = ServiceAccountCredentialsRequest {
            namespace: "default".into(),
            pod: "pinned".into(),
        };
        expect_code(
            "anonymous service account credentials",
            anon.service_account_credentials(sa_request.clone()).await,
            un,
        );
        // Join needs the token, and a wrong one is refused.
        expect_code(
            "join with a wrong token",
            anon.join(JoinRequest {
                token: "guess".into(),
                node_name: "intruder".into(),
                underlay_address: "127.0.0.1:9".into(),
                ..Default::default()
            })
            .await,
            un,
        );
        expect_code(
            "join the edge with a wrong token",
            anon.join_edge(JoinEdgeRequest {
                token: "guess".into(),
                ..Default::default()
            })
            .await,
            un,
        );

        // A certificate from another CA gets no TLS session.
        let got = ApiClient::new(channel(&foreign_admin, &cp, auth::API_SERVER_NAME))
            .list(list("Secret"))
            .await;
        assert_ne!(
            code("a foreign CA's certificate", got),
            Code::PermissionDenied,
            "a foreign certificate got as far as authorization"
        );

        // A node: what NodeRestriction allows, nothing more.
        let denied = Code::PermissionDenied;
        let mut as_node1 = ApiClient::new(channel(&node1, &cp, auth::API_SERVER_NAME));
        as_node1
            .list(ListRequest {
                kind: "Pod".into(),
                field_selector: "spec.nodeName=node-1".into(),
                ..Default::default()
            })
            .await
            .expect("a node lists its pods");
        expect_code("a node lists Secrets", as_node1.list(list("Secret")).await, denied);
        let mut other = node_named("node-2");
        other["metadata"]["annotations"]["podnet.io/underlay-address"] = json!("127.0.0.1:9");
        expect_code(
            "node-1 rewrites node-2",
            as_node1.update(ObjectRequest {
                object: object(&other),
            })
            .await,
            denied,
        );
        expect_code(
            "node-1 writes the status of a pod on node-2",
            as_node1
                .update_status(ObjectRequest {
                    object: object(&pinned),
                })
                .await,
            denied,
        );
        expect_code(
            "node-1 deletes a pod on node-2",
            as_node1
                .delete(DeleteRequest {
                    kind: "Pod".into(),
                    namespace: "default".into(),
                    name: "pinned".into(),
                    ..Default::default()
                })
                .await,
            denied,
        );
        expect_code(
            "node-1 renews node-2's lease",
            as_node1
                .heartbeat(HeartbeatRequest {
                    node_name: "node-2".into(),
                })
                .await,
            denied,
        );
        expect_code(
            "node-1 asks for credentials of a pod on node-2",
            as_node1
                .service_account_credentials(sa_request.clone())
                .await,
            denied,
        );
        expect_code(
            "a node creates a Node",
            as_node1
                .create(ObjectRequest {
                    object: object(&json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "phantom"}})),
                })
                .await,
            denied,
        );
        expect_code(
            "a node creates a pod",
            as_node1
                .create(ObjectRequest {
                    object: object(&pod),
                })
                .await,
            denied,
        );
        expect_code(
            "a node deletes kube-system",
            as_node1
                .delete(DeleteRequest {
                    kind: "Namespace".into(),
                    name: "kube-system".into(),
                    ..Default::default()
                })
                .await,
            denied,
        );
        expect_code("a node execs", as_node1.exec(exec.clone()).await, denied);
        expect_code(
            "a node reads journeys",
            as_node1.traces(TracesRequest::default()).await,
            denied,
        );
        // ... and node-2 may ask for the credentials of its own pod.
        let mut as_node2 = ApiClient::new(channel(&node2, &cp, auth::API_SERVER_NAME));
        as_node2
            .service_account_credentials(sa_request.clone())
            .await
            .expect("node-2 gets its pod's service account credentials");

        // The edge and a service account without a role.
        let mut as_edge = ApiClient::new(channel(&edge, &cp, auth::API_SERVER_NAME));
        as_edge
            .list(list("Service"))
            .await
            .expect("the edge lists Services");
        expect_code("the edge lists Secrets", as_edge.list(list("Secret")).await, denied);
        expect_code(
            "the edge creates a pod",
            as_edge
                .create(ObjectRequest {
                    object: object(&pod),
                })
                .await,
            denied,
        );
        let mut as_sa = ApiClient::new(channel(&stranger_sa, &cp, auth::API_SERVER_NAME));
        expect_code(
            "a service account without a role lists pods",
            as_sa.list(list("Pod")).await,
            denied,
        );

        // Node agents: no TLS session without a cluster certificate; the
        // control plane alone may exec and read spans.
        let agent = node_named("node-2")["metadata"]["annotations"][ANNOTATION_AGENT]
            .as_str()
            .expect("agent address")
            .to_string();
        let no_cert = tonic::transport::Endpoint::from_shared(format!("https://{agent}"))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem))
                    .domain_name("node-2"),
            )
            .unwrap();
        let got = NodeAgentClient::new(no_cert.connect_lazy())
            .proxy_status(ProxyStatusRequest {})
            .await;
        assert_ne!(
            code("node agent without a certificate", got),
            Code::PermissionDenied
        );
        let mut agent_as_admin = NodeAgentClient::new(channel(&admin, &agent, "node-2"));
        agent_as_admin
            .proxy_status(ProxyStatusRequest {})
            .await
            .expect("the admin reads the proxy's status");
        expect_code(
            "the admin execs on the node directly",
            agent_as_admin.exec(exec.clone()).await,
            denied,
        );
        expect_code(
            "node-1 reads node-2's proxy status",
            NodeAgentClient::new(channel(&node1, &agent, "node-2"))
                .proxy_status(ProxyStatusRequest {})
                .await,
            denied,
        );
        let spans = SpansRequest {
            trace_ids: vec![],
            latest: 5,
        };
        expect_code(
            "the admin reads a node's spans directly",
            TraceSourceClient::new(channel(&admin, &agent, "node-2"))
                .spans(spans.clone())
                .await,
            denied,
        );
        TraceSourceClient::new(channel(&kubelet_client, &agent, "node-2"))
            .spans(spans.clone())
            .await
            .expect("the control plane reads a node's spans");
        let out = NodeAgentClient::new(channel(&kubelet_client, &agent, "node-2"))
            .exec(exec.clone())
            .await
            .expect("the control plane execs")
            .into_inner();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pinned");

        // The edge's trace source: the same rule. Its other loopback
        // listener is /metrics, which the record names.
        let edge_metrics: Option<u16> = record
            .edge_metrics
            .as_deref()
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port());
        assert!(edge_metrics.is_some(), "the record names the edge's /metrics");
        let edge_source = eventually("the edge's trace source", Duration::from_secs(5), || {
            loopback_listeners(record.edge_pid)
                .into_iter()
                .find(|port| Some(*port) != edge_metrics)
        });
        let edge_source = format!("127.0.0.1:{edge_source}");
        expect_code(
            "the admin reads the edge's spans directly",
            TraceSourceClient::new(channel(&admin, &edge_source, "podnet-edge"))
                .spans(spans.clone())
                .await,
            denied,
        );
        TraceSourceClient::new(channel(&kubelet_client, &edge_source, "podnet-edge"))
            .spans(spans)
            .await
            .expect("the control plane reads the edge's spans");
    });

    // Through the real client, the admin still does everything.
    let out = c.ok(&["exec", "pinned", "--", "hostname"]);
    assert_eq!(out.trim(), "pinned");
}
