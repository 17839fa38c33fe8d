//! ClusterIP and NodePort allocation for Services, done inside the create,
//! update or apply that stores the Service, as the API server's Service
//! REST storage does: no Service is ever stored without its addresses, and
//! a failed allocation writes nothing.
//!
//! The IP families come first ([`init_ip_families`], upstream's
//! `initIPFamilyFields`): `ipFamilyPolicy` defaults to SingleStack (the
//! stored one on update; RequireDualStack for a headless Service without
//! selector), `ipFamilies` is inferred from the given `clusterIPs` and
//! filled with the cluster's primary family, plus the other one when the
//! policy asks for dual-stack and the cluster has both; a family the
//! cluster does not have is refused as "not configured on this cluster".
//! Then one ClusterIP per family, from that family's range.
//!
//! What is taken is derived from the stored Services themselves: there is
//! no separate bitmap to keep consistent, and deleting a Service frees its
//! addresses. The registry holds one lock from reading the Services until
//! its write is committed, so two writes cannot pick the same address.
//!
//! Picks are deterministic: the lowest free address of the range and the
//! lowest free port (upstream picks at random), so the same stored state
//! always gives the same answer. The first address of the primary range
//! belongs to the `kubernetes` Service and the tenth to `kube-dns`:
//! nothing else gets them.
//!
//! On update, what the new body leaves out is carried over from the stored
//! Service first (`patchAllocatedValues`), and fields the new type no
//! longer uses are dropped when the body did not change them
//! (`dropTypeDependentFields`), so a re-applied manifest keeps its
//! addresses and a type change does not trip over stale ones. A
//! PreferDualStack Service is neither upgraded nor downgraded by a cluster
//! that gained or lost a family; releasing a secondary address takes
//! `ipFamilyPolicy: SingleStack` (`validateUpgradeDowngradeClusterIPs`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::IpNet;
use podnet_proto::model::network::{
    ClusterFamilies, DEFAULT_SERVICE_CIDR, DEFAULT_SERVICE_CIDR_V6, IpFamily, NODE_PORT_RANGE,
    cluster_dns_ip, nth_address,
};
use podnet_proto::model::{Kind, ObjectKey, str_at, strs_at};
use serde_json::{Value, json};

use super::ApiError;
use crate::validate::service::CLUSTER_IP_NONE;
use crate::validate::{FieldError, InvalidObject};
pub(super) use families::release_secondary;
use families::{families_of, init_ip_families, upgrade_downgrade};

mod families;

/// The `kubernetes` Service: the API server's own address.
pub const API_SERVICE: (&str, &str) = ("default", "kubernetes");
/// The cluster DNS Service.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");

/// Where Service addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRanges {
    /// `--service-cluster-ip-range`: one network per family, the primary
    /// family's first.
    pub cluster_ips: Vec<IpNet>,
    /// `--service-node-port-range`, inclusive.
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ServiceRanges {
    fn default() -> ServiceRanges {
        ServiceRanges::for_families(ClusterFamilies::Ipv4)
    }
}

/// The default range of `family` (the constants are valid CIDRs, a test
/// checks it; the fallbacks are the same ranges, only to stay total).
fn default_range(family: IpFamily) -> IpNet {
    match family {
        IpFamily::V4 => {
            DEFAULT_SERVICE_CIDR
                .parse()
                .unwrap_or(IpNet::V4(ipnet::Ipv4Net::new_assert(
                    Ipv4Addr::new(10, 96, 0, 0),
                    12,
                )))
        }
        IpFamily::V6 => {
            DEFAULT_SERVICE_CIDR_V6
                .parse()
                .unwrap_or(IpNet::V6(ipnet::Ipv6Net::new_assert(
                    Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0),
                    112,
                )))
        }
    }
}

impl ServiceRanges {
    /// The default ranges of a cluster of `families`.
    pub fn for_families(families: ClusterFamilies) -> ServiceRanges {
        ServiceRanges {
            cluster_ips: families
                .families()
                .iter()
                .map(|f| default_range(*f))
                .collect(),
            node_ports: NODE_PORT_RANGE,
        }
    }

