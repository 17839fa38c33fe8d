//! `podnet/http-echo`: an HTTP/1.1 server that answers every request with
//! 200 and a JSON description of the pod that answered and of the request it
//! saw (client address, method, path, Host, headers). Hitting a Service
//! repeatedly therefore shows which endpoint answered each time.
//!
//! It deliberately serves nothing else: no routing, no configurable status or
//! latency (that is `podnet/http-server`'s job), no HTTP/2 or TLS. Request
//! bodies are read and thrown away, up to a bound.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::container::WorkloadError;
use podnet_proto::trace::{Recorder, SpanTimer, hop};

use crate::netns::{NetNs, PodInfo, PodListener, PodStream};

/// Request body bytes read (and discarded) before the server gives up on a
/// request with 413: enough for any test payload, small enough that a
/// runaway upload cannot keep a connection busy for long.
const MAX_REQUEST_BODY: u64 = 16 * 1024 * 1024;
/// A client that has not finished sending its request head by then is
/// disconnected, so idle or slowloris connections do not pile up.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) async fn serve(
    ns: Arc<NetNs>,
    listeners: Vec<PodListener>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> Result<(), WorkloadError> {
    super::accept_loops(
        "http-echo",
        listeners,
        cancel,
        move |stream, peer, cancel| {
            serve_connection(ns.clone(), stream, peer, recorder.clone(), cancel)
        },
    )
    .await
}

async fn serve_connection(
    ns: Arc<NetNs>,
    stream: PodStream,
    client: SocketAddr,
    recorder: Recorder,
    cancel: CancellationToken,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let ns = ns.clone();
        // A request that carries a journey (W3C traceparent, as the ingress
        // sends) records the pod's hop of it.
        let timer = trace_parent(request.headers()).map(|id| SpanTimer::start(id, hop::POD));
        let summary = format!("{} {}", request.method(), request.uri().path());
        let recorder = recorder.clone();
        async move {
            let response = answer(&ns, client, request).await;
            if let Some(timer) = timer {
                let info = ns.info();
                let decision = format!(
                    "pod {}/{} ({}) answered {summary} from {client}",
                    info.namespace,
                    info.name,
                    ns.ip()
                );
                timer.finish(&recorder, decision, response.status().as_u16().to_string());
            }
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        // `nc` and scripts often half-close after sending a request; they
        // still want the answer.
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "http-echo connection failed");
            }
        }
        // The container is stopping: connections end abruptly, as they do
        // when a process is killed.
        () = cancel.cancelled() => {}
    }
}

/// The trace id in a W3C `traceparent` header (`00-TRACEID-SPANID-FLAGS`):
/// podnet's 64-bit ids are the low half of the 128-bit trace id.
fn trace_parent(headers: &http::HeaderMap) -> Option<u64> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut fields = value.split('-');
    let (_version, trace) = (fields.next()?, fields.next()?);
    let low = trace.get(16..32).filter(|_| trace.len() == 32)?;
    u64::from_str_radix(low, 16).ok().filter(|id| *id != 0)
}

async fn answer(
    ns: &NetNs,
    client: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, mut body) = request.into_parts();
    let mut received: u64 = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    received += data.len() as u64;
                }
                if received > MAX_REQUEST_BODY {
                    let mut response = json_response(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &json!({ "error": format!("podnet/http-echo reads at most {MAX_REQUEST_BODY} bytes of request body") }),
                    );
                    // The rest of the body is not read, so the connection
                    // cannot carry another request.
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                    return response;
                }
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "request body not received");
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({ "error": "the request body was cut short" }),
                );
            }
        }
    }
    json_response(
        StatusCode::OK,
        &describe(ns.info(), ns.ip(), client, &parts),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    let mut body = value.to_string();
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The answer's body: who answered and what it saw.
fn describe(
    pod: &PodInfo,
    ip: IpAddr,
    client: SocketAddr,
    request: &http::request::Parts,
) -> Value {
    let lossy = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        // Repeated headers are folded the way HTTP allows (RFC 9110 5.3).
        match headers.get_mut(name.as_str()) {
            Some(Value::String(folded)) => {
                folded.push_str(", ");
                folded.push_str(&lossy(value));
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(lossy(value)));
            }
        }
    }
    let host = match request.headers.get(HOST) {
        Some(host) => lossy(host),
        // HTTP/1.0 without Host, or an absolute-form request target.
        None => request
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let path = match request.uri.path_and_query() {
        Some(path) => path.as_str().to_owned(),
        // `OPTIONS *` and other targets without a path.
        None => request.uri.to_string(),
    };
    json!({
        "pod": pod.name,
        "namespace": pod.namespace,
        "podIP": ip.to_string(),
        "node": pod.node,
        "client": client.to_string(),
        "method": request.method.as_str(),
        "path": path,
        "host": host,
        "headers": headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(request: Request<()>) -> http::request::Parts {
        request.into_parts().0
    }

    #[test]
    fn trace_parent_takes_the_low_half_of_the_w3c_trace_id() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0000000000000000ad68e647a330b581-ad68e647a330b581-01"),
        );
        assert_eq!(trace_parent(&h), Some(0xad68_e647_a330_b581));
        for bad in [
            "00-short-x-01",
            "garbage",
            "00-00000000000000000000000000000000-00-01",
        ] {
            h.insert("traceparent", HeaderValue::from_static(bad));
            assert_eq!(trace_parent(&h), None, "{bad}");
        }
        assert_eq!(trace_parent(&http::HeaderMap::new()), None);
    }

    #[test]
    fn describe_reports_pod_and_request() {
        let pod = PodInfo {
            namespace: "default".into(),
            name: "web-0".into(),
            node: "node-1".into(),
        };
        let request = Request::get("/a/b?x=1")
            .header("host", "web.default")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .body(())
            .expect("a valid request");
        let got = describe(
            &pod,
            std::net::Ipv4Addr::new(10, 244, 1, 5).into(),
            "10.244.2.7:40000".parse().expect("addr"),
            &parts(request),
        );
        assert_eq!(
            got,
            json!({
                "pod": "web-0",
                "namespace": "default",
                "podIP": "10.244.1.5",
                "node": "node-1",
                "client": "10.244.2.7:40000",
                "method": "GET",
                "path": "/a/b?x=1",
                "host": "web.default",
                "headers": { "host": "web.default", "x-multi": "one, two" },
            })
        );
    }

    #[test]
    fn describe_without_host_header_uses_the_request_target() {
        let request = Request::get("http://example:8080/p")
            .body(())
            .expect("a valid request");
        let got = describe(
            &PodInfo::default(),
            std::net::Ipv4Addr::LOCALHOST.into(),
            "127.0.0.1:1".parse().expect("addr"),
            &parts(request),
        );
        assert_eq!(got["host"], "example:8080");
        assert_eq!(got["path"], "/p");
        assert_eq!(got["headers"], json!({}));
    }
}
