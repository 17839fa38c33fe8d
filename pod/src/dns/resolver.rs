//! A pod's stub resolver: what glibc does with the resolv.conf the kubelet
//! writes for the pod (its `dnsPolicy` and `dnsConfig`, merged by the node:
//! `podnet_node::dnsconfig`). For `dnsPolicy: ClusterFirst`:
//!
//! ```text
//! search <ns>.svc.cluster.local svc.cluster.local cluster.local
//! nameserver 10.96.0.10
//! options ndots:5
//! ```
//!
//! A name ending with `.` is absolute and asked as is. Otherwise, if it has
//! fewer than `ndots` dots, each search suffix is tried first and the name
//! as is last; with `ndots` dots or more, as is first. The search goes on
//! after NXDOMAIN, NODATA, SERVFAIL and REFUSED and stops at a timeout or a
//! network error. The final error is NODATA if any name had it (as in
//! glibc's `res_nsearch`), else SERVFAIL, else NXDOMAIN if any name had it,
//! else REFUSED: podnet's DNS refuses names outside the cluster where a
//! real cluster's upstream would say NXDOMAIN, so `nope` is unknown rather
//! than a temporary failure.
//!
//! Each query goes over UDP from an ephemeral pod port; a response counts
//! only if its id and question match the query (the source address is not
//! checked, so answers relayed through the service proxy count whatever
//! address they come from). No answer within the timeout is retried, up to
//! the attempts; a truncated (TC) answer is asked again over TCP. With
//! several nameservers each try goes to them in file order, as glibc's
//! `res_send`: one that times out, cannot be reached, or answers SERVFAIL,
//! NOTIMP or REFUSED passes the query on to the next. No nameserver at all
//! means 127.0.0.1 (glibc's rule); IPv6 nameservers are written in the file
//! but never asked, since pods are IPv4.
//!
//! `options` are read as glibc reads them: `ndots:N` (at most 15, default
//! 1), `timeout:N` (seconds, 1 to 30), `attempts:N` (at most 5, default 2);
//! others are kept in the file and change nothing. Without `timeout:` the
//! timeout is [`TIMEOUT`], 2 s instead of glibc's 5 s so that a broken
//! cluster DNS fails an `exec` within seconds rather than half a minute;
//! the file then says `timeout:2`, so it states what lookups use.
//!
//! The hosts file comes first, as the kubelet writes it ([`HostsFile`]):
//! `localhost` and the pod's own name resolve without a query, and so do IP
//! literals. [`ResolverConfig::resolv_conf`] and [`HostsFile::render`] are
//! the text of the pod's /etc/resolv.conf and /etc/hosts, made from the same
//! values the lookups use.
//!
//! Deliberately not here: a cache (glibc has none), IPv6 lookups for
//! connecting (pods are IPv4), `options rotate` and the other options that
//! change how glibc sends (`edns0`, `single-request`, ...).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::ProtoError;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use podnet_proto::model::network::{CLUSTER_DOMAIN, KUBE_DNS_IP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::netns::NetNs;

/// Where a ClusterFirst pod's resolv.conf points: the kube-dns Service.
pub const NAMESERVER: SocketAddrV4 = SocketAddrV4::new(KUBE_DNS_IP, 53);
/// `options ndots:5`, the kubelet's value.
pub const NDOTS: usize = 5;
/// Time to wait for each try when resolv.conf sets no `timeout:`.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Tries per name over UDP (glibc's default).
pub const ATTEMPTS: u32 = 2;
/// glibc's `MAXNS`: nameservers past the third are ignored.
pub const MAX_NAMESERVERS: usize = 3;
/// CNAME records followed inside one answer.
const MAX_CNAME_HOPS: usize = 8;
/// The UDP payload dig advertises with EDNS.
const EDNS_PAYLOAD: u16 = 1232;
/// glibc's defaults for `options ndots:`, `timeout:` and `attempts:`; a
/// resolv.conf states the options only where they differ.
const GLIBC_NDOTS: usize = 1;
const GLIBC_TIMEOUT: Duration = Duration::from_secs(5);
const GLIBC_ATTEMPTS: u32 = 2;
/// glibc's caps: `RES_MAXNDOTS`, `RES_MAXRETRANS`, `RES_MAXRETRY`.
const MAX_NDOTS: usize = 15;
const MAX_TIMEOUT_SECS: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;
/// The first line of the hosts file the kubelet manages.
const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.";

