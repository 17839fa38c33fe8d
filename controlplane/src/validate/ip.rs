//! IP address checks of `k8s.io/apimachinery/pkg/util/validation` and
//! `ValidateNonSpecialIP`, worded as the API server words them.
//!
//! Addresses are parsed strictly (no leading zeros, no zone), as the API
//! server does for new objects since 1.33.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::field::{Errors, FieldPath};

pub(super) const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// `IsValidIP`, then `ValidateNonSpecialIP` when it is one: the address of
/// something that can be connected to.
pub(super) fn endpoint_ip(value: &str, path: &FieldPath, errs: &mut Errors) {
    match value.parse::<IpAddr>() {
        Ok(ip) => non_special(ip, value, path, errs),
        Err(_) => errs.invalid(path, value, IP_MSG),
    }
}

/// `IsValidIPv4Address` then `ValidateNonSpecialIP`.
pub(super) fn endpoint_ipv4(value: &str, path: &FieldPath, errs: &mut Errors) {
    match value.parse::<Ipv4Addr>() {
        Ok(ip) => non_special(IpAddr::V4(ip), value, path, errs),
        Err(_) => errs.invalid(path, value, "must be a valid IPv4 address"),
    }
}

/// `IsValidIPv6Address` then `ValidateNonSpecialIP`.
pub(super) fn endpoint_ipv6(value: &str, path: &FieldPath, errs: &mut Errors) {
    match value.parse::<Ipv6Addr>() {
        Ok(ip) => non_special(IpAddr::V6(ip), value, path, errs),
        Err(_) => errs.invalid(path, value, "must be a valid IPv6 address"),
    }
}

/// `ValidateNonSpecialIP`: not an address that means "this host" or "this
/// link" rather than one endpoint.
fn non_special(ip: IpAddr, value: &str, path: &FieldPath, errs: &mut Errors) {
    if ip.is_unspecified() {
        errs.invalid(path, value, &format!("may not be unspecified ({value})"));
    }
    if ip.is_loopback() {
        errs.invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        );
    }
    let (link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => (v4.is_link_local(), v4.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(v6) => (
            v6.segments()[0] & 0xffc0 == 0xfe80,
            v6.segments()[0] & 0xff0f == 0xff02,
        ),
    };
    if link_local {
        errs.invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        );
    }
    if link_local_multicast {
        errs.invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        );
    }
}
