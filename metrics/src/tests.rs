use super::*;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn headers(accept: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for a in accept {
        h.append(ACCEPT, a.parse().unwrap());
    }
    h
}

#[test]
fn negotiation() {
    fn check(accept: &[&str], expected: Format) {
        assert_eq!(Format::negotiate(&headers(accept)), expected, "{accept:?}");
    }
    check(&[], Format::Prometheus);
    check(&["*/*"], Format::Prometheus);
    check(&["text/plain;version=0.0.4"], Format::Prometheus);
    // What Prometheus 2.x sends.
    check(
        &[
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        ],
        Format::OpenMetrics,
    );
    check(
        &["text/plain", "application/OpenMetrics-Text"],
        Format::OpenMetrics,
    );
    check(&["application/openmetrics-text; q=0"], Format::Prometheus);
    check(&["application/openmetrics-textual"], Format::Prometheus);
}

fn registry() -> (Registry, Family<Vec<(String, String)>, Counter>) {
    let mut r = Registry::default();
    let f = Family::<Vec<(String, String)>, Counter>::default();
    r.register("podnet_test_requests", "Requests seen", f.clone());
    (r, f)
}

#[test]
fn routes() {
    let (r, f) = registry();
    f.get_or_create(&vec![("code".into(), "OK".into())])
        .inc_by(3);
    let ok = respond(&r, &Method::GET, "/metrics", &HeaderMap::new());
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()[CONTENT_TYPE], PROMETHEUS_CONTENT_TYPE);
    let om = respond(
        &r,
        &Method::GET,
        "/metrics",
        &headers(&["application/openmetrics-text"]),
    );
    assert_eq!(om.headers()[CONTENT_TYPE], OPENMETRICS_CONTENT_TYPE);
    assert_eq!(
        respond(&r, &Method::GET, "/", &HeaderMap::new()).status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        respond(&r, &Method::GET, "/metricsx", &HeaderMap::new()).status(),
        StatusCode::NOT_FOUND
    );
    let post = respond(&r, &Method::POST, "/metrics", &HeaderMap::new());
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()[ALLOW], "GET, HEAD");
    assert_eq!(
        respond(&r, &Method::HEAD, "/metrics", &HeaderMap::new()).status(),
        StatusCode::OK
    );
}

#[test]
fn both_formats_parse_with_their_values() {
    let (r, f) = registry();
    f.get_or_create(&vec![("code".into(), "OK".into())])
        .inc_by(3);
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let text = render(&r, format);
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == "podnet_test_requests_total")
            .unwrap_or_else(|| panic!("{format:?}: {text}"));
        assert_eq!(sample.labels.get("code"), Some("OK"), "{text}");
        assert!(
            matches!(sample.value, prometheus_parse::Value::Counter(v) if v == 3.0)
                || matches!(sample.value, prometheus_parse::Value::Untyped(v) if v == 3.0),
            "{format:?}: {:?}",
            sample.value
        );
    }
}

async fn start() -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<io::Result<()>>,
) {
    let (r, f) = registry();
    f.get_or_create(&vec![("code".into(), "OK".into())]).inc();
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(listener, Arc::new(r), shutdown.clone()));
    (addr, shutdown, server)
}

/// What the server answers `request` with, or how it closed the
/// connection.
async fn try_exchange(addr: SocketAddr, request: &[u8]) -> io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request).await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closes the connection")?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The server's answer; a connection it closed unanswered (a reset, when
/// it left the request unread) is an empty answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    match try_exchange(addr, request).await {
        Ok(answer) => answer,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => String::new(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn serves_until_shutdown() {
    let (addr, shutdown, server) = start().await;
    let ok = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("podnet_test_requests_total{code=\"OK\"} 1\n"),
        "{ok}"
    );
    let missing = exchange(
        addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
    let garbage = exchange(addr, b"\xff\xfe\r\n\r\n").await;
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400 "),
        "{garbage}"
    );
    // A head larger than the bound is refused, not buffered.
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEAD * 2));
    big.extend_from_slice(b"\r\n\r\n");
    let refused = exchange(addr, &big).await;
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 431 "),
        "{refused}"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn connections_beyond_the_bound_are_closed() {
    let (addr, shutdown, server) = start().await;
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Accepted in order: the one past the bound is closed unanswered.
    let extra = exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(extra, "");
    drop(idle);
    // Slots come back as the idle connections end.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ok = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if ok.starts_with("HTTP/1.1 200 ") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
