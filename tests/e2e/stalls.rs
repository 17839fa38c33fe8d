//! No stuck paths: clients that stop reading, or never send, must not wedge
//! what everyone else uses. Driven from the host against the real edge and
//! the real host DNS port; every recovery is polled for with a deadline.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::harness::{Cluster, eventually, text};

/// Long enough for a cold cluster on two busy cores: pods Ready, the edge
/// health-checks the nodes, the ingress follows its watches.
const SETTLE: Duration = Duration::from_secs(60);

const HOST: &str = "stall.example.com";

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: echo
          image: podnet/http-echo
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
    - host: stall.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"#;

/// Clients that pipeline requests and never read an answer.
const CLIENTS: usize = 100;
/// Requests each of them sends at most, and the padding header that makes
/// each request (and the echo answering it) about 16 KiB: 100 × 5 MiB of
/// answers nobody reads, several times the connection-wide window the
/// overlay had when stuck flows could starve the others (32 MiB).
const REQUESTS_PER_CLIENT: usize = 300;
const PAD: usize = 16 * 1024;
/// How long the clients keep pushing requests into paths that fill up
/// (a write waits until then), before they just sit there.
const PUSH: Duration = Duration::from_secs(20);
/// How soon the load balancer must serve again once the clients are gone.
const RECOVERY: Duration = Duration::from_secs(30);

/// The ingress controller's load balancer address (HTTP port).
fn ingress_address(c: &Cluster) -> SocketAddr {
    eventually("the ingress controller's load balancer", SETTLE, || {
        let svc = c.json(&[
            "get",
            "svc",
            "-n",
            "podnet-ingress",
            "podnet-ingress-controller",
        ]);
        let lb = svc.pointer("/status/loadBalancer/ingress/0")?;
        let ip = lb["ip"].as_str()?;
        let port = lb.pointer("/ports/0/port")?.as_u64()?;
        format!("{ip}:{port}").parse().ok()
    })
}

/// One `curl` through the load balancer: the HTTP status, 0 when none came
/// within 10 s (a wedged path never answers; a loaded machine may take a
/// few seconds while the stuck clients' flows are torn down).
fn status_through(lb: SocketAddr) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10"])
        .args(["-H", &format!("Host: {HOST}")])
        .arg(format!("http://{lb}/"))
        .output()
        .expect("run curl");
    text(&out.stdout).trim().parse().unwrap_or(0)
}

/// What one non-reading client did: its socket (kept open) and how many
/// requests got through before its path was full.
struct Stuck {
    _stream: tokio::net::TcpStream,
    sent: usize,
}

async fn non_reading_client(
    lb: SocketAddr,
    request: std::sync::Arc<Vec<u8>>,
    until: tokio::time::Instant,
) -> Option<Stuck> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    // Small buffers, as a slow client's: the answers pile up inside the
    // cluster, not in this socket.
    socket.set_recv_buffer_size(4096).ok()?;
    socket.set_send_buffer_size(16 * 1024).ok()?;
    let mut stream = socket.connect(lb).await.ok()?;
    let mut sent = 0;
    for _ in 0..REQUESTS_PER_CLIENT {
        match tokio::time::timeout_at(until, stream.write_all(&request)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    Some(Stuck {
        _stream: stream,
        sent,
    })
}

#[test]
fn clients_that_never_read_do_not_wedge_the_ingress_load_balancer() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(APP);
    c.ready_pods("web", 1);
    let lb = ingress_address(&c);
    eventually(
        "the ingress to serve through the load balancer",
        SETTLE,
        || (status_through(lb) == 200).then_some(()),
    );

    let request = std::sync::Arc::new(
        format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(PAD)
        )
        .into_bytes(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the clients");
    let started = Instant::now();
    let clients: Vec<Stuck> = runtime.block_on(async {
        let until = tokio::time::Instant::now() + PUSH;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CLIENTS {
            tasks.spawn(non_reading_client(lb, request.clone(), until));
        }
        let mut clients = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok(Some(client)) = done {
                clients.push(client);
            }
        }
        clients
    });
    let sent: usize = clients.iter().map(|s| s.sent).sum();
    eprintln!(
        "{} clients connected, {sent} requests sent in {:?}, none read",
        clients.len(),
        started.elapsed()
    );
    assert_eq!(clients.len(), CLIENTS, "every client connects");

    // While they sit there, a new client is served: their flows share the
    // edge's overlay connection to the ingress node with this one and
    // with the health checks, and must not starve them.
    let asked = Instant::now();
    eventually(
        "a new request while the stuck clients stay connected",
        RECOVERY,
        || (status_through(lb) == 200).then_some(()),
    );
    eprintln!(
        "served {:?} after asking, the stuck clients still there",
        asked.elapsed()
    );
    assert!(
        sent * (PAD + 100) > 64 << 20,
        "the clients got only {sent} requests through: their paths filled up \
         before 64 MiB of answers were waiting unread"
    );

    drop(clients);
    drop(runtime);
    let left = Instant::now();
    eventually(
        "requests through the load balancer after the stuck clients left",
        RECOVERY,
        || (status_through(lb) == 200).then_some(()),
    );
    // And it stays that way: every one of a few requests in a row.
    for i in 0..5 {
        assert_eq!(status_through(lb), 200, "request {i} after recovery");
    }
    eprintln!("served again {:?} after the clients left", left.elapsed());
}

/// Idle connections held open against the host DNS port.
const IDLE_DNS_CONNECTIONS: usize = 600;

#[test]
fn idle_tcp_connections_to_the_host_dns_port_do_not_block_queries() {
    let c = Cluster::up(&["--nodes", "2"]);
    let addr: SocketAddr = c.info()["dns"]["address"]
        .as_str()
        .expect("cluster-info shows the DNS address")
        .parse()
        .expect("the DNS address is ip:port");
    let dig = |args: &[&str]| {
        let out = Command::new("dig")
            .args([
                &format!("@{}", addr.ip()),
                "-p",
                &addr.port().to_string(),
                "+time=2",
                "+tries=1",
                "+short",
            ])
            .args(args)
            .output()
            .expect("dig is installed (bind9-dnsutils)");
        text(&out.stdout)
    };
    eventually("DNS over TCP on the host port", SETTLE, || {
        dig(&["+tcp", "kubernetes.default.svc.cluster.local"])
            .contains("10.96.0.1")
            .then_some(())
    });

    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..IDLE_DNS_CONNECTIONS)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect();
    // With all of them open (the newest seconds old at most), a query over
    // a new connection is answered at the first try.
    let answer = dig(&["+tcp", "kubernetes.default.svc.cluster.local"]);
    assert!(
        answer.contains("10.96.0.1"),
        "dig +tcp with {IDLE_DNS_CONNECTIONS} idle connections open {:?}: {answer:?}",
        opened.elapsed()
    );
    assert!(
        dig(&["kubernetes.default.svc.cluster.local"]).contains("10.96.0.1"),
        "UDP too"
    );

    // The idle ones are closed by the server, not left to pile up: the
    // oldest within the first-query timeout, shed or timed out.
    let first = &mut idle[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut buf = [0u8; 16];
    let closed = match first.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed,
        "an idle DNS connection was still open {:?} after it was made",
        opened.elapsed()
    );
    drop(idle);
    assert!(dig(&["+tcp", "kubernetes.default.svc.cluster.local"]).contains("10.96.0.1"));
}
