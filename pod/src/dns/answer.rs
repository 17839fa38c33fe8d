//! The cluster zone and the answer to one DNS query, as pure functions.
//!
//! [`Index::build`] turns a [`ClusterView`] into the records of the
//! Kubernetes DNS-Based Service Discovery specification (kubernetes/dns
//! `docs/specification.md`, schema 1.1.0):
//!
//! - a Service with a ClusterIP: `A`/`AAAA` `<svc>.<ns>.svc.<zone>`, one
//!   `SRV` `_<port>._<proto>.<svc>.<ns>.svc.<zone>` per named port, and `PTR`
//!   for each ClusterIP;
//! - a headless Service (`clusterIP: None`): one `A`/`AAAA` per ready
//!   endpoint address, `<hostname>.<svc>.<ns>.svc.<zone>` per ready endpoint
//!   (its `hostname`, else its address with dashes, `10-244-1-5`, as
//!   CoreDNS does), `SRV` per (named EndpointSlice port × ready endpoint)
//!   and `PTR` per ready endpoint address. With no ready endpoint the
//!   Service's name does not exist (NXDOMAIN, spec 2.4.1);
//! - an ExternalName Service: `CNAME` to `spec.externalName`;
//! - `dns-version.<zone>` `TXT "1.1.0"` (spec 2.2) and the deprecated but
//!   still required pod records `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` (spec 2.6,
//!   CoreDNS's `pods insecure`: any well-formed address answers).
//!
//! [`answer`] is authoritative for the cluster zone and, like CoreDNS's
//! default `kubernetes cluster.local in-addr.arpa ip6.arpa`, for the whole
//! reverse zones. It distinguishes NXDOMAIN (the name does not exist) from
//! NODATA (NOERROR, empty answer, the zone's SOA in the authority section:
//! the name exists, possibly as an empty non-terminal such as
//! `default.svc.cluster.local`, but has no record of the asked type) and
//! follows CNAMEs that stay inside its zones. [`resolve`] says what needs
//! an upstream: a name outside the zones is forwarded whole
//! ([`Resolution::Forward`]), and an A or AAAA query whose CNAME chain
//! leaves the zones (an ExternalName Service pointing outside) is answered
//! with the CNAME and the upstream's records for its target
//! ([`Resolution::Chase`]), as CoreDNS's kubernetes plugin looks the target
//! up through the server's own forwarding. [`answer`] is the same without
//! an upstream: REFUSED outside the zones, the CNAME alone for a chain that
//! leaves them.
//!
//! Every record has a TTL of [`TTL`] (5 s, the CoreDNS kubernetes plugin's
//! default), the SOA's negative-caching minimum included. A multi-record
//! answer is rotated by the query id, which spreads clients over the records
//! like CoreDNS's `loadbalance` plugin while keeping `answer` a function of
//! its inputs.
//!
//! Deliberately not here: wildcard queries, pod records checked against real
//! pods (`pods verified`), `<hostname>.<subdomain>` records for pods without
//! a headless Service, zone transfers (REFUSED), DNSSEC.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::domain::Label;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use podnet_proto::model::network::CLUSTER_DOMAIN;
use podnet_proto::model::str_at;
use podnet_proto::model::view::{EndpointSliceView, ServiceView};
use serde_json::Value;

use crate::cluster::ClusterView;

/// TTL of every record, in seconds: the CoreDNS kubernetes plugin's default.
pub const TTL: u32 = 5;
/// The schema version `dns-version.<zone>` announces.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// The UDP payload this server accepts and advertises with EDNS: 1232 bytes,
/// the DNS Flag Day 2020 value (and CoreDNS's `bufsize` default), small
/// enough never to fragment.
pub const SERVER_UDP_PAYLOAD: u16 = 1232;
/// The reverse zones answered besides the cluster zone.
/// Does the kubernetes plugin chase a CNAME that leaves the zones for this
/// type? Only for address queries (its `A` and `AAAA` lookups do).
pub fn chased(qtype: RecordType) -> bool {
    matches!(qtype, RecordType::A | RecordType::AAAA)
}

