//! `podnet bench ingress`: HTTP/1.1 keep-alive requests per second from the
//! host through podnet's ingress path (edge load balancer, overlay, ingress
//! controller pod, Service endpoint, `podnet/http-echo` pod) against nginx
//! as ONE reverse-proxy hop in front of a second nginx, both driven by wrk in
//! the same run, interleaved (podnet, nginx, podnet, ...).
//!
//! Reference method (the shared BENCHMARKS.md, "nginx one hop"): nginx from
//! Debian, `worker_processes 1`, `access_log off`, an `upstream` block with
//! `keepalive 64`, `proxy_http_version 1.1` and an empty `Connection`
//! header, in front of a second nginx that answers `return 200`; TLS
//! variant: TLS 1.3 only, a P-256 certificate, session cache on. Load:
//! `wrk -t1 -cN -dD`. The upstream's body is sized to the body http-echo
//! gives through podnet's ingress for the same request, measured before the
//! rounds, so both sides move the same payload; the table also shows the
//! bytes per response wrk counted (headers differ).
//!
//! With `--tls` both sides serve the same freshly generated self-signed
//! P-256 certificate for `bench.local`, podnet's from a `kubernetes.io/tls`
//! Secret named in the Ingress's `spec.tls`. wrk has no `--resolve`, so its
//! Lua script replaces `wrk.resolve` with the real address: the URL keeps the
//! host `bench.local`, which wrk sends as TLS SNI, so podnet's controller
//! picks the Secret by SNI as it would for a real client (and not its
//! default certificate). wrk does not verify certificates; the readiness
//! probe does, against that certificate, so a run never measures the
//! default certificate by mistake.
//!
//! Everything runs as processes: the cluster is this executable's `up`
//! (always followed by `down`), nginx and wrk are the Debian binaries, and
//! nginx is stopped on every exit path. Traffic stays on loopback.
//!
//! Deliberately not here: HTTP/2, new connections per request, and any
//! tuning of either side beyond the reference settings.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::ops::ControlFlow;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::common::{
    Cluster, find_tools, in_scratch_dir, on_free_port, output, running, wait_exit,
};
use super::{BenchArgs, median, ratio};

/// The Ingress host, the Host header wrk sends, and the certificate's name.
const HOST: &str = "bench.local";
const NAMESPACE: &str = "default";
/// The Deployment, Service and Ingress of the backend.
const APP: &str = "bench-echo";
const TLS_SECRET: &str = "bench-tls";
/// Where the ingress controller's LoadBalancer Service lives.
const INGRESS_NAMESPACE: &str = "podnet-ingress";
const INGRESS_SERVICE: &str = "podnet-ingress-controller";
/// http-echo's port.
const ECHO_PORT: u16 = 8080;
const INSTALL: &str = "apt-get install -y nginx wrk";
/// The request wrk sends (`wrk.format` with `-H 'Host: bench.local'`); the
/// probes send the same, so the body they measure is the one wrk gets.
const REQUEST: &str = "GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n";
/// The line the wrk script's `done` prints, then `key=value` fields.
const WRK_MARK: &str = "podnet-bench-wrk";
/// How long the podnet path may take to answer 200 (a debug build on a
/// busy machine is slow to bring up two controller pods and a backend).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// 200s in a row, each on a new connection, before podnet counts as ready.
const PODNET_STREAK: usize = 20;
/// How long nginx may take to answer 200.
const NGINX_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect, read and write timeout of one probe request.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts at starting nginx on a free port (a port picked free may be
/// taken again before nginx binds it).
const NGINX_ATTEMPTS: usize = 5;
/// How long nginx gets to stop after SIGTERM before its group is killed.
const NGINX_STOP: Duration = Duration::from_secs(5);
/// Unmeasured wrk run on each side before the rounds (pools, caches).
const WARMUP: Duration = Duration::from_secs(1);
/// Largest response head a probe accepts.
const MAX_HEAD: usize = 64 * 1024;

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    ensure_flag!(args.rounds >= 1, "--rounds must be at least 1");
    ensure_flag!(
        args.duration >= Duration::from_secs(1) && args.duration.subsec_nanos() == 0,
        "--duration must be whole seconds, at least 1s (wrk -d takes whole seconds), got {}",
        humantime::format_duration(args.duration)
    );
    ensure_flag!(args.connections >= 1, "--connections must be at least 1");
    ensure_flag!(args.nodes() >= 1, "--nodes must be at least 1");
    let [wrk, nginx] = find_tools(["wrk", "nginx"], INSTALL)?;
    let tools = Tools { wrk, nginx };
    // Dropping the measurement (Ctrl-C) takes the cluster down and stops
    // both nginx (guards).
    in_scratch_dir("ingress", async |base| measure(args, &tools, base).await).await
}

struct Tools {
    wrk: PathBuf,
    nginx: PathBuf,
}

/// One side of the comparison, as wrk drives it.
struct Side {
    name: &'static str,
    addr: SocketAddrV4,
    url: String,
    script: PathBuf,
}