    /// The families the ranges cover, the primary first.
    pub fn families(&self) -> Vec<IpFamily> {
        self.cluster_ips
            .iter()
            .map(|net| IpFamily::of(net.addr()))
            .collect()
    }

    fn primary(&self) -> IpFamily {
        self.families().first().copied().unwrap_or(IpFamily::V4)
    }

    fn range(&self, family: IpFamily) -> Option<&IpNet> {
        self.cluster_ips
            .iter()
            .find(|net| IpFamily::of(net.addr()) == family)
    }

    fn dual(&self) -> bool {
        self.range(IpFamily::V4).is_some() && self.range(IpFamily::V6).is_some()
    }

    /// The `kubernetes` Service's ClusterIP: the first address of the
    /// primary range.
    pub fn api_service_ip(&self) -> IpAddr {
        let primary = self.primary_range();
        nth_address(primary, 1).unwrap_or(primary.network())
    }

    /// The `kube-dns` Service's ClusterIP: the tenth address of the
    /// primary range.
    pub fn dns_service_ip(&self) -> IpAddr {
        let primary = self.primary_range();
        cluster_dns_ip(primary).unwrap_or(primary.network())
    }

    fn primary_range(&self) -> IpNet {
        self.range(self.primary())
            .copied()
            .unwrap_or_else(|| default_range(IpFamily::V4))
    }

    /// The usable addresses: not the network address (nor, in IPv4, the
    /// broadcast address), as the API server's allocator hands them out.
    fn contains(&self, ip: IpAddr) -> bool {
        self.range(IpFamily::of(ip)).is_some_and(|net| {
            net.contains(&ip) && ip != net.network() && (ip.is_ipv6() || ip != net.broadcast())
        })
    }

    /// Who may have `ip`, when it is set aside for one Service.
    fn reserved_for(&self, ip: IpAddr) -> Option<(&'static str, &'static str)> {
        if ip == self.api_service_ip() {
            Some(API_SERVICE)
        } else if ip == self.dns_service_ip() {
            Some(DNS_SERVICE)
        } else {
            None
        }
    }
}

/// The addresses stored Services (and Services earlier in the same apply)
/// hold.
#[derive(Debug, Default, Clone)]
pub(super) struct Taken {
    ips: BTreeSet<IpAddr>,
    ports: BTreeSet<u16>,
}

impl Taken {
    pub(super) fn of(services: &[Value]) -> Taken {
        let mut taken = Taken::default();
        for service in services {
            taken.insert(service);
        }
        taken
    }

    pub(super) fn insert(&mut self, service: &Value) {
        self.ips.extend(cluster_ips(service));
        self.ports.extend(node_ports(service));
    }
}

fn spec_type(v: &Value) -> &str {
    match str_at(v, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn needs_cluster_ip(v: &Value) -> bool {
    spec_type(v) != "ExternalName"
}

fn needs_node_ports(v: &Value) -> bool {
    matches!(spec_type(v), "NodePort" | "LoadBalancer")
}

/// A LoadBalancer may opt out of NodePorts (`allocateLoadBalancerNodePorts:
/// false`); explicit ones are still honoured.
fn allocates_node_ports(v: &Value) -> bool {
    spec_type(v) == "NodePort"
        || (spec_type(v) == "LoadBalancer"
            && v.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)))
}

fn needs_health_check(v: &Value) -> bool {
    spec_type(v) == "LoadBalancer" && str_at(v, "/spec/externalTrafficPolicy") == "Local"
}

fn externally_accessible(v: &Value) -> bool {
    needs_node_ports(v)
        || (spec_type(v) == "ClusterIP"
            && v.pointer("/spec/externalIPs")
                .and_then(Value::as_array)
                .is_some_and(|ips| !ips.is_empty()))
}

fn ports(v: &Value) -> &[Value] {
    v.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn cluster_ips(v: &Value) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = v
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    if let Ok(ip) = str_at(v, "/spec/clusterIP").parse() {
        out.push(ip);
    }
    out
}