const REVERSE_ZONES: [&str; 2] = ["in-addr.arpa.", "ip6.arpa."];
/// CNAMEs followed inside the zones before giving up with SERVFAIL (a loop
/// of ExternalName Services pointing at each other).
const MAX_CNAME_CHAIN: usize = 8;
/// SOA timers, as CoreDNS sets them; they matter only to secondaries, which
/// podnet has none of.
const SOA_REFRESH: i32 = 7200;
const SOA_RETRY: i32 = 1800;
const SOA_EXPIRE: i32 = 86400;
/// The EndpointSlice label naming the owning Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("invalid cluster domain {domain:?}: expected a DNS name such as cluster.local")]
    InvalidDomain {
        domain: String,
        #[source]
        source: ProtoError,
    },
    #[error("invalid cluster domain {domain:?}: the root cannot be the cluster zone")]
    RootDomain { domain: String },
}

/// The cluster zone's apex (`cluster.local.`), validated once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDomain(Name);

impl ClusterDomain {
    /// Parses a cluster domain such as `cluster.local` (a trailing dot is
    /// optional). Names are kept lowercase: every comparison is
    /// case-insensitive, and answers show the canonical spelling.
    pub fn new(domain: &str) -> Result<ClusterDomain, ZoneError> {
        let trimmed = domain.trim().trim_end_matches('.');
        if trimmed.is_empty() {
            return Err(ZoneError::RootDomain {
                domain: domain.to_owned(),
            });
        }
        let mut name = Name::from_ascii(trimmed)
            .map_err(|source| ZoneError::InvalidDomain {
                domain: domain.to_owned(),
                source,
            })?
            .to_lowercase();
        name.set_fqdn(true);
        Ok(ClusterDomain(name))
    }

    /// The default, `cluster.local`.
    pub fn cluster_local() -> Result<ClusterDomain, ZoneError> {
        ClusterDomain::new(CLUSTER_DOMAIN)
    }

    pub fn name(&self) -> &Name {
        &self.0
    }
}

/// The records at one owner name. A node with no records is an empty
/// non-terminal: it exists because a name below it does.
#[derive(Debug, Clone, Default)]
struct Node {
    records: Vec<RData>,
}

impl Node {
    fn add(&mut self, rdata: RData) {
        // A Service listed in two EndpointSlices (dual-stack, or during a
        // slice rotation) must not answer the same record twice.
        if !self.records.contains(&rdata) {
            self.records.push(rdata);
        }
    }

    fn cname(&self) -> Option<&Name> {
        self.records.iter().find_map(|r| match r {
            RData::CNAME(CNAME(target)) => Some(target),
            _ => None,
        })
    }
}

/// Everything the server answers from, built once per view change.
#[derive(Debug, Clone)]
pub struct Index {
    domain: ClusterDomain,
    /// Zone apexes: the cluster zone first, then the reverse zones.
    apexes: Vec<Name>,
    /// `pod.<zone>`, under which names are computed rather than stored.
    pod_zone: Name,
    serial: u32,
    nodes: HashMap<Name, Node>,
    skipped: Vec<String>,
}

impl Index {
    /// The zone of `view`. `serial` is the SOA serial (the server uses the
    /// build time, as CoreDNS does, so it grows with every change). Objects
    /// that cannot be served (a name that is no DNS label, an unparsable
    /// address) are left out and listed in [`Index::skipped`].
    pub fn build(view: &ClusterView, domain: &ClusterDomain, serial: u32) -> Index {
        let zone = domain.name().clone();
        let mut apexes = vec![zone.clone()];
        apexes.extend(
            REVERSE_ZONES
                .iter()
                .filter_map(|z| Name::from_ascii(z).ok()),
        );
        let mut builder = Builder {
            index: Index {
                domain: domain.clone(),
                pod_zone: child(&zone, "pod").unwrap_or_else(|_| zone.clone()),
                apexes,
                serial,
                nodes: HashMap::new(),
                skipped: Vec::new(),
            },
        };
        builder.apexes();
        builder.services(view);
        builder.index
    }