async fn measure(args: &BenchArgs, tools: &Tools, base: &Path) -> anyhow::Result<()> {
    let secs = args.duration.as_secs();
    let scheme = if args.tls { "https" } else { "http" };
    println!(
        "ingress benchmark: podnet bench ingress --rounds {} --duration {secs}s --connections {} --nodes {}{}",
        args.rounds,
        args.connections,
        args.nodes(),
        if args.tls { " --tls" } else { "" }
    );
    println!(
        "{} keep-alive, wrk -t1 -c{} -d{secs}s, Host {HOST}, interleaved podnet / nginx one hop",
        if args.tls {
            "HTTPS (TLS 1.3, P-256)"
        } else {
            "HTTP/1.1"
        },
        args.connections
    );

    let cert = BenchCert::generate()?;
    let cert_path = base.join("tls.crt");
    let key_path = base.join("tls.key");
    std::fs::write(&cert_path, &cert.cert_pem)?;
    std::fs::write(&key_path, &cert.key_pem)?;
    let client_tls = if args.tls {
        Some(cert.client_config()?)
    } else {
        None
    };

    let cluster = Cluster::new(base.join("state"))?;
    let start = Instant::now();
    cluster.up(args.nodes()).await?;
    cluster.apply(manifests(args.tls.then_some(&cert))).await?;
    let (ip, http_port, https_port) = ingress_address(&cluster).await?;
    let podnet_addr = SocketAddrV4::new(ip, if args.tls { https_port } else { http_port });
    // Every controller replica must know the route before wrk starts, and
    // the edge spreads new connections over them: a streak of fresh
    // connections answering 200 says so.
    let answer = wait_ok(
        podnet_addr,
        client_tls.clone(),
        READY_TIMEOUT,
        PODNET_STREAK,
        || Ok(()),
    )
    .await
    .context("podnet's ingress path")?;
    let body_len = answer.body_len;
    println!(
        "podnet: {} nodes, {scheme}://{podnet_addr} (Host {HOST}) answered 200 with a {body_len}-byte body after {:.1} s",
        args.nodes(),
        start.elapsed().as_secs_f64()
    );

    let nginx_dir = base.join("nginx");
    let tls_files = args
        .tls
        .then_some((cert_path.as_path(), key_path.as_path()));
    let upstream = start_nginx(&tools.nginx, &nginx_dir, "upstream", None, |port| {
        upstream_config(&nginx_dir, port, body_len)
    })
    .await?;
    let proxy = start_nginx(
        &tools.nginx,
        &nginx_dir,
        "proxy",
        client_tls.clone(),
        |port| proxy_config(&nginx_dir, port, upstream.port, tls_files),
    )
    .await?;
    let nginx_addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, proxy.port);
    let tls = client_tls.clone();
    let nginx_answer =
        tokio::task::spawn_blocking(move || probe(nginx_addr, tls.as_ref())).await??;
    anyhow::ensure!(
        nginx_answer.status == 200 && nginx_answer.body_len == body_len,
        "nginx answers {} with a {}-byte body, podnet 200 with {body_len} bytes: the comparison would not be fair",
        nginx_answer.status,
        nginx_answer.body_len
    );
    println!(
        "nginx: {scheme}://{nginx_addr} proxies to 127.0.0.1:{} (return 200, {body_len}-byte body)",
        upstream.port
    );

    let mut sides = Vec::new();
    for (name, addr) in [("podnet", podnet_addr), ("nginx", nginx_addr)] {
        let script = base.join(format!("wrk-{name}.lua"));
        std::fs::write(&script, wrk_script(addr))?;
        sides.push(Side {
            name,
            addr,
            url: format!("{scheme}://{HOST}:{}/", addr.port()),
            script,
        });
    }

    for side in &sides {
        let r = wrk(tools, side, WARMUP.as_secs(), args.connections).await?;
        println!(
            "warm-up {:<6}: {:>9.0} req/s (not counted)",
            side.name,
            r.rps()
        );
    }
    let (mut podnet_runs, mut nginx_runs) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        for side in &sides {
            let r = wrk(tools, side, secs, args.connections).await?;
            println!(
                "round {round}/{} {:<6}: {:>9.0} req/s, latency p50 {}, p99 {}, {} B/response, {} non-2xx, {} socket errors",
                args.rounds,
                side.name,
                r.rps(),
                fmt_us(r.p50_us),
                fmt_us(r.p99_us),
                r.bytes_per_response()
                    .map_or_else(|| "?".into(), |b| format!("{b:.0}")),
                r.non_2xx,
                r.socket_errors
            );
            anyhow::ensure!(
                r.requests > 0,
                "wrk completed no request against {} ({})",
                side.name,
                side.addr
            );
            if r.non_2xx > 0 || r.socket_errors > 0 {
                println!("  warning: {} had failed requests", side.name);
            }
            if side.name == "podnet" {
                podnet_runs.push(r);
            } else {
                nginx_runs.push(r);
            }
        }
    }
    drop(proxy);
    drop(upstream);
    println!();
    print!(
        "{}",
        table(&podnet_runs, &nginx_runs, args.connections, args.tls)
    );
    Ok(())
}