/// The resolv.conf of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// In file order (port 53 but in tests, which resolv.conf cannot say).
    pub nameservers: Vec<SocketAddr>,
    /// Search suffixes, as written (a trailing dot is allowed).
    pub search: Vec<String>,
    /// The `options` line as the kubelet gave it; `ndots`, `timeout` and
    /// `attempts` are written with the values below.
    pub options: Vec<String>,
    pub ndots: usize,
    pub timeout: Duration,
    pub attempts: u32,
}

impl ResolverConfig {
    /// The resolver of a resolv.conf with these lines, its options read
    /// as glibc reads them (the last of a name wins).
    pub fn new(nameservers: Vec<SocketAddr>, search: Vec<String>, options: Vec<String>) -> Self {
        let mut config = ResolverConfig {
            nameservers,
            search,
            options: Vec::new(),
            ndots: GLIBC_NDOTS,
            timeout: TIMEOUT,
            attempts: GLIBC_ATTEMPTS,
        };
        for option in &options {
            let (name, value) = option.split_once(':').unwrap_or((option, ""));
            match name {
                "ndots" => config.ndots = leading_number(value).min(MAX_NDOTS as u64) as usize,
                "timeout" => {
                    config.timeout =
                        Duration::from_secs(leading_number(value).clamp(1, MAX_TIMEOUT_SECS));
                }
                "attempts" => {
                    config.attempts = leading_number(value).min(u64::from(MAX_ATTEMPTS)) as u32;
                }
                _ => {}
            }
        }
        config.options = options;
        config
    }

    /// The resolv.conf the kubelet writes for a pod in `namespace` with
    /// `dnsPolicy: ClusterFirst` on a node whose own resolv.conf has no
    /// search line. An empty namespace (a standalone namespace in tests)
    /// has no `<ns>.svc` suffix.
    pub fn cluster_first(namespace: &str) -> ResolverConfig {
        let mut search = Vec::with_capacity(3);
        if !namespace.is_empty() {
            search.push(format!("{namespace}.svc.{CLUSTER_DOMAIN}"));
        }
        search.push(format!("svc.{CLUSTER_DOMAIN}"));
        search.push(CLUSTER_DOMAIN.to_owned());
        ResolverConfig::new(
            vec![SocketAddr::V4(NAMESERVER)],
            search,
            vec![format!("ndots:{NDOTS}")],
        )
    }

    /// The configuration of the pod owning `ns`.
    pub fn for_pod(ns: &NetNs) -> ResolverConfig {
        ns.resolver().clone()
    }

    /// The servers a query goes to, in order: the nameservers (at most
    /// [`MAX_NAMESERVERS`] lines count; an IPv6 one is asked from the
    /// pod's IPv6 address, and a pod without one cannot reach it), or
    /// 127.0.0.1 when the file lists none.
    pub fn servers(&self) -> Vec<SocketAddr> {
        if self.nameservers.is_empty() {
            return vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 53))];
        }
        self.nameservers
            .iter()
            .take(MAX_NAMESERVERS)
            .copied()
            .collect()
    }

    /// The text of /etc/resolv.conf with this configuration, in the order
    /// the container runtime writes the kubelet's DNS config: `search`,
    /// `nameserver`, `options`. `ndots`, `timeout` and `attempts` are
    /// written where an option names them or where they differ from
    /// glibc's defaults, which is what the resolver would read back from
    /// the file.
    pub fn resolv_conf(&self) -> String {
        let mut text = String::new();
        if !self.search.is_empty() {
            text.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {}\n", server.ip()));
        }
        let ndots = format!("ndots:{}", self.ndots);
        // resolv.conf takes whole seconds.
        let timeout = format!("timeout:{}", self.timeout.as_secs().max(1));
        let attempts = format!("attempts:{}", self.attempts);
        let mut stated = [false; 3];
        let mut options: Vec<String> = self
            .options
            .iter()
            .map(|option| {
                let name = option.split_once(':').map_or(option.as_str(), |(n, _)| n);
                match name {
                    "ndots" => {
                        stated[0] = true;
                        ndots.clone()
                    }
                    "timeout" => {
                        stated[1] = true;
                        timeout.clone()
                    }
                    "attempts" => {
                        stated[2] = true;
                        attempts.clone()
                    }
                    _ => option.clone(),
                }
            })
            .collect();
        if !stated[0] && self.ndots != GLIBC_NDOTS {
            options.push(ndots);
        }
        if !stated[1] && self.timeout != GLIBC_TIMEOUT {
            options.push(timeout);
        }
        if !stated[2] && self.attempts != GLIBC_ATTEMPTS {
            options.push(attempts);
        }
        if !options.is_empty() {
            text.push_str(&format!("options {}\n", options.join(" ")));
        }
        text
    }

    /// The absolute names tried for `name`, in order. A search suffix of
    /// `.` (the root) adds nothing to the name as is.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if name.ends_with('.') {
            return vec![name.to_owned()];
        }
        let as_is = format!("{name}.");
        let searched = self
            .search
            .iter()
            .map(|suffix| suffix.trim_matches('.'))
            .filter(|suffix| !suffix.is_empty())
            .map(|suffix| format!("{name}.{suffix}."));
        let mut names: Vec<String> = if name.matches('.').count() >= self.ndots {
            std::iter::once(as_is).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(as_is)).collect()
        };
        // A search suffix listed twice (or as `a.` and `a`) is asked once.
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.to_ascii_lowercase()));
        names
    }
}

