//! Flows against real servers on loopback.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podnet_experiment::schedule::{Arrival, Profile, Segment};
use podnet_experiment::series::{Outcome, Sample};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::*;
use crate::net::HostNet;

/// An http-echo-like server: JSON naming its pod, the HTTP version in a
/// header, 500 for `/fail`. With `tls`, HTTPS offering h2 and http/1.1.
async fn http_server(tls: Option<tokio_rustls::TlsAcceptor>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let status = if req.uri().path() == "/fail" {
                        500
                    } else {
                        200
                    };
                    let body = serde_json::json!({
                        "pod": "web-1", "namespace": "default", "node": "node-1",
                        "version": format!("{:?}", req.version()),
                    });
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap(),
                    )
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(tls) => {
                        if let Ok(s) = tls.accept(stream).await {
                            let _ = builder.serve_connection(TokioIo::new(s), service).await;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A CA (PEM) and a TLS acceptor for `shop.test` signed by it.
fn pki() -> (String, tokio_rustls::TlsAcceptor) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["shop.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca.pem(), tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn udp_echo_server() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn flow(request: Request, requests: u32) -> Flow {
    Flow {
        name: "t".into(),
        request,
        profile: Profile {
            segments: vec![Segment::hold(
                f64::from(requests) * 4.0,
                Duration::from_millis(250),
            )],
        },
        arrival: Arrival::Uniform,
        timeout: Duration::from_secs(2),
        stream: 0,
        closed: None,
    }
}

fn http_request(url: String, version: HttpVersion, reuse: bool) -> Request {
    Request::Http(HttpRequest {
        method: "GET".into(),
        url,
        connect_to: None,
        version,
        reuse,
        cacert: None,
    })
}

async fn samples(flow: Flow) -> (Tally, Vec<Sample>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let t0 = Instant::now() + Duration::from_millis(20);
    let tally = run(
        0,
        flow,
        7,
        t0,
        HostNet,
        World::empty(),
        Arc::new(AtomicBool::new(false)),
        tx,
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    while let Some((_, s)) = rx.recv().await {
        out.push(s);
    }
    (tally, out)
}

fn outcomes(samples: &[Sample]) -> Vec<Outcome> {
    let mut o: Vec<Outcome> = samples.iter().map(|s| s.outcome).collect();
    o.dedup();
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_are_answered_and_name_their_server() {
    let addr = http_server(None).await;
    for (version, reuse) in [
        (HttpVersion::Http1, true),
        (HttpVersion::Http1, false),
        (HttpVersion::Http2, true),
        (HttpVersion::Http2, false),
    ] {
        let (tally, s) = samples(flow(
            http_request(format!("http://{addr}/x"), version, reuse),
            20,
        ))
        .await;
        assert_eq!(tally.scheduled, 20, "{version:?} reuse {reuse}");
        assert_eq!(s.len(), 20);
        assert_eq!(outcomes(&s), vec![Outcome::Ok], "{version:?} reuse {reuse}");
        assert_eq!(s[0].served.as_ref().unwrap().pod, "default/web-1");
        assert!(s.iter().all(|x| x.latency >= x.lag));
    }
    let (_, s) = samples(flow(
        http_request(format!("http://{addr}/fail"), HttpVersion::Http1, true),
        5,
    ))
    .await;
    assert_eq!(outcomes(&s), vec![Outcome::Http5xx]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_flows_verify_the_server_and_speak_h2_by_alpn() {
    let (ca, acceptor) = pki();
    let addr = http_server(Some(acceptor)).await;
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let (_, s) = samples(flow(
            Request::Http(HttpRequest {
                method: "GET".into(),
                url: "https://shop.test/".into(),
                connect_to: Some(addr),
                version,
                reuse: true,
                cacert: Some(ca.clone()),
            }),
            10,
        ))
        .await;
        assert_eq!(outcomes(&s), vec![Outcome::Ok], "{version:?}");
    }
    // Another CA: the server is not trusted.
    let (other, _) = pki();
    let (_, s) = samples(flow(
        Request::Http(HttpRequest {
            method: "GET".into(),
            url: "https://shop.test/".into(),
            connect_to: Some(addr),
            version: HttpVersion::Http1,
            reuse: true,
            cacert: Some(other),
        }),
        5,
    ))
    .await;
    assert_eq!(outcomes(&s), vec![Outcome::Tls]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_flows_connect_and_echo() {
    let echo = echo_server().await;
    for e in [false, true] {
        let (_, s) = samples(flow(
            Request::Tcp {
                host: "127.0.0.1".into(),
                port: echo.port(),
                connect_to: None,
                echo: e,
            },
            10,
        ))
        .await;
        assert_eq!(outcomes(&s), vec![Outcome::Ok], "echo {e}");
    }
    let closed = closed_port();
    let (_, s) = samples(flow(
        Request::Tcp {
            host: "x".into(),
            port: 1,
            connect_to: Some(closed),
            echo: false,
        },
        5,
    ))
    .await;
    assert_eq!(outcomes(&s), vec![Outcome::Refused]);
    let (_, s) = samples(flow(
        http_request(format!("http://{closed}/"), HttpVersion::Http1, true),
        5,
    ))
    .await;
    assert_eq!(outcomes(&s), vec![Outcome::Refused]);

    let udp = udp_echo_server().await;
    let (_, s) = samples(flow(
        Request::Udp {
            host: "127.0.0.1".into(),
            port: udp.port(),
            connect_to: None,
        },
        10,
    ))
    .await;
    assert_eq!(outcomes(&s), vec![Outcome::Ok]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_that_cannot_be_sent_is_refused_before_it_starts() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut f = flow(
        http_request("https://shop.test/".into(), HttpVersion::Http1, true),
        1,
    );
    let e = run(
        0,
        f.clone(),
        1,
        Instant::now(),
        HostNet,
        World::empty(),
        Arc::new(AtomicBool::new(false)),
        tx.clone(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("cacert"), "{e}");
    f.request = Request::Dns {
        name: "x".into(),
        rtype: "BOGUS".into(),
        server: None,
    };
    let e = run(
        0,
        f,
        1,
        Instant::now(),
        HostNet,
        World::empty(),
        Arc::new(AtomicBool::new(false)),
        tx,
    )
    .await
    .unwrap_err();
    assert!(e.contains("BOGUS"), "{e}");
}

#[test]
fn a_flow_travels_as_json() {
    let f = flow(
        Request::Dns {
            name: "web".into(),
            rtype: "A".into(),
            server: Some("10.96.0.10:53".parse().unwrap()),
        },
        3,
    );
    let back: Flow = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back.request, f.request);
    assert_eq!(back.profile, f.profile);
}

/// A TCP echo server that answers each line 20 ms late, counting the
/// lines it holds at once (the most, and now).
async fn slow_echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (most, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = most.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (most, open) = (most.clone(), open.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    // Done before the client can see the answer.
                    open.fetch_sub(1, Ordering::SeqCst);
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_keeps_its_workers_busy_and_never_more() {
    let (addr, most) = slow_echo_server().await;
    let mut f = flow(
        Request::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
            connect_to: None,
            echo: true,
        },
        1,
    );
    f.profile = Profile {
        segments: vec![Segment::hold(0.0, Duration::from_millis(300))],
    };
    f.closed = Some(ClosedLoop {
        concurrency: 3,
        think: Duration::ZERO,
    });
    let (tally, s) = samples(f).await;
    assert_eq!(tally.scheduled, s.len() as u64);
    assert_eq!(outcomes(&s), vec![Outcome::Ok], "{s:?}");
    // Each request takes at least 20 ms, one after another per worker:
    // at most 3 x (300 / 20 + 1), and at least one each.
    assert!((3..=48).contains(&s.len()), "{} requests", s.len());
    let most = most.load(Ordering::SeqCst);
    assert!(
        most <= 3,
        "never more than 3 at once, saw {most} of {}",
        s.len()
    );
    assert!(
        s.iter()
            .all(|s| s.lag.is_zero() && s.latency >= Duration::from_millis(20))
    );
    assert!(s.iter().all(|s| s.scheduled < Duration::from_millis(300)));
}