/// The ingress controller's load balancer address and its real http and
/// https ports, once the edge has published them.
async fn ingress_address(cluster: &Cluster) -> anyhow::Result<(Ipv4Addr, u16, u16)> {
    cluster
        .wait_json(
            &[
                "get",
                "svc",
                INGRESS_SERVICE,
                "-n",
                INGRESS_NAMESPACE,
                "-o",
                "json",
            ],
            "podnet get svc -o json",
            READY_TIMEOUT,
            &format!(
                "{INGRESS_NAMESPACE}/{INGRESS_SERVICE} has no load balancer address with http and https ports"
            ),
            |svc| {
                Ok(match load_balancer(svc) {
                    Some(found) => ControlFlow::Break(found),
                    None => ControlFlow::Continue(format!(
                        "status.loadBalancer: {}",
                        svc.pointer("/status/loadBalancer")
                            .map_or_else(|| "none".into(), Value::to_string)
                    )),
                })
            },
        )
        .await
}

/// `status.loadBalancer.ingress[0]` of the controller's Service: its
/// address and the real host ports of `spec.ports` (http, then https).
fn load_balancer(svc: &Value) -> Option<(Ipv4Addr, u16, u16)> {
    let svc = podnet_proto::model::view::ServiceView(svc);
    let ip = svc.load_balancer_ip()?;
    let ports = svc.load_balancer_ports();
    // The edge lists the ports it could open in spec order; fewer than two
    // means one is missing and the order no longer says which is which.
    match ports[..] {
        [http, https] => Some((ip, http, https)),
        _ => None,
    }
}

/// The backend (one http-echo pod), its Service and an Ingress for
/// [`HOST`]; with `tls`, the Secret and the Ingress's `spec.tls` entry.
fn manifests(tls: Option<&BenchCert>) -> String {
    let labels = json!({"app": APP});
    let mut items = vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP, "namespace": NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "echo",
                        "image": "podnet/http-echo",
                        "ports": [{"containerPort": ECHO_PORT}],
                        "readinessProbe": {"tcpSocket": {"port": ECHO_PORT}, "periodSeconds": 1},
                    }]},
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": APP, "namespace": NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": ECHO_PORT}]},
        }),
    ];
    let mut ingress = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": APP, "namespace": NAMESPACE},
        "spec": {"rules": [{"host": HOST, "http": {"paths": [{
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": APP, "port": {"number": 80}}},
        }]}}]},
    });
    if let Some(cert) = tls {
        items.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": TLS_SECRET, "namespace": NAMESPACE},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem},
        }));
        ingress["spec"]["tls"] = json!([{"hosts": [HOST], "secretName": TLS_SECRET}]);
    }
    items.push(ingress);
    // JSON is YAML; a List keeps it one document.
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// A self-signed ECDSA P-256 certificate for [`HOST`], served by both sides.
struct BenchCert {
    cert_pem: String,
    key_pem: String,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl BenchCert {
    fn generate() -> anyhow::Result<BenchCert> {
        let params = rcgen::CertificateParams::new(vec![HOST.to_owned()])?;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        Ok(BenchCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        })
    }

    /// A TLS 1.3-only client that trusts this certificate and nothing else,
    /// so a probe fails on any other certificate (the controller's default).
    fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// What a probe got back.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body_len: usize,
}

/// Sends [`REQUEST`] to `addr` (over TLS 1.3 with SNI [`HOST`] if `tls`)
/// and reads one response. Blocking; every step times out.
fn probe(addr: SocketAddrV4, tls: Option<&Arc<rustls::ClientConfig>>) -> anyhow::Result<Answer> {
    let tcp = TcpStream::connect_timeout(&SocketAddr::V4(addr), PROBE_TIMEOUT)
        .with_context(|| format!("cannot connect to {addr}"))?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT))?;
    tcp.set_write_timeout(Some(PROBE_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    match tls {
        None => exchange(tcp),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(HOST)?;
            let conn = rustls::ClientConnection::new(config.clone(), name)?;
            exchange(rustls::StreamOwned::new(conn, tcp))
        }
    }
}

fn exchange(mut stream: impl Read + Write) -> anyhow::Result<Answer> {
    stream.write_all(REQUEST.as_bytes())?;
    stream.flush()?;
    read_response(stream)
}

/// Reads one HTTP/1.1 response: its status and body length (by
/// Content-Length, chunked, or up to the end of the stream).
fn read_response(stream: impl Read) -> anyhow::Result<Answer> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    let mut head = 0;
    let mut next_line = |r: &mut BufReader<_>, line: &mut String| -> anyhow::Result<()> {
        line.clear();
        let n = r.by_ref().take(MAX_HEAD as u64).read_line(line)?;
        head += n;
        anyhow::ensure!(
            n > 0,
            "the connection closed before the response head ended"
        );
        anyhow::ensure!(
            head <= MAX_HEAD,
            "response head longer than {MAX_HEAD} bytes"
        );
        Ok(())
    };
    next_line(&mut r, &mut line)?;
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP/1.x status line: {:?}", line.trim_end()))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        next_line(&mut r, &mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            bail!("bad response header line {l:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .with_context(|| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body_len = if chunked {
        chunked_len(&mut r)?
    } else if let Some(n) = length {
        let got = std::io::copy(&mut r.by_ref().take(n as u64), &mut std::io::sink())?;
        anyhow::ensure!(
            got == n as u64,
            "body cut short: {got} of {n} bytes (Content-Length)"
        );
        n
    } else {
        let mut rest = Vec::new();
        match r.read_to_end(&mut rest) {
            Ok(_) => {}
            // A TLS peer that closes without close_notify; the body is
            // what arrived.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e.into()),
        }
        rest.len()
    };
    Ok(Answer { status, body_len })
}

/// The length of a chunked body (trailers skipped).
fn chunked_len(r: &mut impl BufRead) -> anyhow::Result<usize> {
    let mut total = 0usize;
    let mut line = String::new();
    // A body of more than a million chunks is not what a probe expects.
    for _ in 0..1_000_000 {
        line.clear();
        anyhow::ensure!(
            r.by_ref().take(1024).read_line(&mut line)? > 0,
            "chunked body cut short"
        );
        let size = line.trim_end().split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16)
            .with_context(|| format!("bad chunk size line {:?}", line.trim_end()))?;
        if size == 0 {
            // Trailers, up to the empty line.
            for _ in 0..1000 {
                line.clear();
                if r.by_ref().take(MAX_HEAD as u64).read_line(&mut line)? == 0
                    || line.trim_end().is_empty()
                {
                    return Ok(total);
                }
            }
            bail!("too many trailer lines");
        }
        let got = std::io::copy(&mut r.by_ref().take(size as u64), &mut std::io::sink())?;
        anyhow::ensure!(got == size as u64, "chunk cut short");
        total += size;
        line.clear();
        r.read_line(&mut line)?;
    }
    bail!("too many chunks")
}