    /// An index with no Services: only the apexes, `dns-version` and pod
    /// records.
    pub fn empty(domain: &ClusterDomain) -> Index {
        Index::build(&ClusterView::default(), domain, 0)
    }

    pub fn domain(&self) -> &ClusterDomain {
        &self.domain
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The addresses of the zone's nameserver, `ns.dns.<zone>` (the
    /// ClusterIPs of `kube-system/kube-dns`): forwarding to them would
    /// loop back here.
    pub fn nameserver_ips(&self) -> Vec<IpAddr> {
        let zone = self.domain.name();
        let Ok(host) = child(zone, "dns").and_then(|dns| child(&dns, "ns")) else {
            return Vec::new();
        };
        self.nodes.get(&host).map_or_else(Vec::new, |node| {
            node.records
                .iter()
                .filter_map(|r| match r {
                    RData::A(A(ip)) => Some(IpAddr::V4(*ip)),
                    RData::AAAA(AAAA(ip)) => Some(IpAddr::V6(*ip)),
                    _ => None,
                })
                .collect()
        })
    }

    /// Objects of the view that could not be turned into records, with why.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The apex of the zone `name` belongs to, if it is one of ours.
    fn apex_of(&self, name: &Name) -> Option<&Name> {
        self.apexes.iter().find(|apex| apex.zone_of(name))
    }

    /// The node at `name`: stored, or computed for pod names.
    fn node(&self, name: &Name) -> Option<Cow<'_, Node>> {
        if let Some(node) = self.nodes.get(name) {
            return Some(Cow::Borrowed(node));
        }
        self.pod_node(name).map(Cow::Owned)
    }

    /// `<ns>.pod.<zone>` exists (it has descendants) and
    /// `<a>-<b>-<c>-<d>.<ns>.pod.<zone>` has the A record of its address.
    fn pod_node(&self, name: &Name) -> Option<Node> {
        if !self.pod_zone.zone_of(name) {
            return None;
        }
        let below = name
            .iter()
            .count()
            .checked_sub(self.pod_zone.iter().count())?;
        match below {
            1 => Some(Node::default()),
            2 => {
                let label = name.iter().next()?;
                let ip = parse_dashed(label)?;
                Some(Node {
                    records: vec![address(ip)],
                })
            }
            _ => None,
        }
    }

    fn soa(&self, apex: &Name) -> Record {
        let zone = self.domain.name();
        let mname = child(zone, "dns")
            .and_then(|dns| child(&dns, "ns"))
            .unwrap_or_else(|_| zone.clone());
        let rname = child(zone, "hostmaster").unwrap_or_else(|_| zone.clone());
        let soa = SOA::new(
            mname,
            rname,
            self.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            TTL,
        );
        Record::from_rdata(apex.clone(), TTL, RData::SOA(soa))
    }
}

struct Builder {
    index: Index,
}

impl Builder {
    fn skip(&mut self, what: String) {
        self.index.skipped.push(what);
    }

    /// Adds `rdata` at `name` and makes every name between it and its zone
    /// apex exist.
    fn add(&mut self, name: &Name, rdata: Option<RData>) {
        let node = self.index.nodes.entry(name.clone()).or_default();
        if let Some(rdata) = rdata {
            node.add(rdata);
        }
        let Some(apex) = self.index.apex_of(name).cloned() else {
            return;
        };
        let apex_labels = apex.iter().count();
        let mut parent = name.clone();
        while parent.iter().count() > apex_labels + 1 {
            parent = parent.base_name();
            self.index.nodes.entry(parent.clone()).or_default();
        }
    }

