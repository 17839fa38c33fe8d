//! Every rule of the schema and of NXDOMAIN/NODATA/REFUSED through one
//! `check(name, type, expected)` helper over the fixture cluster.
//!
//! Expected responses are written one line per fact: the response code and
//! flags, then `an:`, `ns:` and `ar:` lines for the answer, authority and
//! additional records (an authority SOA is shortened to `ns: SOA <zone>`).

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::RecordType::{self, A, AAAA, ANY, CNAME, NS, PTR, SOA, SRV, TXT};

use super::*;
use crate::dns::fixture;
use crate::dns::rcode_mnemonic;

const SERIAL: u32 = 7;

fn index() -> Index {
    let domain = ClusterDomain::cluster_local().expect("cluster.local is valid");
    Index::build(&fixture::cluster_view(), &domain, SERIAL)
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut query = Message::query();
    query.metadata.id = 0;
    query.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).expect("a valid test name");
    query.add_query(Query::query(name, rtype));
    query
}

fn render(response: &Message) -> String {
    let mut head = rcode_mnemonic(response.response_code);
    for (set, flag) in [
        (response.authoritative, "aa"),
        (response.truncation, "tc"),
        (response.recursion_available, "ra"),
    ] {
        if set {
            head.push(' ');
            head.push_str(flag);
        }
    }
    let mut lines = vec![head];
    lines.extend(response.answers.iter().map(|r| format!("an: {r}")));
    lines.extend(response.authorities.iter().map(|r| match &r.data {
        RData::SOA(_) => format!("ns: SOA {}", r.name),
        _ => format!("ns: {r}"),
    }));
    lines.extend(response.additionals.iter().map(|r| format!("ar: {r}")));
    lines.join("\n")
}