/// Probes `addr` until it answers 200 `streak` times in a row (each on a
/// new connection), for at most `limit`; `alive` may abort the wait (a
/// server that exited). Returns the last answer.
async fn wait_ok(
    addr: SocketAddrV4,
    tls: Option<Arc<rustls::ClientConfig>>,
    limit: Duration,
    streak: usize,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Answer> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no request sent");
    let mut in_a_row = 0;
    // Each failed round takes at least 50 ms, and a streak is short, so the
    // count also bounds the time.
    for _ in 0..(limit.as_millis() / 50).max(1) as usize + streak {
        alive()?;
        let tls = tls.clone();
        let got = tokio::task::spawn_blocking(move || probe(addr, tls.as_ref())).await?;
        match got {
            Ok(a) if a.status == 200 => {
                in_a_row += 1;
                if in_a_row >= streak {
                    return Ok(a);
                }
                continue;
            }
            Ok(a) => last = format!("answered {} ({} bytes)", a.status, a.body_len),
            Err(e) => last = format!("{e:#}"),
        }
        in_a_row = 0;
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "{addr} (Host {HOST}) did not answer 200 {streak} times in a row within {limit:?} (last: {last})"
    )
}

/// One nginx (master and one worker, in a process group of their own);
/// stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let Ok(pid) = i32::try_from(self.child.id()) else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return;
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        // SIGTERM is nginx's fast shutdown: the master stops its worker.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !wait_exit(&mut self.child, NGINX_STOP) {
            // The group is the master's own (process_group(0) at spawn), so
            // this reaches the worker too, which outlives a killed master.
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Starts nginx `name` with the config `config(port)` on a free port and
/// waits until it answers 200 (over TLS with `tls`).
async fn start_nginx(
    exe: &Path,
    dir: &Path,
    name: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    config: impl Fn(u16) -> String,
) -> anyhow::Result<Nginx> {
    std::fs::create_dir_all(dir.join("tmp"))?;
    let conf = dir.join(format!("{name}.conf"));
    let log_path = dir.join(format!("{name}.error.log"));
    on_free_port(
        NGINX_ATTEMPTS,
        &format!("nginx {name}"),
        free_tcp_port,
        async |port| {
            std::fs::write(&conf, config(port))?;
            let log = std::fs::File::create(dir.join(format!("{name}.out")))?;
            let child = std::process::Command::new(exe)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(&log_path)
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"])
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", exe.display()))?;
            let mut nginx = Nginx { child, port };
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            let ready = wait_ok(addr, tls.clone(), NGINX_READY_TIMEOUT, 1, || {
                running(&mut nginx.child, "nginx")
            })
            .await;
            match ready {
                Ok(_) => Ok(nginx),
                Err(e) => {
                    drop(nginx);
                    let out = std::fs::read_to_string(dir.join(format!("{name}.out")))
                        .unwrap_or_default();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    Err(e.context(format!(
                        "nginx -c {} ({})",
                        conf.display(),
                        format!("{}\n{}", out.trim(), log.trim()).trim()
                    )))
                }
            }
        },
    )
    .await
}