    fn apexes(&mut self) {
        let zone = self.index.domain.name().clone();
        let ns_name = child(&zone, "dns").and_then(|dns| child(&dns, "ns"));
        for apex in self.index.apexes.clone() {
            let soa = self.index.soa(&apex).data;
            self.add(&apex, Some(soa));
            if let Ok(ns_name) = &ns_name {
                self.add(&apex, Some(RData::NS(NS(ns_name.clone()))));
            }
        }
        if let Ok(version) = child(&zone, "dns-version") {
            let txt = RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_owned()]));
            self.add(&version, Some(txt));
        }
        // `svc.<zone>` and `pod.<zone>` exist even in an empty cluster.
        for ent in ["svc", "pod"] {
            if let Ok(name) = child(&zone, ent) {
                self.add(&name, None);
            }
        }
    }

    fn services(&mut self, view: &ClusterView) {
        // EndpointSlices by (namespace, service name).
        let mut slices: BTreeMap<(String, String), Vec<&Value>> = BTreeMap::new();
        for slice in view.endpoint_slices.values() {
            let namespace = str_at(slice, "/metadata/namespace").to_ascii_lowercase();
            let Some(service) = slice
                .pointer("/metadata/labels")
                .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
                .and_then(Value::as_str)
            else {
                continue;
            };
            slices
                .entry((namespace, service.to_ascii_lowercase()))
                .or_default()
                .push(slice);
        }
        for (key, service) in &view.services {
            let namespace = non_empty(str_at(service, "/metadata/namespace"))
                .or_else(|| key.split_once('/').map(|(ns, _)| ns))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let name = non_empty(str_at(service, "/metadata/name"))
                .or_else(|| key.split_once('/').map(|(_, name)| name))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let own_slices = slices
                .get(&(namespace.clone(), name.clone()))
                .map_or(&[][..], Vec::as_slice);
            if let Err(why) = self.service(&namespace, &name, service, own_slices) {
                self.skip(format!("Service {namespace}/{name}: {why}"));
            }
        }
    }

    fn service(
        &mut self,
        namespace: &str,
        name: &str,
        service: &Value,
        slices: &[&Value],
    ) -> Result<(), String> {
        for (what, label) in [("namespace", namespace), ("name", name)] {
            if !is_dns_label(label) {
                return Err(format!("its {what} {label:?} is not a DNS label"));
            }
        }
        let zone = self.index.domain.name().clone();
        let ns_name = child(&zone, "svc")
            .and_then(|svc| child(&svc, namespace))
            .map_err(|e| e.to_string())?;
        // The namespace exists as soon as it has a Service, whatever that
        // Service's records turn out to be.
        self.add(&ns_name, None);
        let fqdn = child(&ns_name, name).map_err(|e| e.to_string())?;

        let service_type = non_empty(str_at(service, "/spec/type")).unwrap_or("ClusterIP");
        if service_type == "ExternalName" {
            let external = str_at(service, "/spec/externalName");
            let target = absolute_name(external)
                .ok_or_else(|| format!("spec.externalName {external:?} is not a DNS name"))?;
            self.add(&fqdn, Some(RData::CNAME(CNAME(target))));
            return Ok(());
        }
        let view = ServiceView(service);
        if view.headless() {
            self.headless(&fqdn, service, slices);
            return Ok(());
        }
        let ips: Vec<IpAddr> = view
            .cluster_ips()
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty() {
            // No ClusterIP allocated yet: nothing to answer with.
            return Err("it has no ClusterIP yet".to_owned());
        }
        for ip in &ips {
            self.add(&fqdn, Some(address(*ip)));
            self.add(&reverse_name(*ip), Some(RData::PTR(PTR(fqdn.clone()))));
        }
        for port in service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(port_number) = port
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let protocol = non_empty(str_at(port, "/protocol")).unwrap_or("TCP");
            if let Some(owner) = srv_owner(&fqdn, str_at(port, "/name"), protocol) {
                self.add(
                    &owner,
                    Some(RData::SRV(SRV::new(0, 100, port_number, fqdn.clone()))),
                );
            }
        }
        if namespace == "kube-system" && name == "kube-dns" {
            // The glue of the zone's NS record, as CoreDNS serves it.
            if let Ok(ns_host) = child(&zone, "dns").and_then(|dns| child(&dns, "ns")) {
                for ip in &ips {
                    self.add(&ns_host, Some(address(*ip)));
                }
            }
        }
        Ok(())
    }

    /// The records of a headless Service, from the ready endpoints of its
    /// EndpointSlices. Adds nothing at all (so the name is NXDOMAIN) when
    /// no endpoint is ready.
    fn headless(&mut self, fqdn: &Name, service: &Value, slices: &[&Value]) {
        let publish_not_ready = service
            .pointer("/spec/publishNotReadyAddresses")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // (port name, protocol, port) → targets, gathered first so that
        // weights can split 100 among them as CoreDNS does.
        let mut srv: BTreeMap<(String, String, u16), Vec<Name>> = BTreeMap::new();
        for slice in slices {
            let address_type = non_empty(str_at(slice, "/addressType")).unwrap_or("IPv4");
            if address_type != "IPv4" && address_type != "IPv6" {
                // FQDN slices are deprecated and carry no address to serve.
                continue;
            }
            let ports: Vec<(&Value, u16)> = slice
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let number = p.get("port").and_then(Value::as_u64)?;
                    Some((p, u16::try_from(number).ok()?))
                })
                .collect();
            for endpoint in EndpointSliceView(slice).endpoints() {
                if !endpoint.ready() && !publish_not_ready {
                    continue;
                }
                let hostname = Some(endpoint.hostname()).filter(|h| is_dns_label(h));
                for ip in endpoint.addresses() {
                    let Ok(ip) = ip.parse::<IpAddr>() else {
                        self.skip(format!("endpoint address {ip:?} of {fqdn} is not an IP"));
                        continue;
                    };
                    let host_label = hostname.map_or_else(|| dashed(ip), str::to_ascii_lowercase);
                    let Ok(host) = child(fqdn, &host_label) else {
                        continue;
                    };
                    self.add(fqdn, Some(address(ip)));
                    self.add(&host, Some(address(ip)));
                    self.add(&reverse_name(ip), Some(RData::PTR(PTR(host.clone()))));
                    for (port, number) in &ports {
                        let name = str_at(port, "/name").to_owned();
                        let protocol = non_empty(str_at(port, "/protocol"))
                            .unwrap_or("TCP")
                            .to_owned();
                        let targets = srv.entry((name, protocol, *number)).or_default();
                        if !targets.contains(&host) {
                            targets.push(host.clone());
                        }
                    }
                }
            }
        }
        for ((name, protocol, number), targets) in srv {
            let Some(owner) = srv_owner(fqdn, &name, &protocol) else {
                continue;
            };
            let count = u16::try_from(targets.len()).unwrap_or(u16::MAX).max(1);
            let weight = (100 / count).max(1);
            for target in targets {
                self.add(
                    &owner,
                    Some(RData::SRV(SRV::new(0, weight, number, target))),
                );
            }
        }
    }
}

