//! The server over a standalone namespace (the client is in the same pod,
//! which is all the loopback path needs), and the pure byte-level entry
//! points.

use std::net::{Ipv4Addr, SocketAddrV4};

use hickory_proto::op::{Edns, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::*;
use crate::cluster::{self, ClusterView};
use crate::dns::fixture;
use crate::netns::{NetNs, PodInfo};

const DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 10);

fn pod() -> Arc<NetNs> {
    let info = PodInfo {
        namespace: "kube-system".into(),
        name: "coredns-0".into(),
        node: "node-1".into(),
    };
    NetNs::isolated(DNS_IP, info)
}

fn domain() -> ClusterDomain {
    ClusterDomain::cluster_local().expect("cluster.local is valid")
}

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), ServeError>>,
    stats: Arc<DnsStats>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        let result = self.task.await.expect("the server does not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

fn start(ns: &Arc<NetNs>, cluster: ClusterViewRx) -> Running {
    let udp = ns.bind_udp(DNS_PORT).expect("port 53/udp is free");
    let tcp = ns.listen_tcp(DNS_PORT).expect("port 53/tcp is free");
    let cancel = CancellationToken::new();
    let stats = Arc::new(DnsStats::default());
    let task = tokio::spawn(serve(
        udp,
        tcp,
        domain(),
        cluster,
        None,
        stats.clone(),
        cancel.clone(),
    ));
    Running {
        cancel,
        task,
        stats,
    }
}

fn server() -> SocketAddrV4 {
    SocketAddrV4::new(DNS_IP, DNS_PORT)
}

fn query(id: u16, name: &str, rtype: RecordType) -> Message {
    let mut query = Message::query();
    query.metadata.id = id;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    query
}

/// Sends `bytes` in one datagram and waits a second for one back.
async fn udp_exchange(ns: &Arc<NetNs>, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = ns.bind_udp(0).unwrap();
    socket.send_to(bytes, server()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(1), socket.recv_from()).await {
        Ok(received) => Some(received.unwrap().0.to_vec()),
        Err(_) => None,
    }
}

async fn write_framed(stream: &mut crate::netns::PodStream, bytes: &[u8]) {
    let length = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    stream.write_all(&length).await.unwrap();
    stream.write_all(bytes).await.unwrap();
}

async fn read_framed(stream: &mut crate::netns::PodStream) -> Vec<u8> {
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await.unwrap();
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut message).await.unwrap();
    message
}