fn free_tcp_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// The settings both nginx share: one worker, no access log, every path
/// inside `dir`.
fn nginx_main(dir: &Path, name: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\npid {d}/{name}.pid;\nerror_log {d}/{name}.error.log warn;\nevents {{\n    worker_connections 1024;\n}}\nhttp {{\n    access_log off;\n    client_body_temp_path {d}/tmp/{name}-body;\n    proxy_temp_path {d}/tmp/{name}-proxy;\n    fastcgi_temp_path {d}/tmp/{name}-fastcgi;\n    uwsgi_temp_path {d}/tmp/{name}-uwsgi;\n    scgi_temp_path {d}/tmp/{name}-scgi;\n"
    )
}

/// The static upstream: `return 200` with a `body_len`-byte JSON body.
fn upstream_config(dir: &Path, port: u16, body_len: usize) -> String {
    let mut c = nginx_main(dir, "upstream");
    // Writing to a String cannot fail.
    let _ = write!(
        c,
        "    default_type application/json;\n    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n            return 200 '{}';\n        }}\n    }}\n}}\n",
        body(body_len)
    );
    c
}

/// The one reverse-proxy hop, in front of the upstream on `upstream_port`;
/// with `tls` (certificate and key files) it terminates TLS 1.3.
fn proxy_config(dir: &Path, port: u16, upstream_port: u16, tls: Option<(&Path, &Path)>) -> String {
    let mut c = nginx_main(dir, "proxy");
    // Writing to a String cannot fail.
    let _ = write!(
        c,
        "    upstream backend {{\n        server 127.0.0.1:{upstream_port};\n        keepalive 64;\n    }}\n    server {{\n"
    );
    match tls {
        None => {
            let _ = writeln!(c, "        listen 127.0.0.1:{port};");
        }
        Some((cert, key)) => {
            let _ = write!(
                c,
                "        listen 127.0.0.1:{port} ssl;\n        ssl_certificate {};\n        ssl_certificate_key {};\n        ssl_protocols TLSv1.3;\n        ssl_session_cache shared:SSL:1m;\n",
                cert.display(),
                key.display()
            );
        }
    }
    let _ = write!(
        c,
        "        location / {{\n            proxy_pass http://backend;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n        }}\n    }}\n}}\n"
    );
    c
}

/// A JSON body of exactly `len` bytes (padding only: nginx serves it
/// verbatim; below 10 bytes plain padding).
fn body(len: usize) -> String {
    const FRAME: usize = r#"{"pad":""}"#.len();
    if len < FRAME {
        return "x".repeat(len);
    }
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(len - FRAME))
}

/// wrk's script: connect to `addr` whatever the URL's host (which wrk
/// still sends as TLS SNI and which names no real address), and print the
/// figures on one line when done.
fn wrk_script(addr: SocketAddrV4) -> String {
    format!(
        r#"-- podnet bench ingress: wrk has no --resolve; the URL's host stays the SNI.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup("{ip}", "{port}")
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "{WRK_MARK} requests=%.0f duration_us=%.0f bytes=%.0f p50_us=%.0f p99_us=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
"#,
        ip = addr.ip(),
        port = addr.port()
    )
}

async fn wrk(tools: &Tools, side: &Side, secs: u64, connections: u32) -> anyhow::Result<WrkRun> {
    let mut cmd = tokio::process::Command::new(&tools.wrk);
    cmd.args([
        "-t1",
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{secs}s"),
        "--latency",
        "-H",
        &format!("Host: {HOST}"),
        "-s",
    ])
    .arg(&side.script)
    .arg(&side.url);
    // wrk stops after `secs` plus its 2 s request timeout.
    let limit = Duration::from_secs(secs) + Duration::from_secs(30);
    let what = format!("wrk against {} ({})", side.name, side.addr);
    let out = output(&mut cmd, None, limit, &what).await?;
    parse_wrk(&out).with_context(|| what)
}

/// What one wrk run reports.
#[derive(Debug, Clone, PartialEq)]
struct WrkRun {
    requests: u64,
    seconds: f64,
    /// Response bytes read, headers included; unknown in wrk's text output.
    bytes: Option<u64>,
    p50_us: f64,
    p99_us: f64,
    /// Responses other than 2xx or 3xx.
    non_2xx: u64,
    /// Connect, read and write errors and timeouts.
    socket_errors: u64,
}

impl WrkRun {
    fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn bytes_per_response(&self) -> Option<f64> {
        let bytes = self.bytes?;
        (self.requests > 0).then(|| bytes as f64 / self.requests as f64)
    }
}

/// Parses wrk's output: the script's `podnet-bench-wrk key=value ...` line
/// if there is one, else wrk's own text (`N requests in Ts`, the
/// `--latency` distribution, `Non-2xx or 3xx responses:`, `Socket
/// errors:`), so a wrk that ignores the script still gives figures.
fn parse_wrk(out: &str) -> anyhow::Result<WrkRun> {
    if let Some(line) = out
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(WRK_MARK))
    {
        return parse_mark(line).with_context(|| format!("wrk script line {line:?}"));
    }
    parse_text(out).with_context(|| format!("cannot read wrk's output:\n{out}"))
}

fn parse_mark(fields: &str) -> anyhow::Result<WrkRun> {
    let get = |key: &str| -> anyhow::Result<f64> {
        let v = fields
            .split_whitespace()
            .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key}="))?;
        let n: f64 = v
            .parse()
            .with_context(|| format!("{key}={v} is not a number"))?;
        anyhow::ensure!(n.is_finite() && n >= 0.0, "{key}={v} is out of range");
        Ok(n)
    };
    // The values are non-negative finite counts, printed with %.0f.
    let mut run = WrkRun {
        requests: get("requests")? as u64,
        seconds: get("duration_us")? / 1e6,
        bytes: Some(get("bytes")? as u64),
        p50_us: get("p50_us")?,
        p99_us: get("p99_us")?,
        non_2xx: get("status")? as u64,
        socket_errors: 0,
    };
    for key in ["connect", "read", "write", "timeout"] {
        run.socket_errors += get(key)? as u64;
    }
    Ok(run)
}