/// What the server does with one query.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Answered from the zones.
    Answer(Message),
    /// Outside every zone: the query goes upstream as it is.
    Forward,
    /// The CNAME chain in `response` left the zones at `target`: the
    /// upstream's records for it complete the answer.
    Chase { response: Message, target: Name },
}

impl Resolution {
    /// The answer when there is no upstream to ask.
    pub fn without_upstream(self, query: &Message) -> Message {
        match self {
            Resolution::Answer(response) | Resolution::Chase { response, .. } => response,
            Resolution::Forward => {
                let mut response = prepared(query);
                response.metadata.response_code = ResponseCode::Refused;
                response
            }
        }
    }
}

/// The answer to `query` with nothing to forward to: REFUSED outside the
/// zones. Never fails: every problem is a response code.
pub fn answer(index: &Index, query: &Message) -> Message {
    resolve(index, query).without_upstream(query)
}

/// The response skeleton: id, opcode, RD and CD echoed, the question, and
/// an OPT when the query had one.
fn prepared(query: &Message) -> Message {
    let mut response = Message::response(query.id, query.op_code);
    response.metadata.recursion_desired = query.recursion_desired;
    response.metadata.checking_disabled = query.checking_disabled;
    response.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        let mut ours = Edns::new();
        ours.set_max_payload(SERVER_UDP_PAYLOAD);
        response.set_edns(ours);
    }
    response
}