/// Every NodePort and the health check NodePort.
fn node_ports(v: &Value) -> Vec<u16> {
    ports(v)
        .iter()
        .map(|p| int_at(p, "/nodePort"))
        .chain([int_at(v, "/spec/healthCheckNodePort")])
        .filter_map(|n| u16::try_from(n).ok().filter(|n| *n != 0))
        .collect()
}

/// Sets one field of `spec` (there is one: the object was validated).
fn set_spec(v: &mut Value, field: &str, value: Value) {
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert(field.into(), value);
    }
}

/// `dropTypeDependentFields`, on the update body before it is validated:
/// a field the new type does not use is removed when the body carries the
/// stored value unchanged (the user did not ask for it, the server filled
/// it in). A changed value stays, and validation reports it.
pub(super) fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    let same = |new: &Value, field: &str| {
        let pointer = format!("/spec/{field}");
        new.pointer(&pointer).is_none_or(Value::is_null)
            || new.pointer(&pointer) == old.pointer(&pointer)
    };
    let mut drop_fields = Vec::new();
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        if same(new, "clusterIP") && same(new, "clusterIPs") {
            drop_fields.extend(["clusterIP", "clusterIPs"]);
        }
        for field in ["ipFamilies", "ipFamilyPolicy"] {
            if same(new, field) {
                drop_fields.push(field);
            }
        }
    }
    if needs_health_check(old) && !needs_health_check(new) && same(new, "healthCheckNodePort") {
        drop_fields.push("healthCheckNodePort");
    }
    if spec_type(old) == "LoadBalancer"
        && spec_type(new) != "LoadBalancer"
        && same(new, "allocateLoadBalancerNodePorts")
    {
        drop_fields.push("allocateLoadBalancerNodePorts");
    }
    if externally_accessible(old)
        && !externally_accessible(new)
        && same(new, "externalTrafficPolicy")
    {
        drop_fields.push("externalTrafficPolicy");
    }
    let same_node_ports = ports(new).iter().enumerate().all(|(i, p)| {
        let given = int_at(p, "/nodePort");
        given == 0
            || ports(old)
                .get(i)
                .is_some_and(|o| int_at(o, "/nodePort") == given)
    });
    let drop_node_ports = needs_node_ports(old) && !needs_node_ports(new) && same_node_ports;

    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in drop_fields {
        spec.remove(field);
    }
    if drop_node_ports {
        for port in spec
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(port) = port.as_object_mut() {
                port.remove("nodePort");
            }
        }
    }
}