fn parse_text(out: &str) -> anyhow::Result<WrkRun> {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    // "472869 requests in 10.00s, 345.23MB read"
    let (requests, seconds) = lines
        .iter()
        .find_map(|l| {
            let (n, rest) = l.split_once(" requests in ")?;
            let t = rest.split(',').next()?.trim();
            Some((n.trim().parse::<u64>().ok()?, duration_us(t)? / 1e6))
        })
        .context("no \"N requests in T\" line")?;
    // "50%  636.00us" under "Latency Distribution"
    let percentile = |p: &str| -> anyhow::Result<f64> {
        let at = lines
            .iter()
            .position(|l| l.starts_with("Latency Distribution"))
            .context("no latency distribution (wrk --latency)")?;
        lines[at + 1..]
            .iter()
            .find_map(|l| duration_us(l.strip_prefix(p)?.trim()))
            .with_context(|| format!("no {p} latency"))
    };
    let count_after = |key: &str| -> Option<u64> {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
    };
    // "Socket errors: connect 0, read 0, write 0, timeout 3"
    let socket_errors = lines
        .iter()
        .find_map(|l| l.strip_prefix("Socket errors:"))
        .map(|s| {
            s.split(',')
                .filter_map(|f| f.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(WrkRun {
        requests,
        seconds,
        bytes: None,
        p50_us: percentile("50%")?,
        p99_us: percentile("99%")?,
        non_2xx: count_after("Non-2xx or 3xx responses:").unwrap_or(0),
        socket_errors,
    })
}

/// A wrk time ("636.00us", "1.45ms", "10.00s", "1.02m", "1h") in
/// microseconds.
fn duration_us(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    let scale = match unit.trim() {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3600e6,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n * scale)
}

fn fmt_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} us")
    }
}