/// What to do with `query`: its answer from the zones, or what to ask
/// upstream. Never fails: every problem is a response code.
///
/// The response echoes the id, opcode, RD and CD bits and the question, has
/// RA clear (recursion is the upstream's) and AA set whenever the name is in one of
/// the index's zones. A query with EDNS gets an OPT record advertising
/// `SERVER_UDP_PAYLOAD`; one with an EDNS version above 0 gets BADVERS.
pub fn resolve(index: &Index, query: &Message) -> Resolution {
    let mut response = prepared(query);
    if query.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        response.metadata.response_code = ResponseCode::BADVERS;
        return Resolution::Answer(response);
    }
    match respond(index, query, &mut response) {
        Outcome::Code(rcode) => {
            response.metadata.response_code = rcode;
            Resolution::Answer(response)
        }
        Outcome::Forward => Resolution::Forward,
        Outcome::LeftZones(target) => {
            response.metadata.response_code = ResponseCode::NoError;
            let qtype = query.queries.first().map(|q| q.query_type());
            if qtype.is_some_and(chased) {
                Resolution::Chase { response, target }
            } else {
                Resolution::Answer(response)
            }
        }
    }
}

/// How [`respond`] ended.
enum Outcome {
    Code(ResponseCode),
    /// The name is outside the zones.
    Forward,
    /// The CNAME chain left the zones at this target.
    LeftZones(Name),
}

impl From<ResponseCode> for Outcome {
    fn from(rcode: ResponseCode) -> Outcome {
        Outcome::Code(rcode)
    }
}

fn respond(index: &Index, query: &Message, response: &mut Message) -> Outcome {
    if query.op_code != OpCode::Query {
        return ResponseCode::NotImp.into();
    }
    // RFC 9619: a query has exactly one question.
    let [question] = query.queries.as_slice() else {
        return ResponseCode::FormErr.into();
    };
    let qtype = question.query_type();
    if qtype == RecordType::OPT {
        return ResponseCode::FormErr.into();
    }
    if question.query_class() != DNSClass::IN
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
    {
        return ResponseCode::Refused.into();
    }
    let mut name = question.name().clone();
    name.set_fqdn(true);
    if index.apex_of(&name).is_none() {
        // Not ours: the upstream's to answer.
        return Outcome::Forward;
    }
    response.metadata.authoritative = true;
    // The first owner keeps the asker's spelling (0x20-randomising
    // resolvers compare it); names reached through a CNAME are canonical.
    let mut owner = question.name().clone();
    for _ in 0..=MAX_CNAME_CHAIN {
        let Some(apex) = index.apex_of(&name).cloned() else {
            // A CNAME leaving our zones: the upstream knows the rest.
            return Outcome::LeftZones(name);
        };
        let Some(node) = index.node(&name) else {
            response.add_authority(index.soa(&apex));
            return ResponseCode::NXDomain.into();
        };
        let mut matching: Vec<&RData> = node
            .records
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .collect();
        if !matching.is_empty() {
            let shift = usize::from(query.id) % matching.len();
            matching.rotate_left(shift);
            for rdata in &matching {
                response.add_answer(Record::from_rdata(owner.clone(), TTL, (*rdata).clone()));
            }
            add_targets(index, &matching, response);
            return ResponseCode::NoError.into();
        }
        let Some(target) = node.cname().cloned() else {
            response.add_authority(index.soa(&apex));
            return ResponseCode::NoError.into();
        };
        response.add_answer(Record::from_rdata(
            owner,
            TTL,
            RData::CNAME(CNAME(target.clone())),
        ));
        owner = target.clone();
        name = target;
    }
    ResponseCode::ServFail.into()
}