fn addresses(response: &Message) -> Vec<String> {
    response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn udp_queries_round_trip() {
    let ns = pod();
    let running = start(&ns, cluster::fixed(fixture::cluster_view()));

    let bytes = query(4242, "web.default.svc.cluster.local.", RecordType::A)
        .to_vec()
        .unwrap();
    let reply = udp_exchange(&ns, &bytes).await.expect("an answer");
    let response = Message::from_vec(&reply).unwrap();
    assert_eq!(response.id, 4242);
    assert!(response.authoritative && !response.truncation);
    assert_eq!(addresses(&response), ["10.96.0.12"]);

    let bytes = query(7, "nope.default.svc.cluster.local.", RecordType::A)
        .to_vec()
        .unwrap();
    let reply = udp_exchange(&ns, &bytes).await.expect("an answer");
    let response = Message::from_vec(&reply).unwrap();
    assert_eq!(response.response_code, ResponseCode::NXDomain);

    assert_eq!(running.stats.queries(), 2);
    assert_eq!(running.stats.responses(ResponseCode::NoError), 1);
    assert_eq!(running.stats.responses(ResponseCode::NXDomain), 1);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn tcp_carries_several_queries_per_connection() {
    let ns = pod();
    let running = start(&ns, cluster::fixed(fixture::cluster_view()));
    let mut stream = ns.connect_tcp(server()).await.unwrap();
    // Two queries pipelined, answered in order.
    for (id, name) in [
        (1, "web.default.svc.cluster.local."),
        (2, "db.default.svc.cluster.local."),
    ] {
        write_framed(
            &mut stream,
            &query(id, name, RecordType::A).to_vec().unwrap(),
        )
        .await;
    }
    let first = Message::from_vec(&read_framed(&mut stream).await).unwrap();
    let second = Message::from_vec(&read_framed(&mut stream).await).unwrap();
    assert_eq!(
        (first.id, addresses(&first)),
        (1, vec!["10.96.0.12".to_owned()])
    );
    assert_eq!(second.id, 2);
    assert_eq!(addresses(&second).len(), 2);
    // A third one later on the same connection.
    write_framed(
        &mut stream,
        &query(3, "dns-version.cluster.local.", RecordType::TXT)
            .to_vec()
            .unwrap(),
    )
    .await;
    let third = Message::from_vec(&read_framed(&mut stream).await).unwrap();
    assert_eq!((third.id, third.answers.len()), (3, 1));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn idle_tcp_connections_are_closed() {
    let ns = pod();
    let running = start(&ns, cluster::fixed(fixture::cluster_view()));
    let mut stream = ns.connect_tcp(server()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(TCP_IDLE_TIMEOUT * 2, stream.read(&mut byte))
        .await
        .expect("the server closes before the test's deadline");
    assert_eq!(read.unwrap(), 0, "closed without a byte");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn garbage_gets_formerr_when_the_header_reads_and_silence_otherwise() {
    let ns = pod();
    let running = start(&ns, cluster::fixed(fixture::cluster_view()));

    // Shorter than a header: dropped.
    assert_eq!(udp_exchange(&ns, b"\x01\x02\x03").await, None);
    // A header announcing a question that is not there: FORMERR, same id.
    let mut broken = vec![0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    broken.extend_from_slice(b"\x07garbage");
    let reply = udp_exchange(&ns, &broken).await.expect("FORMERR");
    let response = Message::from_vec(&reply).unwrap();
    assert_eq!(
        (
            response.id,
            response.response_code,
            response.recursion_desired
        ),
        (0xbeef, ResponseCode::FormErr, true)
    );
    // A response is never answered.
    let mut echo = query(9, "web.default.svc.cluster.local.", RecordType::A);
    echo.metadata.message_type = MessageType::Response;
    assert_eq!(udp_exchange(&ns, &echo.to_vec().unwrap()).await, None);
    // And the server still serves.
    let bytes = query(10, "web.default.svc.cluster.local.", RecordType::A)
        .to_vec()
        .unwrap();
    assert!(udp_exchange(&ns, &bytes).await.is_some());

    assert_eq!(running.stats.dropped(), 2);
    assert_eq!(running.stats.responses(ResponseCode::FormErr), 1);
    // A zero-length TCP message ends the connection.
    let mut stream = ns.connect_tcp(server()).await.unwrap();
    stream.write_all(&[0, 0]).await.unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(stream.read(&mut byte).await.unwrap(), 0);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn oversized_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let mut view = fixture::cluster_view();
    fixture::big_headless(&mut view, 100);
    let ns = pod();
    let running = start(&ns, cluster::fixed(view));
    let big = query(5, "big.default.svc.cluster.local.", RecordType::A);

    let reply = udp_exchange(&ns, &big.to_vec().unwrap()).await.unwrap();
    assert!(reply.len() <= 512);
    let response = Message::from_vec(&reply).unwrap();
    assert!(response.truncation, "TC set");
    assert!(response.answers.is_empty());
    assert_eq!(response.queries, big.queries, "the question is kept");

    // EDNS raises the limit to what the query advertises, capped at 1232.
    let mut with_edns = big.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    with_edns.set_edns(edns);
    let reply = udp_exchange(&ns, &with_edns.to_vec().unwrap())
        .await
        .unwrap();
    assert!(reply.len() <= usize::from(SERVER_UDP_PAYLOAD));
    let response = Message::from_vec(&reply).unwrap();
    assert!(response.truncation && response.edns.is_some());

    let mut stream = ns.connect_tcp(server()).await.unwrap();
    write_framed(&mut stream, &big.to_vec().unwrap()).await;
    let response = Message::from_vec(&read_framed(&mut stream).await).unwrap();
    assert!(!response.truncation);
    assert_eq!(response.answers.len(), 100);

    assert_eq!(running.stats.truncated(), 2);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_index_follows_the_view() {
    let ns = pod();
    let (tx, rx) = watch::channel(Arc::new(ClusterView::default()));
    let running = start(&ns, rx);
    let ask = |id| query(id, "web.default.svc.cluster.local.", RecordType::A);

    let reply = udp_exchange(&ns, &ask(1).to_vec().unwrap()).await.unwrap();
    let response = Message::from_vec(&reply).unwrap();
    assert_eq!(response.response_code, ResponseCode::NXDomain);

    tx.send(Arc::new(fixture::cluster_view())).unwrap();
    let reply = udp_exchange(&ns, &ask(2).to_vec().unwrap()).await.unwrap();
    let response = Message::from_vec(&reply).unwrap();
    assert_eq!(addresses(&response), ["10.96.0.12"]);
    running.stop().await;
}

#[test]
fn the_zone_is_rebuilt_only_when_the_view_changes() {
    let (tx, rx) = watch::channel(Arc::new(ClusterView::default()));
    let zone = Zone::new(domain(), rx);
    let first = zone.current();
    assert!(
        Arc::ptr_eq(&first, &zone.current()),
        "no change, same index"
    );
    tx.send(Arc::new(fixture::cluster_view())).unwrap();
    let second = zone.current();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(second.serial() > first.serial());
    assert!(Arc::ptr_eq(&second, &zone.current()));
    drop(tx);
    assert!(
        Arc::ptr_eq(&second, &zone.current()),
        "a closed channel keeps the last view"
    );
}

#[tokio::test]
async fn cancel_stops_the_server_and_frees_the_ports() {
    let ns = pod();
    let running = start(&ns, cluster::fixed(ClusterView::default()));
    running.stop().await;
    assert!(!ns.has_tcp_listener(DNS_PORT));
    assert!(ns.bind_udp(DNS_PORT).is_ok());
}

#[test]
fn handle_datagram_answers_only_queries() {
    let index = Index::build(&fixture::cluster_view(), &domain(), 1);
    assert_eq!(handle_datagram(&index, b""), None);
    assert_eq!(handle_datagram(&index, &[0; 11]), None);
    // 65535 announced questions: FORMERR from the header, nothing decoded.
    let flood = [0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    let reply = Message::from_vec(&handle_datagram(&index, &flood).expect("FORMERR")).unwrap();
    assert_eq!(
        (reply.id, reply.response_code, reply.queries.len()),
        (0x1234, ResponseCode::FormErr, 0)
    );
    let reply = handle_datagram(
        &index,
        &query(1, "web.default.svc.cluster.local.", RecordType::A)
            .to_vec()
            .unwrap(),
    )
    .expect("an answer");
    assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 1);
}

#[test]
fn additional_records_go_first_when_space_runs_out() {
    // 17 SRV targets (uncompressed, RFC 2782): the answers fit in 1232
    // bytes only without their additional A records, which are dropped
    // without setting TC.
    let mut view = fixture::cluster_view();
    fixture::big_headless(&mut view, 17);
    if let Some(service) = view.services.get_mut("default/big") {
        service["spec"]["ports"] = serde_json::json!([{"name": "p", "port": 1}]);
    }
    if let Some(slice) = view.endpoint_slices.get_mut("default/big-1") {
        slice["ports"] = serde_json::json!([{"name": "p", "port": 1, "protocol": "TCP"}]);
    }
    let index = Index::build(&view, &domain(), 1);
    let mut srv = query(1, "_p._tcp.big.default.svc.cluster.local.", RecordType::SRV);
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    srv.set_edns(edns);
    let whole = handle_stream_message(&index, &srv.to_vec().unwrap()).unwrap();
    assert!(whole.len() > 1232, "{}", whole.len());
    let whole = Message::from_vec(&whole).unwrap();
    assert_eq!((whole.answers.len(), whole.additionals.len()), (17, 17));
    let reply = handle_datagram(&index, &srv.to_vec().unwrap()).unwrap();
    let response = Message::from_vec(&reply).unwrap();
    assert!(!response.truncation);
    assert_eq!(
        (response.answers.len(), response.additionals.len()),
        (17, 0)
    );
    assert!(response.edns.is_some(), "the OPT stays");
}

proptest! {
    #[test]
    fn any_datagram_is_handled_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let index = Index::build(&fixture::cluster_view(), &domain(), 1);
        if let Some(reply) = handle_datagram(&index, &bytes) {
            prop_assert!(reply.len() <= usize::from(SERVER_UDP_PAYLOAD));
            prop_assert!(Message::from_vec(&reply).is_ok());
        }
        let _ = handle_stream_message(&index, &bytes);
    }

    #[test]
    fn mutated_queries_are_handled_without_panicking(
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
    ) {
        let index = Index::build(&fixture::cluster_view(), &domain(), 1);
        let mut bytes = query(1, "_pg._tcp.db.default.svc.cluster.local.", RecordType::SRV)
            .to_vec()
            .unwrap();
        for (at, value) in flips {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        if let Some(reply) = handle_datagram(&index, &bytes) {
            prop_assert!(Message::from_vec(&reply).is_ok());
        }
    }
}