/// The summary: medians over the rounds of each side, and their ratio.
fn table(podnet: &[WrkRun], nginx: &[WrkRun], connections: u32, tls: bool) -> String {
    let med = |runs: &[WrkRun], f: &dyn Fn(&WrkRun) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().filter_map(f).collect();
        median(&mut v)
    };
    let (pr, nr) = (
        med(podnet, &|r| Some(r.rps())),
        med(nginx, &|r| Some(r.rps())),
    );
    let (p50, n50) = (
        med(podnet, &|r| Some(r.p50_us)),
        med(nginx, &|r| Some(r.p50_us)),
    );
    let (p99, n99) = (
        med(podnet, &|r| Some(r.p99_us)),
        med(nginx, &|r| Some(r.p99_us)),
    );
    let (pb, nb) = (
        med(podnet, &WrkRun::bytes_per_response),
        med(nginx, &WrkRun::bytes_per_response),
    );
    let bytes = |b: f64| {
        if b.is_finite() {
            format!("{b:.0} B")
        } else {
            "-".into()
        }
    };
    let (what, reference) = if tls {
        ("HTTPS (TLS 1.3)", "nginx TLS one hop")
    } else {
        ("HTTP/1.1", "nginx one hop")
    };
    let mut t = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        t,
        "{} interleaved rounds of each side, medians:",
        podnet.len().min(nginx.len())
    );
    let _ = writeln!(t, "| figure | podnet | {reference} | ratio | target |");
    let _ = writeln!(t, "|---|---|---|---|---|");
    let _ = writeln!(
        t,
        "| {what} keep-alive requests/s, wrk -t1 -c{connections} | {pr:.0} | {nr:.0} | {} | >= 1.0 |",
        ratio(pr, nr)
    );
    let _ = writeln!(
        t,
        "| latency p50 | {} | {} | {} | |",
        fmt_us(p50),
        fmt_us(n50),
        ratio(p50, n50)
    );
    let _ = writeln!(
        t,
        "| latency p99 | {} | {} | {} | |",
        fmt_us(p99),
        fmt_us(n99),
        ratio(p99, n99)
    );
    let _ = writeln!(
        t,
        "| bytes per response (head + body) | {} | {} | | |",
        bytes(pb),
        bytes(nb)
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_TEXT: &str = "Running 10s test @ https://bench.local:8443/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   681.07us  243.33us   8.17ms   90.43%
    Req/Sec    47.52k     2.50k   51.43k    78.00%
  Latency Distribution
     50%  636.00us
     75%  719.00us
     90%    0.88ms
     99%    1.45ms
  472869 requests in 10.00s, 345.23MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 1, read 2, write 0, timeout 3
Requests/sec:  47286.52
Transfer/sec:     34.52MB
";

    #[test]
    fn parses_the_script_line() {
        let out = format!(
            "{WRK_TEXT}{WRK_MARK} requests=472869 duration_us=10000123 bytes=362017000 p50_us=636 p99_us=1450 connect=1 read=2 write=0 status=12 timeout=3\n"
        );
        let r = parse_wrk(&out).unwrap();
        assert_eq!(
            r,
            WrkRun {
                requests: 472_869,
                seconds: 10.000123,
                bytes: Some(362_017_000),
                p50_us: 636.0,
                p99_us: 1450.0,
                non_2xx: 12,
                socket_errors: 6,
            }
        );
        assert!((r.rps() - 47_286.32).abs() < 0.01, "{}", r.rps());
        assert!((r.bytes_per_response().unwrap() - 765.576).abs() < 0.001);
    }

    #[test]
    fn falls_back_to_wrk_text() {
        let r = parse_wrk(WRK_TEXT).unwrap();
        assert_eq!(r.requests, 472_869);
        assert!((r.seconds - 10.0).abs() < 1e-9);
        assert!((r.p50_us - 636.0).abs() < 1e-9);
        assert!((r.p99_us - 1450.0).abs() < 1e-9);
        assert_eq!(r.bytes, None);
        assert_eq!(r.bytes_per_response(), None);
        assert_eq!(r.non_2xx, 12);
        assert_eq!(r.socket_errors, 6);
        // A clean run prints neither of the error lines.
        let clean: String = WRK_TEXT
            .lines()
            .filter(|l| !l.contains("errors") && !l.contains("Non-2xx"))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = parse_wrk(&clean).unwrap();
        assert_eq!((r.non_2xx, r.socket_errors), (0, 0));
    }

    #[test]
    fn bad_wrk_output_is_an_error() {
        let e =
            parse_wrk("unable to connect to bench.local:8443 Connection refused\n").unwrap_err();
        assert!(format!("{e:#}").contains("requests in"), "{e:#}");
        // Without --latency there are no percentiles.
        let no_latency: String = WRK_TEXT
            .lines()
            .filter(|l| !l.contains('%') || l.contains("Stdev"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(parse_wrk(&no_latency).is_err());
        // A script line with a missing or broken field is not silently
        // replaced by the text.
        let out = format!("{WRK_TEXT}{WRK_MARK} requests=1 duration_us=1 p50_us=1\n");
        let e = parse_wrk(&out).unwrap_err();
        assert!(format!("{e:#}").contains("no bytes="), "{e:#}");
        let out = format!(
            "{WRK_MARK} requests=x duration_us=1 bytes=1 p50_us=1 p99_us=1 connect=0 read=0 write=0 status=0 timeout=0\n"
        );
        assert!(parse_wrk(&out).is_err());
        let out = out.replace("requests=x", "requests=-1");
        assert!(parse_wrk(&out).is_err());
        let out = out.replace("requests=-1", "requests=1");
        assert!(parse_wrk(&out).is_ok());
    }

    #[test]
    fn wrk_times_in_every_unit() {
        for (s, us) in [
            ("636.00us", 636.0),
            ("1.45ms", 1450.0),
            ("2.00s", 2e6),
            ("1.50m", 90e6),
            ("1.00h", 3600e6),
        ] {
            assert_eq!(duration_us(s), Some(us), "{s}");
        }
        for bad in ["", "12", "1.0xs", "ms", "-1ms"] {
            assert_eq!(duration_us(bad), None, "{bad}");
        }
    }

    #[test]
    fn wrk_script_pins_the_address_and_prints_every_field() {
        let s = wrk_script(SocketAddrV4::new(Ipv4Addr::new(127, 0, 1, 1), 8443));
        assert!(s.contains(r#"wrk.addrs = wrk.lookup("127.0.1.1", "8443")"#));
        for key in [
            "requests",
            "duration_us",
            "bytes",
            "p50_us",
            "p99_us",
            "connect",
            "read",
            "write",
            "status",
            "timeout",
        ] {
            assert!(s.contains(&format!(" {key}=%.0f")), "{key}");
        }
        assert!(s.contains("latency:percentile(50), latency:percentile(99)"));
    }

    fn answer(raw: &str) -> anyhow::Result<Answer> {
        read_response(raw.as_bytes())
    }

    #[test]
    fn probe_reads_status_and_body_length() {
        for (raw, status, body_len) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\n\r\nhello",
                200,
                5,
            ),
            // Chunked, with a chunk extension and a trailer.
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n",
                200,
                15,
            ),
            // Neither length nor chunked: up to the end of the stream.
            (
                "HTTP/1.0 503 Service Unavailable\r\n\r\nno endpoints",
                503,
                12,
            ),
        ] {
            assert_eq!(answer(raw).unwrap(), Answer { status, body_len }, "{raw:?}");
        }
        for bad in [
            "",
            "SSH-2.0-OpenSSH\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(answer(bad).is_err(), "{bad:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(answer(&huge).is_err());
    }

    #[test]
    fn load_balancer_status_gives_address_and_both_ports() {
        let svc = json!({"status": {"loadBalancer": {"ingress": [
            {"ip": "127.0.1.1", "ipMode": "VIP", "ports": [
                {"port": 80, "protocol": "TCP"}, {"port": 40443, "protocol": "TCP"}]}]}}});
        assert_eq!(
            load_balancer(&svc),
            Some((Ipv4Addr::new(127, 0, 1, 1), 80, 40443))
        );
        assert_eq!(load_balancer(&json!({"status": {}})), None);
        let mut one_port = svc.clone();
        one_port["status"]["loadBalancer"]["ingress"][0]["ports"] =
            json!([{"port": 80, "protocol": "TCP"}]);
        assert_eq!(load_balancer(&one_port), None);
        let mut no_ip = svc;
        no_ip["status"]["loadBalancer"]["ingress"][0]["ip"] = json!("pending");
        assert_eq!(load_balancer(&no_ip), None);
    }

    #[test]
    fn manifests_route_the_host_to_one_echo_pod() {
        let objects = crate::manifest::parse("bench", &manifests(None)).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Deployment", "Service", "Ingress"]);
        assert_eq!(objects[0]["spec"]["replicas"], 1);
        assert_eq!(
            objects[0]["spec"]["template"]["spec"]["containers"][0]["image"],
            "podnet/http-echo"
        );
        assert_eq!(objects[1]["spec"]["ports"][0]["targetPort"], ECHO_PORT);
        let rule = &objects[2]["spec"]["rules"][0];
        assert_eq!(rule["host"], HOST);
        assert_eq!(rule["http"]["paths"][0]["backend"]["service"]["name"], APP);
        assert!(objects[2]["spec"].get("tls").is_none());

        let cert = BenchCert::generate().unwrap();
        let objects = crate::manifest::parse("bench", &manifests(Some(&cert))).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Deployment", "Service", "Secret", "Ingress"]);
        assert_eq!(objects[2]["type"], "kubernetes.io/tls");
        assert_eq!(objects[2]["stringData"]["tls.crt"], cert.cert_pem.as_str());
        assert_eq!(
            objects[3]["spec"]["tls"],
            json!([{"hosts": [HOST], "secretName": TLS_SECRET}])
        );
    }

    #[test]
    fn certificate_is_p256_and_trusted_by_the_probe() {
        let cert = BenchCert::generate().unwrap();
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        let key = rcgen::KeyPair::from_pem(&cert.key_pem).unwrap();
        assert!(key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256));
        assert!(cert.client_config().is_ok());
    }

    #[test]
    fn nginx_body_has_the_exact_length() {
        for n in [0, 1, 9, 10, 11, 512, 4096] {
            let b = body(n);
            assert_eq!(b.len(), n);
            // Served between single quotes in the config.
            assert!(!b.contains('\'') && !b.contains('\\'));
        }
        assert_eq!(body(12), r#"{"pad":"xx"}"#);
    }

    /// Each of `lines` is a whole line of the nginx config `what`.
    fn check_lines(what: &str, config: &str, lines: &[&str]) {
        for line in lines {
            assert!(
                config.lines().any(|l| l == *line),
                "{what} misses {line:?}:\n{config}"
            );
        }
    }

    #[test]
    fn nginx_configs_have_the_reference_settings() {
        let dir = Path::new("/tmp/b");
        let up = upstream_config(dir, 9000, 12);
        check_lines(
            "upstream",
            &up,
            &[
                "worker_processes 1;",
                "pid /tmp/b/upstream.pid;",
                "    access_log off;",
                "        listen 127.0.0.1:9000;",
                r#"            return 200 '{"pad":"xx"}';"#,
            ],
        );
        let plain = proxy_config(dir, 9001, 9000, None);
        check_lines(
            "proxy",
            &plain,
            &[
                "worker_processes 1;",
                "    access_log off;",
                "        server 127.0.0.1:9000;",
                "        keepalive 64;",
                "        listen 127.0.0.1:9001;",
                "            proxy_pass http://backend;",
                "            proxy_http_version 1.1;",
                "            proxy_set_header Connection \"\";",
            ],
        );
        assert!(!plain.contains("ssl"));
        let tls = proxy_config(
            dir,
            9001,
            9000,
            Some((Path::new("/tmp/b/tls.crt"), Path::new("/tmp/b/tls.key"))),
        );
        check_lines(
            "tls proxy",
            &tls,
            &[
                "        listen 127.0.0.1:9001 ssl;",
                "        ssl_certificate /tmp/b/tls.crt;",
                "        ssl_certificate_key /tmp/b/tls.key;",
                "        ssl_protocols TLSv1.3;",
                "        ssl_session_cache shared:SSL:1m;",
            ],
        );
        // Balanced braces, or nginx refuses the file.
        for c in [&up, &plain, &tls] {
            assert_eq!(c.matches('{').count(), c.matches('}').count(), "{c}");
        }
    }

    #[test]
    fn table_shows_medians_and_ratios() {
        let run = |rps: u64, p50: f64, p99: f64| WrkRun {
            requests: rps * 10,
            seconds: 10.0,
            bytes: Some(rps * 10 * 700),
            p50_us: p50,
            p99_us: p99,
            non_2xx: 0,
            socket_errors: 0,
        };
        let p = [
            run(20_000, 1500.0, 5000.0),
            run(24_000, 1300.0, 4000.0),
            run(30_000, 1000.0, 3000.0),
        ];
        let n = [
            run(48_000, 600.0, 1500.0),
            run(40_000, 700.0, 2000.0),
            run(50_000, 500.0, 1000.0),
        ];
        let t = table(&p, &n, 32, false);
        assert!(
            t.starts_with("3 interleaved rounds of each side, medians:\n"),
            "{t}"
        );
        assert!(t.contains("| figure | podnet | nginx one hop | ratio | target |"));
        assert!(
            t.contains(
                "| HTTP/1.1 keep-alive requests/s, wrk -t1 -c32 | 24000 | 48000 | 0.50 | >= 1.0 |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| latency p50 | 1.30 ms | 600 us | 2.17 | |"),
            "{t}"
        );
        assert!(
            t.contains("| latency p99 | 4.00 ms | 1.50 ms | 2.67 | |"),
            "{t}"
        );
        assert!(t.contains("| 700 B | 700 B | | |"), "{t}");
        let t = table(&p, &n, 32, true);
        assert!(t.contains("| podnet | nginx TLS one hop |"), "{t}");
        assert!(t.contains("| HTTPS (TLS 1.3) keep-alive requests/s"), "{t}");
    }
}