/// glibc reads option values with `atoi`: the leading digits, 0 without.
fn leading_number(value: &str) -> u64 {
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return 0;
    }
    // Every digit: only an overflow fails, and glibc caps what it reads.
    digits.parse().unwrap_or(u64::MAX)
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("invalid host name {name:?}")]
    InvalidName {
        name: String,
        #[source]
        source: ProtoError,
    },
    #[error("{name}: no such host (NXDOMAIN)")]
    NxDomain { name: String },
    #[error("{name}: the name exists but has no {rtype} record")]
    NoData { name: String, rtype: RecordType },
    #[error(
        "no answer from the DNS server {server} ({attempts} tries, {} s each)",
        timeout.as_secs_f64()
    )]
    Timeout {
        server: SocketAddr,
        attempts: u32,
        timeout: Duration,
    },
    #[error("the DNS server {server} refused the query for {name}")]
    Refused { name: String, server: SocketAddr },
    #[error("the DNS server {server} could not answer for {name} ({rcode})")]
    ServFail {
        name: String,
        server: SocketAddr,
        rcode: ResponseCode,
    },
    #[error("cannot reach the DNS server {server}")]
    Network {
        server: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the DNS server {server} sent a malformed response")]
    Malformed { server: SocketAddr },
    #[error("no IPv4 nameserver in /etc/resolv.conf (pods are IPv4)")]
    NoNameserver,
}

impl ResolveError {
    /// What `getaddrinfo`'s `gai_strerror` says for this failure, which is
    /// what ping, nc and friends print.
    pub fn gai_message(&self) -> &'static str {
        match self {
            ResolveError::InvalidName { .. }
            | ResolveError::NxDomain { .. }
            | ResolveError::NoData { .. } => "Name or service not known",
            ResolveError::Timeout { .. }
            | ResolveError::Refused { .. }
            | ResolveError::ServFail { .. }
            | ResolveError::Network { .. }
            | ResolveError::Malformed { .. }
            | ResolveError::NoNameserver => "Temporary failure in name resolution",
        }
    }
}

/// A successful lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// The absolute name that answered (after the search list).
    pub name: Name,
    /// Where the CNAME chain in the answer ended (`name` without one).
    pub canonical: Name,
    /// The records of the asked type at `canonical`.
    pub records: Vec<Record>,
    /// The whole response.
    pub response: Message,
}

/// How a query went over the wire.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub response: Message,
    /// Its size in bytes.
    pub size: usize,
    /// Answered over TCP (asked so, or after a truncated UDP answer).
    pub tcp: bool,
    /// A UDP answer came back truncated before the TCP retry.
    pub truncated_udp: bool,
}

/// Transport settings of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeOptions {
    pub timeout: Duration,
    pub attempts: u32,
    /// Skip UDP and ask over TCP.
    pub tcp: bool,
}

impl From<&ResolverConfig> for ExchangeOptions {
    fn from(config: &ResolverConfig) -> ExchangeOptions {
        ExchangeOptions {
            timeout: config.timeout,
            attempts: config.attempts,
            tcp: false,
        }
    }
}

/// Looks up `name` (through the search list) for records of `rtype`, with
/// the resolv.conf of the pod owning `ns`.
pub async fn lookup(
    ns: &Arc<NetNs>,
    name: &str,
    rtype: RecordType,
) -> Result<Lookup, ResolveError> {
    lookup_with(ns, &ResolverConfig::for_pod(ns), name, rtype).await
}