/// The addresses of SRV and NS targets, for the additional section.
fn add_targets(index: &Index, answers: &[&RData], response: &mut Message) {
    for rdata in answers {
        let target = match rdata {
            RData::SRV(srv) => &srv.target,
            RData::NS(NS(target)) => target,
            _ => continue,
        };
        let Some(node) = index.node(target) else {
            continue;
        };
        for record in &node.records {
            if matches!(record, RData::A(_) | RData::AAAA(_)) {
                let additional = Record::from_rdata(target.clone(), TTL, record.clone());
                if !response.additionals.contains(&additional) {
                    response.add_additional(additional);
                }
            }
        }
    }
}

/// `label.parent`.
fn child(parent: &Name, label: &str) -> Result<Name, ProtoError> {
    parent.prepend_label(Label::from_ascii(label)?)
}

/// `_<port>._<proto>.<service>` for a named port, `None` for an unnamed one
/// (which has no SRV record).
fn srv_owner(service: &Name, port_name: &str, protocol: &str) -> Option<Name> {
    let name = port_name.to_ascii_lowercase();
    let protocol = protocol.to_ascii_lowercase();
    if !is_dns_label(&name) || !is_dns_label(&protocol) {
        return None;
    }
    let proto = child(service, &format!("_{protocol}")).ok()?;
    child(&proto, &format!("_{name}")).ok()
}

fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(ip) => RData::A(A(ip)),
        IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
    }
}

fn reverse_name(ip: IpAddr) -> Name {
    let mut name = Name::from(ip);
    name.set_fqdn(true);
    name
}

/// The system-assigned hostname of an endpoint without one: its address
/// with dashes (`10-244-1-5`, `fd00--1`), as CoreDNS names them.
fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string().replace('.', "-"),
        IpAddr::V6(ip) => ip.to_string().replace(':', "-"),
    }
}

/// A pod name's address, as CoreDNS reads it: four dashed decimals are
/// IPv4 (`10-244-1-5`), anything else with dashes for colons IPv6
/// (`fd00-10-244-1--5`).
fn parse_dashed(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    if text.matches('-').count() == 3 && !text.contains("--") {
        return parse_dashed_ipv4(label).map(IpAddr::V4);
    }
    text.replace('-', ":")
        .parse::<std::net::Ipv6Addr>()
        .ok()
        // Only the canonical spelling names the address, as for IPv4.
        .filter(|ip| dashed(IpAddr::V6(*ip)) == text.to_ascii_lowercase())
        .map(IpAddr::V6)
}

fn parse_dashed_ipv4(label: &[u8]) -> Option<Ipv4Addr> {
    let text = std::str::from_utf8(label).ok()?;
    let mut octets = [0u8; 4];
    let mut parts = text.split('-');
    for octet in &mut octets {
        let part = parts.next()?;
        // Only canonical decimal: `010` is not 10, as in the address itself.
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with('0')) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// A name given in an object (`www.example.com`, with or without the
/// trailing dot) as an absolute, lowercase name.
fn absolute_name(text: &str) -> Option<Name> {
    let trimmed = text.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return None;
    }
    let mut name = Name::from_ascii(trimmed).ok()?.to_lowercase();
    name.set_fqdn(true);
    Some(name)
}

/// An RFC 1123 label as Kubernetes names are: 1 to 63 of `[a-z0-9-]`, not
/// starting or ending with `-` (any case: comparisons ignore it).
fn is_dns_label(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests;
