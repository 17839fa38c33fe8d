//! The ingress controller's own rules: its arguments, and what it strips
//! from a request or response between hops.

use http::HeaderMap;
use http::header::{CONNECTION, HOST, HeaderValue, TRANSFER_ENCODING};

use super::*;
use crate::container::WorkloadEnv;
use crate::netns::PodInfo;

fn spec(args: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: "controller".into(),
        image: "podnet/ingress".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Vec::new(),
        ports: Vec::new(),
        workload_env: WorkloadEnv::default(),
    }
}

fn ns() -> Arc<NetNs> {
    NetNs::isolated(
        std::net::Ipv4Addr::new(10, 244, 0, 5),
        PodInfo {
            namespace: "podnet-ingress".into(),
            name: "controller-0".into(),
            node: "node-1".into(),
        },
    )
}

#[test]
fn settings_default_to_ingress_nginx_ports_and_the_own_namespace() {
    let s = settings(&ns(), &spec(&[])).unwrap();
    assert_eq!((s.http_port, s.https_port), (80, 443));
    assert_eq!(
        s.publish_service,
        (
            "podnet-ingress".to_string(),
            DEFAULT_PUBLISH_SERVICE.to_string()
        )
    );
    let s = settings(
        &ns(),
        &spec(&[
            "--http-port=8080",
            "--https-port=8443",
            "--publish-service=a/b",
        ]),
    )
    .unwrap();
    assert_eq!((s.http_port, s.https_port), (8080, 8443));
    assert_eq!(s.publish_service, ("a".to_string(), "b".to_string()));
}

#[test]
fn bad_arguments_say_which_and_why() {
    for (arg, why) in [
        ("--http-port=0", "between 1 and 65535"),
        ("--https-port=x", "between 1 and 65535"),
        ("--publish-service=nope", "NAMESPACE/NAME"),
        ("--publish-service=/b", "NAMESPACE/NAME"),
        ("--verbose", "takes --http-port"),
    ] {
        let err = settings(&ns(), &spec(&[arg])).unwrap_err().to_string();
        assert!(err.contains(arg) && err.contains(why), "{arg}: {err}");
    }
}

#[test]
fn hop_by_hop_headers_do_not_cross_the_proxy() {
    let mut h = HeaderMap::new();
    h.insert(HOST, HeaderValue::from_static("shop.example.com"));
    h.insert(
        CONNECTION,
        HeaderValue::from_static("keep-alive, x-secret-hop"),
    );
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert("x-secret-hop", HeaderValue::from_static("1"));
    h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    h.insert("proxy-connection", HeaderValue::from_static("close"));
    h.insert("x-end-to-end", HeaderValue::from_static("kept"));
    strip_hop_by_hop(&mut h);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["host", "x-end-to-end"]);
}

#[test]
fn error_answers_are_plain_text_with_the_status() {
    let r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: why\n",
    );
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
}

#[test]
fn the_upstream_header_is_the_one_the_load_generator_reads() {
    assert_eq!(UPSTREAM_HEADER, podnet_loadgen::UPSTREAM_HEADER);
    assert!(HeaderName::from_static(UPSTREAM_HEADER) == UPSTREAM_HEADER);
}