/// [`lookup`] with an explicit configuration.
pub async fn lookup_with(
    ns: &Arc<NetNs>,
    config: &ResolverConfig,
    name: &str,
    rtype: RecordType,
) -> Result<Lookup, ResolveError> {
    if name.is_empty() || name.starts_with('.') || name.contains("..") {
        return Err(invalid(name, "empty label".into()));
    }
    let servers = config.servers();
    if servers.is_empty() {
        return Err(ResolveError::NoNameserver);
    }
    let mut server = servers[0];
    let mut no_data = false;
    let mut nx_domain = false;
    let mut refused = false;
    let mut failure: Option<ResolveError> = None;
    for candidate in config.candidates(name) {
        let qname = Name::from_ascii(&candidate).map_err(|source| ResolveError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        let query = new_query(qname.clone(), rtype, false);
        let (answered_by, exchange) = exchange_servers(ns, &servers, &query, config.into()).await?;
        server = answered_by;
        let response = exchange.response;
        match response.response_code {
            ResponseCode::NoError => {
                let (canonical, records) = follow(&response, &qname, rtype);
                if !records.is_empty() {
                    return Ok(Lookup {
                        name: qname,
                        canonical,
                        records,
                        response,
                    });
                }
                no_data = true;
            }
            ResponseCode::NXDomain => nx_domain = true,
            ResponseCode::Refused => refused = true,
            rcode => {
                failure.get_or_insert(ResolveError::ServFail {
                    name: name.to_owned(),
                    server,
                    rcode,
                });
            }
        }
    }
    if no_data {
        return Err(ResolveError::NoData {
            name: name.to_owned(),
            rtype,
        });
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    // REFUSED only says "not my zone": where a search name got NXDOMAIN,
    // the name as is would have got one from the upstream a real cluster
    // forwards to, so a mistyped Service reads as unknown, not as a
    // temporary failure.
    if refused && !nx_domain {
        return Err(ResolveError::Refused {
            name: name.to_owned(),
            server,
        });
    }
    Err(ResolveError::NxDomain {
        name: name.to_owned(),
    })
}

/// The IPv4 addresses of `host` as `getaddrinfo` would return them in the
/// pod owning `ns`: hosts file first, then cluster DNS.
pub async fn resolve_ipv4(ns: &Arc<NetNs>, host: &str) -> Result<Vec<Ipv4Addr>, ResolveError> {
    resolve_ipv4_with(ns, &ResolverConfig::for_pod(ns), host).await
}

/// [`resolve_ipv4`] with an explicit configuration.
pub async fn resolve_ipv4_with(
    ns: &Arc<NetNs>,
    config: &ResolverConfig,
    host: &str,
) -> Result<Vec<Ipv4Addr>, ResolveError> {
    if let Some(ip) = hosts_file(ns, host) {
        return Ok(vec![ip]);
    }
    let lookup = lookup_with(ns, config, host, RecordType::A).await?;
    Ok(lookup
        .records
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

/// What resolves without a query: IP literals (which never reach a
/// resolver) and the entries of the pod's hosts file.
fn hosts_file(ns: &NetNs, host: &str) -> Option<Ipv4Addr> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Some(ip);
    }
    HostsFile::for_pod(ns).lookup_ipv4(name)
}

/// The /etc/hosts the kubelet writes for a pod on the pod network
/// (`managedHostsFileContent` in the kubelet): the header, the localhost
/// lines, and the pod's IP with its host name. Host aliases and
/// `subdomain` are not modelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsFile {
    /// Address (as written) and its names, in file order.
    entries: Vec<(String, Vec<String>)>,
}

impl HostsFile {
    /// The hosts file of a pod with address `ip` and host name `hostname`;
    /// an empty host name (a standalone namespace) has no own entry. A
    /// dual-stack pod has a line per address, as the kubelet writes one
    /// per pod IP.
    pub fn kubelet(ips: &[IpAddr], hostname: &str) -> HostsFile {
        let entry = |address: &str, names: &[&str]| {
            (
                address.to_owned(),
                names.iter().map(|n| (*n).to_owned()).collect(),
            )
        };
        let mut entries = vec![
            entry("127.0.0.1", &["localhost"]),
            entry("::1", &["localhost", "ip6-localhost", "ip6-loopback"]),
            entry("fe00::0", &["ip6-localnet"]),
            entry("fe00::0", &["ip6-mcastprefix"]),
            entry("fe00::1", &["ip6-allnodes"]),
            entry("fe00::2", &["ip6-allrouters"]),
        ];
        if !hostname.is_empty() {
            for ip in ips {
                entries.push(entry(&ip.to_string(), &[hostname]));
            }
        }
        HostsFile { entries }
    }

    /// The hosts file of the pod owning `ns`: its host name is the pod's name.
    pub fn for_pod(ns: &NetNs) -> HostsFile {
        let ips: Vec<IpAddr> = ns.addresses().collect();
        HostsFile::kubelet(&ips, &ns.info().name)
    }

    /// The first IPv4 address listed for `name` (compared
    /// case-insensitively, as glibc does).
    pub fn lookup_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        self.addresses_of(name).find_map(|ip| match ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
    }

    /// The first IPv6 address listed for `name`.
    pub fn lookup_ipv6(&self, name: &str) -> Option<Ipv6Addr> {
        self.addresses_of(name).find_map(|ip| match ip {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        })
    }

    /// Every address listed for `name`, in file order.
    fn addresses_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = IpAddr> + 'a {
        self.entries.iter().filter_map(move |(address, names)| {
            let ip = address.parse::<IpAddr>().ok()?;
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
                .then_some(ip)
        })
    }

    /// The file's text: the kubelet's header, then `ADDRESS<TAB>NAMES`.
    pub fn render(&self) -> String {
        let mut text = format!("{MANAGED_HOSTS_HEADER}\n");
        for (address, names) in &self.entries {
            text.push_str(&format!("{address}\t{}\n", names.join(" ")));
        }
        text
    }
}