/// `expected` with each line trimmed, so tables can indent it.
fn tidy(expected: &str) -> String {
    expected
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_message(index: &Index, query: &Message, expected: &str) {
    let response = answer(index, query);
    // Invariants of every response.
    assert_eq!(response.id, query.id);
    assert_eq!(
        response.message_type,
        hickory_proto::op::MessageType::Response
    );
    assert_eq!(response.queries, query.queries, "the question is echoed");
    assert_eq!(response.recursion_desired, query.recursion_desired);
    assert!(!response.recursion_available, "no recursion here");
    assert_eq!(render(&response), tidy(expected), "{query}");
}

fn check(name: &str, rtype: RecordType, expected: &str) {
    check_message(&index(), &query(name, rtype), expected);
}

const NXDOMAIN: &str = "NXDOMAIN aa\nns: SOA cluster.local.";
const NODATA: &str = "NOERROR aa\nns: SOA cluster.local.";
const REVERSE_NXDOMAIN: &str = "NXDOMAIN aa\nns: SOA in-addr.arpa.";
const REVERSE_NODATA: &str = "NOERROR aa\nns: SOA in-addr.arpa.";

#[test]
fn cluster_ip_services() {
    check(
        "web.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: web.default.svc.cluster.local. 5 IN A 10.96.0.12",
    );
    // Case-insensitive, and the answer keeps the asker's spelling.
    check(
        "WEB.Default.SVC.cluster.LOCAL.",
        A,
        "NOERROR aa
         an: WEB.Default.SVC.cluster.LOCAL. 5 IN A 10.96.0.12",
    );
    check(
        "web.other.svc.cluster.local.",
        A,
        "NOERROR aa
         an: web.other.svc.cluster.local. 5 IN A 10.96.5.5",
    );
    check(
        "web.default.svc.cluster.local.",
        ANY,
        "NOERROR aa
         an: web.default.svc.cluster.local. 5 IN A 10.96.0.12",
    );
    // An existing name without records of the type: NODATA.
    check("web.default.svc.cluster.local.", AAAA, NODATA);
    check("web.default.svc.cluster.local.", TXT, NODATA);
    check("web.default.svc.cluster.local.", SRV, NODATA);
    // Below a Service there is nothing but its SRV names.
    check("x.web.default.svc.cluster.local.", A, NXDOMAIN);
    // Not allocated yet, or not a DNS name: not served.
    check("pending.default.svc.cluster.local.", A, NXDOMAIN);
    check("bad_name.default.svc.cluster.local.", A, NXDOMAIN);
    check("nope.default.svc.cluster.local.", A, NXDOMAIN);
}

#[test]
fn srv_records_of_named_ports() {
    check(
        "_http._tcp.web.default.svc.cluster.local.",
        SRV,
        "NOERROR aa
         an: _http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local.
         ar: web.default.svc.cluster.local. 5 IN A 10.96.0.12",
    );
    check(
        "_dns._udp.web.default.svc.cluster.local.",
        SRV,
        "NOERROR aa
         an: _dns._udp.web.default.svc.cluster.local. 5 IN SRV 0 100 53 web.default.svc.cluster.local.
         ar: web.default.svc.cluster.local. 5 IN A 10.96.0.12",
    );
    // The port name with another protocol does not exist.
    check("_dns._tcp.web.default.svc.cluster.local.", SRV, NXDOMAIN);
    // Unnamed ports have no SRV record.
    check("_9090._tcp.web.default.svc.cluster.local.", SRV, NXDOMAIN);
    // The SRV name exists for other types, and `_tcp.<svc>` is an empty
    // non-terminal.
    check("_http._tcp.web.default.svc.cluster.local.", A, NODATA);
    check("_tcp.web.default.svc.cluster.local.", SRV, NODATA);
}

#[test]
fn headless_services() {
    // One A per ready endpoint: the not-ready (even if serving) and the
    // terminating ones are left out.
    check(
        "db.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: db.default.svc.cluster.local. 5 IN A 10.244.1.5
         an: db.default.svc.cluster.local. 5 IN A 10.244.2.7",
    );
    check(
        "db-0.db.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5",
    );
    // Without a hostname, the endpoint is named by its dashed address.
    check(
        "10-244-2-7.db.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: 10-244-2-7.db.default.svc.cluster.local. 5 IN A 10.244.2.7",
    );
    check("db-2.db.default.svc.cluster.local.", A, NXDOMAIN);
    check("10-244-3-10.db.default.svc.cluster.local.", A, NXDOMAIN);
    // One SRV per (named port × ready endpoint), weights splitting 100.
    check(
        "_pg._tcp.db.default.svc.cluster.local.",
        SRV,
        "NOERROR aa
         an: _pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 db-0.db.default.svc.cluster.local.
         an: _pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 5432 10-244-2-7.db.default.svc.cluster.local.
         ar: db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5
         ar: 10-244-2-7.db.default.svc.cluster.local. 5 IN A 10.244.2.7",
    );
    // publishNotReadyAddresses publishes the not-ready endpoint.
    check(
        "unready-ok.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: unready-ok.default.svc.cluster.local. 5 IN A 10.244.4.4",
    );
}

#[test]
fn headless_service_without_ready_endpoints_is_nxdomain() {
    // Spec 2.4.1: "If there are no ready endpoints for the headless
    // Service, the answer should be NXDOMAIN" (CoreDNS does the same).
    check("empty.default.svc.cluster.local.", A, NXDOMAIN);
    check("empty.default.svc.cluster.local.", AAAA, NXDOMAIN);
}

#[test]
fn external_name_services() {
    // The target is outside the cluster: the CNAME alone, nothing chased.
    check(
        "ext.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: ext.default.svc.cluster.local. 5 IN CNAME www.example.com.",
    );
    check(
        "ext.default.svc.cluster.local.",
        CNAME,
        "NOERROR aa
         an: ext.default.svc.cluster.local. 5 IN CNAME www.example.com.",
    );
    // In-cluster target: its A follows the CNAME.
    check(
        "alias.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.
         an: web.default.svc.cluster.local. 5 IN A 10.96.0.12",
    );
    // NODATA at the end of the chain keeps the chain.
    check(
        "alias.default.svc.cluster.local.",
        AAAA,
        "NOERROR aa
         an: alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.
         ns: SOA cluster.local.",
    );
}

#[test]
fn a_cname_loop_is_servfail() {
    let response = answer(&index(), &query("loop-a.default.svc.cluster.local.", A));
    assert_eq!(response.response_code, ResponseCode::ServFail);
    assert!(response.answers.len() > 2, "{response}");
}

#[test]
fn reverse_records() {
    check(
        "12.0.96.10.in-addr.arpa.",
        PTR,
        "NOERROR aa
         an: 12.0.96.10.in-addr.arpa. 5 IN PTR web.default.svc.cluster.local.",
    );
    check(
        "5.1.244.10.in-addr.arpa.",
        PTR,
        "NOERROR aa
         an: 5.1.244.10.in-addr.arpa. 5 IN PTR db-0.db.default.svc.cluster.local.",
    );
    check(
        "7.2.244.10.in-addr.arpa.",
        PTR,
        "NOERROR aa
         an: 7.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-7.db.default.svc.cluster.local.",
    );
    // Not-ready endpoints and non-headless endpoints have no PTR.
    check("9.3.244.10.in-addr.arpa.", PTR, REVERSE_NXDOMAIN);
    check("9.1.244.10.in-addr.arpa.", PTR, REVERSE_NXDOMAIN);
    check("12.0.96.10.in-addr.arpa.", A, REVERSE_NODATA);
    check("0.96.10.in-addr.arpa.", PTR, REVERSE_NODATA);
    check(
        "in-addr.arpa.",
        SOA,
        "NOERROR aa
         an: in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5",
    );
    check(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.",
        PTR,
        "NXDOMAIN aa\nns: SOA ip6.arpa.",
    );
}

#[test]
fn zone_structure() {
    check(
        "cluster.local.",
        SOA,
        "NOERROR aa
         an: cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7 7200 1800 86400 5",
    );
    check(
        "cluster.local.",
        NS,
        "NOERROR aa
         an: cluster.local. 5 IN NS ns.dns.cluster.local.
         ar: ns.dns.cluster.local. 5 IN A 10.96.0.10",
    );
    check("cluster.local.", A, NODATA);
    // Existing empty non-terminals: NODATA, not NXDOMAIN.
    check("svc.cluster.local.", A, NODATA);
    check("default.svc.cluster.local.", A, NODATA);
    check("kube-system.svc.cluster.local.", A, NODATA);
    check("nowhere.svc.cluster.local.", A, NXDOMAIN);
    check("nothing.cluster.local.", A, NXDOMAIN);
    check(
        "dns-version.cluster.local.",
        TXT,
        "NOERROR aa
         an: dns-version.cluster.local. 5 IN TXT 1.1.0",
    );
    check("dns-version.cluster.local.", A, NODATA);
    check(
        "kube-dns.kube-system.svc.cluster.local.",
        A,
        "NOERROR aa
         an: kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10",
    );
}

#[test]
fn pod_records() {
    check(
        "10-244-1-5.default.pod.cluster.local.",
        A,
        "NOERROR aa
         an: 10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5",
    );
    check("10-244-1-5.default.pod.cluster.local.", AAAA, NODATA);
    check("default.pod.cluster.local.", A, NODATA);
    check("pod.cluster.local.", A, NODATA);
    for bad in [
        "010-244-1-5.default.pod.cluster.local.",
        "10-244-1-256.default.pod.cluster.local.",
        "10-244-1.default.pod.cluster.local.",
        "10-244-1-5-6.default.pod.cluster.local.",
        "web.default.pod.cluster.local.",
        "x.10-244-1-5.default.pod.cluster.local.",
    ] {
        check(bad, A, NXDOMAIN);
    }
}

#[test]
fn names_outside_the_zones_are_refused() {
    // podnet has no upstream to forward to; REFUSED, not authoritative.
    for name in [
        "example.com.",
        "cluster.local.example.com.",
        "local.",
        ".",
        "arpa.",
    ] {
        check(name, A, "REFUSED");
    }
}

#[test]
fn malformed_and_unsupported_queries() {
    let index = index();
    let mut none = query("web.default.svc.cluster.local.", A);
    none.queries.clear();
    check_message(&index, &none, "FORMERR");

    let mut two = query("web.default.svc.cluster.local.", A);
    two.add_query(Query::query(
        Name::from_ascii("db.default.svc.cluster.local.").unwrap(),
        A,
    ));
    check_message(&index, &two, "FORMERR");

    let mut status = query("web.default.svc.cluster.local.", A);
    status.metadata.op_code = OpCode::Status;
    check_message(&index, &status, "NOTIMP");

    let mut chaos = query("version.bind.", TXT);
    chaos.queries[0].set_query_class(DNSClass::CH);
    check_message(&index, &chaos, "REFUSED");

    check("cluster.local.", RecordType::AXFR, "REFUSED");
    check("cluster.local.", RecordType::IXFR, "REFUSED");
    check("cluster.local.", RecordType::OPT, "FORMERR");
}

#[test]
fn edns_is_echoed_and_versions_above_0_are_badvers() {
    let index = index();
    let mut with_edns = query("web.default.svc.cluster.local.", A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    with_edns.set_edns(edns.clone());
    let response = answer(&index, &with_edns);
    let echoed = response.edns.as_ref().expect("an OPT in the response");
    assert_eq!(
        (echoed.max_payload(), echoed.version()),
        (SERVER_UDP_PAYLOAD, 0)
    );
    assert_eq!(response.answers.len(), 1);

    edns.set_version(1);
    with_edns.set_edns(edns);
    check_message(&index, &with_edns, "BADVERS");

    let plain = answer(&index, &query("web.default.svc.cluster.local.", A));
    assert!(plain.edns.is_none(), "no OPT without one in the query");
}

#[test]
fn multi_record_answers_rotate_with_the_query_id() {
    let index = index();
    let mut second = query("db.default.svc.cluster.local.", A);
    second.metadata.id = 1;
    check_message(
        &index,
        &second,
        "NOERROR aa
         an: db.default.svc.cluster.local. 5 IN A 10.244.2.7
         an: db.default.svc.cluster.local. 5 IN A 10.244.1.5",
    );
}

#[test]
fn unusable_objects_are_skipped_with_a_reason() {
    let skipped = index().skipped().join("\n");
    assert!(skipped.contains("default/bad_name"), "{skipped}");
    assert!(
        skipped.contains("default/pending: it has no ClusterIP"),
        "{skipped}"
    );
}

#[test]
fn the_cluster_domain_is_configurable_and_validated() {
    let domain = ClusterDomain::new("Corp.Example.").expect("a valid domain");
    assert_eq!(domain.name().to_ascii(), "corp.example.");
    let index = Index::build(&fixture::cluster_view(), &domain, 1);
    let response = answer(&index, &query("web.default.svc.corp.example.", A));
    assert_eq!(response.answers.len(), 1);
    let response = answer(&index, &query("web.default.svc.cluster.local.", A));
    assert_eq!(response.response_code, ResponseCode::Refused);
    assert!(ClusterDomain::new("").is_err());
    assert!(ClusterDomain::new(".").is_err());
    assert!(ClusterDomain::new("bad domain").is_err());
}

#[test]
fn an_empty_cluster_still_has_its_apex_and_version() {
    let domain = ClusterDomain::cluster_local().unwrap();
    let index = Index::empty(&domain);
    let response = answer(&index, &query("dns-version.cluster.local.", TXT));
    assert_eq!(response.answers.len(), 1);
    let response = answer(&index, &query("svc.cluster.local.", A));
    assert_eq!(
        (response.response_code, response.authorities.len()),
        (ResponseCode::NoError, 1)
    );
    let response = answer(&index, &query("web.default.svc.cluster.local.", A));
    assert_eq!(response.response_code, ResponseCode::NXDomain);
}

fn dual_index() -> Index {
    let domain = ClusterDomain::cluster_local().expect("cluster.local is valid");
    let mut view = fixture::cluster_view();
    fixture::dual_stack(&mut view);
    Index::build(&view, &domain, SERIAL)
}

fn check_dual(name: &str, rtype: RecordType, expected: &str) {
    check_message(&dual_index(), &query(name, rtype), expected);
}

const REVERSE6_NXDOMAIN: &str = "NXDOMAIN aa\nns: SOA ip6.arpa.";

#[test]
fn dual_stack_services_answer_a_and_aaaa_and_both_reverse_zones() {
    check_dual(
        "dual.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: dual.default.svc.cluster.local. 5 IN A 10.96.0.30",
    );
    check_dual(
        "dual.default.svc.cluster.local.",
        AAAA,
        "NOERROR aa
         an: dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::30",
    );
    // Each address points back at the Service, in its own reverse zone.
    check_dual(
        "30.0.96.10.in-addr.arpa.",
        PTR,
        "NOERROR aa
         an: 30.0.96.10.in-addr.arpa. 5 IN PTR dual.default.svc.cluster.local.",
    );
    let v6_reverse = "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.";
    check_dual(
        v6_reverse,
        PTR,
        &format!("NOERROR aa\nan: {v6_reverse} 5 IN PTR dual.default.svc.cluster.local."),
    );
    check_dual(
        "1.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.",
        PTR,
        REVERSE6_NXDOMAIN,
    );
    // SRV targets are the one name whatever the families.
    check_dual(
        "_http._tcp.dual.default.svc.cluster.local.",
        SRV,
        "NOERROR aa
         an: _http._tcp.dual.default.svc.cluster.local. 5 IN SRV 0 100 80 dual.default.svc.cluster.local.
         ar: dual.default.svc.cluster.local. 5 IN A 10.96.0.30
         ar: dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::30",
    );
}

#[test]
fn dual_stack_headless_services_answer_per_family_slice() {
    check_dual(
        "dual-db.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: dual-db.default.svc.cluster.local. 5 IN A 10.244.1.5",
    );
    check_dual(
        "dual-db.default.svc.cluster.local.",
        AAAA,
        "NOERROR aa
         an: dual-db.default.svc.cluster.local. 5 IN AAAA fd00:10:244:1::5
         an: dual-db.default.svc.cluster.local. 5 IN AAAA fd00:10:244:2::7",
    );
    // A hostname names the endpoint in both families.
    check_dual(
        "db-0.dual-db.default.svc.cluster.local.",
        AAAA,
        "NOERROR aa
         an: db-0.dual-db.default.svc.cluster.local. 5 IN AAAA fd00:10:244:1::5",
    );
    check_dual(
        "db-0.dual-db.default.svc.cluster.local.",
        A,
        "NOERROR aa
         an: db-0.dual-db.default.svc.cluster.local. 5 IN A 10.244.1.5",
    );
    // Without one, its address with dashes for colons.
    check_dual(
        "fd00-10-244-2--7.dual-db.default.svc.cluster.local.",
        AAAA,
        "NOERROR aa
         an: fd00-10-244-2--7.dual-db.default.svc.cluster.local. 5 IN AAAA fd00:10:244:2::7",
    );
}

#[test]
fn ipv6_pod_records() {
    check(
        "fd00-10-244-1--5.default.pod.cluster.local.",
        AAAA,
        "NOERROR aa
         an: fd00-10-244-1--5.default.pod.cluster.local. 5 IN AAAA fd00:10:244:1::5",
    );
    check("fd00-10-244-1--5.default.pod.cluster.local.", A, NODATA);
    for bad in [
        // Not the canonical spelling of the address.
        "fd00-0010-244-1--5.default.pod.cluster.local.",
        "fd00-10-244-1-0-0-0-5.default.pod.cluster.local.",
        "fd00---5.default.pod.cluster.local.",
        "fd00-10-244-1--5-.default.pod.cluster.local.",
    ] {
        check(bad, AAAA, NXDOMAIN);
    }
}