/// `patchAllocatedValues`, on the validated update: what the body left out
/// and the stored Service has (its ClusterIP, a port's NodePort, the health
/// check NodePort) is carried over. A port finds its stored counterpart by
/// port number and protocol, else by name; a NodePort the body gives to
/// another port is not carried.
pub(super) fn carry_allocations(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) && str_at(new, "/spec/clusterIP").is_empty() {
        let old_ip = str_at(old, "/spec/clusterIP");
        if !old_ip.is_empty() {
            let ips = old
                .pointer("/spec/clusterIPs")
                .cloned()
                .unwrap_or_else(|| json!([old_ip]));
            set_spec(new, "clusterIP", json!(old_ip));
            set_spec(new, "clusterIPs", ips);
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let given: BTreeSet<i64> = ports(new)
            .iter()
            .map(|p| int_at(p, "/nodePort"))
            .filter(|n| *n != 0)
            .collect();
        let old_ports = ports(old);
        let mut claimed = vec![false; old_ports.len()];
        let key = |p: &Value| (int_at(p, "/port"), str_at(p, "/protocol").to_string());
        let name = |p: &Value| str_at(p, "/name").to_string();
        let mut carried: Vec<Option<i64>> = vec![None; ports(new).len()];
        let mut matched = vec![false; ports(new).len()];
        // Two passes: an exact (port, protocol) match wins over a name match.
        for by_name in [false, true] {
            for (i, port) in ports(new).iter().enumerate() {
                if int_at(port, "/nodePort") != 0 || matched[i] {
                    continue;
                }
                let found = old_ports.iter().enumerate().position(|(j, o)| {
                    !claimed[j]
                        && if by_name {
                            !name(o).is_empty() && name(o) == name(port)
                        } else {
                            key(o) == key(port)
                        }
                });
                if let Some(j) = found {
                    claimed[j] = true;
                    matched[i] = true;
                    let n = int_at(&old_ports[j], "/nodePort");
                    if n != 0 && !given.contains(&n) {
                        carried[i] = Some(n);
                    }
                }
            }
        }
        if let Some(list) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for (port, n) in list.iter_mut().zip(carried) {
                if let (Some(n), Some(port)) = (n, port.as_object_mut()) {
                    port.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && int_at(new, "/spec/healthCheckNodePort") == 0
        && int_at(old, "/spec/healthCheckNodePort") != 0
    {
        set_spec(
            new,
            "healthCheckNodePort",
            json!(int_at(old, "/spec/healthCheckNodePort")),
        );
    }
}

/// A LoadBalancer's status belongs to its load balancer: gone with the type.
pub(super) fn clear_stale_status(old: &Value, new: &mut Value) {
    if spec_type(old) == "LoadBalancer"
        && spec_type(new) != "LoadBalancer"
        && let Some(status) = new.get_mut("status").and_then(Value::as_object_mut)
    {
        status.insert("loadBalancer".into(), json!({}));
    }
}

fn invalid_service(key: &ObjectKey, causes: Vec<FieldError>) -> ApiError {
    ApiError::Invalid(InvalidObject {
        kind: Kind::Service.as_str().to_string(),
        name: key.name.clone(),
        causes,
    })
}

/// Fills in the ClusterIP, the NodePorts and the health check NodePort of
/// `service` (validated, stored as `key`), honouring the ones it gives.
/// `old` is the stored Service on update: what it holds stays its own.
/// `taken` is what every stored Service holds (`old` included).
pub(super) fn allocate(
    ranges: &ServiceRanges,
    taken: &Taken,
    key: &ObjectKey,
    service: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    init_ip_families(ranges, key, service, old)?;
    let own_ips: Vec<IpAddr> = old.map(cluster_ips).unwrap_or_default();
    let own_ports: Vec<u16> = old.map(node_ports).unwrap_or_default();
    let mut causes = Vec::new();
    let mut invalid = |path: String, value: Value, detail: String| {
        causes.push(FieldError {
            path,
            message: format!("Invalid value: {value}: {detail}"),
        });
    };
    let full = |what: &str| ApiError::Forbidden {
        key: key.clone(),
        reason: format!("failed to allocate a {what}: range is full"),
    };

    // ClusterIPs, one per family: not for ExternalName (none) or headless
    // Services.
    if needs_cluster_ip(service) && str_at(service, "/spec/clusterIP") != CLUSTER_IP_NONE {
        let families = families_of(service);
        let mut ips: Vec<String> = strs_at(service, "/spec/clusterIPs")
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut picked: BTreeSet<IpAddr> = BTreeSet::new();
        for (i, family) in families.iter().enumerate() {
            let given = ips.get(i).filter(|ip| !ip.is_empty()).cloned();
            let Some(given) = given else {
                let ip = next_free_ip(ranges, taken, *family).ok_or_else(|| full("serviceIP"))?;
                picked.insert(ip);
                match ips.get_mut(i) {
                    Some(slot) => *slot = ip.to_string(),
                    None => ips.push(ip.to_string()),
                }
                continue;
            };
            // The primary address keeps the field it is known by.
            let path = if i == 0 {
                "spec.clusterIP".to_string()
            } else {
                format!("spec.clusterIPs[{i}]")
            };
            // Validation and the family checks leave only addresses of
            // the family configured at this index.
            match given.parse::<IpAddr>().ok() {
                Some(ip) if own_ips.contains(&ip) => {}
                Some(ip) if !ranges.contains(ip) => invalid(
                    path,
                    json!(given),
                    format!(
                        "provided IP is not in the valid range. The range of valid IPs is {}",
                        ranges
                            .range(IpFamily::of(ip))
                            .map_or_else(String::new, ToString::to_string)
                    ),
                ),
                Some(ip)
                    if taken.ips.contains(&ip)
                        || picked.contains(&ip)
                        || ranges
                            .reserved_for(ip)
                            .is_some_and(|(ns, name)| key.namespace != ns || key.name != name) =>
                {
                    invalid(
                        path,
                        json!(given),
                        "provided IP is already allocated".to_string(),
                    )
                }
                Some(_) => {}
                None => invalid(path, json!(given), "must be a valid IP address".to_string()),
            }
        }
        if let Some(first) = ips.first().cloned() {
            set_spec(service, "clusterIP", json!(first));
            set_spec(service, "clusterIPs", json!(ips));
        }
    }
    let downgrade = old
        .map(|old| upgrade_downgrade(old, service))
        .unwrap_or_default();

    // NodePorts: explicit ones first (each checked where it was given),
    // then the missing ones; the same port number on two protocols shares
    // one NodePort.
    let mut claimed: BTreeSet<u16> = BTreeSet::new();
    let mut check_port = |path: String, n: i64, claimed: &mut BTreeSet<u16>| match u16::try_from(n)
        .ok()
        .filter(|n| ranges.node_ports.contains(n))
    {
        None => invalid(
            path,
            json!(n),
            format!(
                "provided port is not in the valid range. The range of valid ports is {}-{}",
                ranges.node_ports.start(),
                ranges.node_ports.end()
            ),
        ),
        Some(n) if own_ports.contains(&n) || claimed.contains(&n) => {}
        Some(n) if taken.ports.contains(&n) => invalid(
            path,
            json!(n),
            "provided port is already allocated".to_string(),
        ),
        Some(n) => {
            claimed.insert(n);
        }
    };
    if needs_node_ports(service) {
        let mut by_port: BTreeMap<i64, i64> = BTreeMap::new();
        let list = ports(service).to_vec();
        for (i, port) in list.iter().enumerate() {
            let n = int_at(port, "/nodePort");
            if n != 0 {
                check_port(format!("spec.ports[{i}].nodePort"), n, &mut claimed);
                by_port.entry(int_at(port, "/port")).or_insert(n);
            }
        }
        if allocates_node_ports(service) {
            for (i, port) in list.iter().enumerate() {
                if int_at(port, "/nodePort") != 0 {
                    continue;
                }
                let number = int_at(port, "/port");
                let n = match by_port.get(&number) {
                    Some(n) => *n,
                    None => {
                        let n = next_free_port(ranges, taken, &claimed)
                            .ok_or_else(|| full("nodePort"))?;
                        claimed.insert(n);
                        by_port.insert(number, i64::from(n));
                        i64::from(n)
                    }
                };
                if let Some(port) = service
                    .pointer_mut(&format!("/spec/ports/{i}"))
                    .and_then(Value::as_object_mut)
                {
                    port.insert("nodePort".into(), json!(n));
                }
            }
        }
    }
    if needs_health_check(service) {
        match int_at(service, "/spec/healthCheckNodePort") {
            0 => {
                let n = next_free_port(ranges, taken, &claimed).ok_or_else(|| full("nodePort"))?;
                set_spec(service, "healthCheckNodePort", json!(n));
            }
            n => check_port("spec.healthCheckNodePort".to_string(), n, &mut claimed),
        }
    }

    causes.extend(downgrade);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid_service(key, causes))
    }
}

/// The lowest free address of `family`'s range. The hosts of a range are
/// walked in order, so at most the taken addresses plus two are looked at.
fn next_free_ip(ranges: &ServiceRanges, taken: &Taken, family: IpFamily) -> Option<IpAddr> {
    let net = ranges.range(family)?;
    net.hosts()
        .filter(|ip| ranges.contains(*ip))
        .find(|ip| !taken.ips.contains(ip) && ranges.reserved_for(*ip).is_none())
}

fn next_free_port(ranges: &ServiceRanges, taken: &Taken, claimed: &BTreeSet<u16>) -> Option<u16> {
    ranges
        .node_ports
        .clone()
        .find(|n| !taken.ports.contains(n) && !claimed.contains(n))
}