/// A query for `name`/`rtype` with a random id and RD set, as stub
/// resolvers send; `edns` adds an OPT record as dig does.
pub fn new_query(name: Name, rtype: RecordType, edns: bool) -> Message {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    let mut question = Query::query(name, rtype);
    question.set_query_class(DNSClass::IN);
    query.add_query(question);
    if edns {
        let mut opt = Edns::new();
        opt.set_max_payload(EDNS_PAYLOAD);
        query.set_edns(opt);
    }
    query
}

/// Sends `query` to the resolv.conf's `servers` in order, as glibc's
/// `res_send`, and returns the response that ends the search with the
/// server that sent it. A single server gets every attempt at once (one
/// socket, so a late answer to an earlier try still counts). With several,
/// each attempt asks them in turn, one try each; a server that times out,
/// cannot be reached, or answers SERVFAIL, NOTIMP or REFUSED passes the
/// query on. When a whole round got only such answers (no timeout), the
/// next round would get the same, so the last of them is returned.
pub async fn exchange_servers(
    ns: &Arc<NetNs>,
    servers: &[SocketAddr],
    query: &Message,
    options: ExchangeOptions,
) -> Result<(SocketAddr, Exchange), ResolveError> {
    let Some(first) = servers.first() else {
        return Err(ResolveError::NoNameserver);
    };
    if servers.len() == 1 {
        return Ok((*first, exchange(ns, *first, query, options).await?));
    }
    let one_try = ExchangeOptions {
        attempts: 1,
        ..options
    };
    let mut error_answer: Option<(SocketAddr, Exchange)> = None;
    let mut failure: Option<ResolveError> = None;
    for _ in 0..options.attempts.max(1) {
        let mut all_answered = true;
        for server in servers {
            match exchange(ns, *server, query, one_try).await {
                Ok(answer) => match answer.response.response_code {
                    ResponseCode::ServFail | ResponseCode::NotImp | ResponseCode::Refused => {
                        error_answer = Some((*server, answer));
                    }
                    _ => return Ok((*server, answer)),
                },
                Err(error) => {
                    all_answered = false;
                    failure = Some(error);
                }
            }
        }
        if all_answered {
            break;
        }
    }
    if let Some(answer) = error_answer {
        return Ok(answer);
    }
    Err(match failure {
        Some(ResolveError::Timeout {
            server, timeout, ..
        }) => ResolveError::Timeout {
            server,
            attempts: options.attempts.max(1),
            timeout,
        },
        Some(other) => other,
        None => ResolveError::NoNameserver,
    })
}

/// Sends `query` to `server` from `ns` and returns the matching response,
/// whatever its response code: over UDP with retries, then over TCP if the
/// UDP answer was truncated (or straight over TCP if asked).
pub async fn exchange(
    ns: &Arc<NetNs>,
    server: SocketAddr,
    query: &Message,
    options: ExchangeOptions,
) -> Result<Exchange, ResolveError> {
    let bytes = query.to_vec().map_err(|source| ResolveError::InvalidName {
        name: query
            .queries
            .first()
            .map(|q| q.name().to_ascii())
            .unwrap_or_default(),
        source,
    })?;
    let mut truncated_udp = false;
    if !options.tcp {
        let (response, size) = exchange_udp(ns, server, query, &bytes, options).await?;
        if !response.truncation {
            return Ok(Exchange {
                response,
                size,
                tcp: false,
                truncated_udp,
            });
        }
        truncated_udp = true;
    }
    let (response, size) = exchange_tcp(ns, server, query, &bytes, options).await?;
    Ok(Exchange {
        response,
        size,
        tcp: true,
        truncated_udp,
    })
}

async fn exchange_udp(
    ns: &Arc<NetNs>,
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
    options: ExchangeOptions,
) -> Result<(Message, usize), ResolveError> {
    let network = |source| ResolveError::Network { server, source };
    let socket = ns.bind_udp(0).map_err(network)?;
    for _ in 0..options.attempts.max(1) {
        socket.send_to(bytes, server).await.map_err(network)?;
        let deadline = Instant::now() + options.timeout;
        loop {
            let (datagram, _from) =
                match tokio::time::timeout_at(deadline, socket.recv_from()).await {
                    Err(_) => break,
                    Ok(received) => received.map_err(network)?,
                };
            // Garbage and answers to other queries are ignored, as glibc
            // does: only a matching response ends the wait.
            if let Ok(response) = Message::from_vec(&datagram)
                && answers(query, &response)
            {
                return Ok((response, datagram.len()));
            }
        }
    }
    Err(ResolveError::Timeout {
        server,
        attempts: options.attempts.max(1),
        timeout: options.timeout,
    })
}

async fn exchange_tcp(
    ns: &Arc<NetNs>,
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
    options: ExchangeOptions,
) -> Result<(Message, usize), ResolveError> {
    let timeout = ResolveError::Timeout {
        server,
        attempts: 1,
        timeout: options.timeout,
    };
    let network = |source| ResolveError::Network { server, source };
    let length = u16::try_from(bytes.len()).map_err(|_| ResolveError::Malformed { server })?;
    let exchange = async {
        let mut stream = ns.connect_tcp(server).await.map_err(network)?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await.map_err(network)?;
        stream.flush().await.map_err(network)?;
        // Read messages until the one answering ours; a server may answer
        // several pipelined queries, though we send only one.
        loop {
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).await.map_err(network)?;
            let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut message).await.map_err(network)?;
            let response =
                Message::from_vec(&message).map_err(|_| ResolveError::Malformed { server })?;
            if answers(query, &response) {
                return Ok((response, message.len()));
            }
        }
    };
    tokio::time::timeout(options.timeout, exchange)
        .await
        .unwrap_or(Err(timeout))
}

/// Does `response` answer `query`? Same id, a response, and the same
/// question (names compared case-insensitively). A server that could not
/// parse the query may answer an error without the question.
fn answers(query: &Message, response: &Message) -> bool {
    if response.id != query.id || response.message_type != MessageType::Response {
        return false;
    }
    if response.queries.is_empty() {
        return response.response_code != ResponseCode::NoError;
    }
    response.queries.len() == query.queries.len()
        && response.queries.iter().zip(&query.queries).all(|(a, b)| {
            a.name() == b.name()
                && a.query_type() == b.query_type()
                && a.query_class() == b.query_class()
        })
}

/// Follows the CNAME chain from `name` through the answer section and
/// returns where it ends and the records of `rtype` found there.
pub fn follow(response: &Message, name: &Name, rtype: RecordType) -> (Name, Vec<Record>) {
    let mut current = name.clone();
    for _ in 0..=MAX_CNAME_HOPS {
        let found: Vec<Record> = response
            .answers
            .iter()
            .filter(|r| r.name == current && (rtype == RecordType::ANY || r.record_type() == rtype))
            .cloned()
            .collect();
        if !found.is_empty() || rtype == RecordType::CNAME {
            return (current, found);
        }
        let next = response.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == current => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) => current = target,
            None => break,
        }
    }
    (current, Vec::new())
}

fn invalid(name: &str, reason: String) -> ResolveError {
    ResolveError::InvalidName {
        name: name.to_owned(),
        source: ProtoError::from(reason),
    }
}

#[cfg(test)]
mod tests;
