//! A Service's IP families, as the API server's `initIPFamilyFields` and
//! `validateUpgradeDowngrade*` decide them from the cluster's families
//! ([`ServiceRanges`]) and the stored Service: the part of allocation that
//! runs before any address is picked.

use std::net::IpAddr;

use podnet_proto::model::network::IpFamily;
use podnet_proto::model::{ObjectKey, str_at, strs_at};
use serde_json::{Value, json};

use super::{ServiceRanges, invalid_service, needs_cluster_ip, set_spec, spec_type};
use crate::registry::ApiError;
use crate::validate::FieldError;
use crate::validate::service::CLUSTER_IP_NONE;

/// The update half of `initIPFamilyFields` that runs before validation:
/// a body that sets `ipFamilyPolicy: SingleStack` and carries the stored
/// `clusterIPs` or `ipFamilies` unchanged releases the secondary ones
/// (the primary is immutable, so keeping it is safe).
pub(in crate::registry) fn release_secondary(old: &Value, new: &mut Value) {
    if !needs_cluster_ip(old) || !needs_cluster_ip(new) || policy_of(new) != "SingleStack" {
        return;
    }
    for field in ["clusterIPs", "ipFamilies"] {
        let pointer = format!("/spec/{field}");
        if same_list(old, new, field)
            && let Some(list) = new.pointer_mut(&pointer).and_then(Value::as_array_mut)
        {
            list.truncate(1);
        }
    }
}

/// The families of `service.spec.ipFamilies` that are families.
pub(super) fn families_of(service: &Value) -> Vec<IpFamily> {
    strs_at(service, "/spec/ipFamilies")
        .into_iter()
        .filter_map(IpFamily::parse)
        .collect()
}

fn headless(v: &Value) -> bool {
    str_at(v, "/spec/clusterIP") == CLUSTER_IP_NONE
}

fn headless_selectorless(v: &Value) -> bool {
    headless(v)
        && v.pointer("/spec/selector")
            .and_then(Value::as_object)
            .is_none_or(|s| s.is_empty())
}

fn policy_of(v: &Value) -> &str {
    str_at(v, "/spec/ipFamilyPolicy")
}

fn same_list(old: &Value, new: &Value, field: &str) -> bool {
    let pointer = format!("/spec/{field}");
    strs_at(old, &pointer) == strs_at(new, &pointer)
}

/// The new body gives `field` with fewer entries than the stored Service.
fn reduced(old: &Value, new: &Value, field: &str) -> bool {
    let pointer = format!("/spec/{field}");
    let given = strs_at(new, &pointer).len();
    given != 0 && given < strs_at(old, &pointer).len()
}

/// `initIPFamilyFields`: defaults `ipFamilyPolicy` and `ipFamilies` of a
/// validated Service from the cluster's families and the stored Service,
/// and refuses the families the cluster does not have.
pub(super) fn init_ip_families(
    ranges: &ServiceRanges,
    key: &ObjectKey,
    service: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if !needs_cluster_ip(service) {
        return Ok(());
    }
    // A PreferDualStack Service is not upgraded or downgraded because the
    // cluster changed: only an edit of its policy and addresses does that.
    if let Some(old) = old
        && spec_type(old) == spec_type(service)
        && policy_of(old) == "PreferDualStack"
        && policy_of(service) == "PreferDualStack"
        && same_list(old, service, "clusterIPs")
        && same_list(old, service, "ipFamilies")
    {
        return Ok(());
    }
    if policy_of(service).is_empty() {
        let policy = match old.map(policy_of).filter(|p| !p.is_empty()) {
            Some(stored) => stored.to_string(),
            None if headless_selectorless(service) => "RequireDualStack".to_string(),
            None => "SingleStack".to_string(),
        };
        set_spec(service, "ipFamilyPolicy", json!(policy));
    }
    let single_stack = policy_of(service) == "SingleStack";
    let mut causes = Vec::new();
    let policy = json!(policy_of(service));
    if let Some(old) = old {
        if single_stack {
            // What the body carried over from the stored Service (after
            // validation) is released the same way.
            release_secondary(old, service);
        } else {
            if reduced(old, service, "clusterIPs") {
                invalid(
                    &mut causes,
                    "spec.ipFamilyPolicy",
                    policy.clone(),
                    "must be 'SingleStack' to release the secondary cluster IP",
                );
            }
            if reduced(old, service, "ipFamilies") {
                invalid(
                    &mut causes,
                    "spec.ipFamilyPolicy",
                    policy.clone(),
                    "must be 'SingleStack' to release the secondary IP family",
                );
            }
        }
    }
    let ips: Vec<String> = strs_at(service, "/spec/clusterIPs")
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut families = families_of(service);
    if single_stack {
        if ips.len() == 2 {
            invalid(
                &mut causes,
                "spec.ipFamilyPolicy",
                policy.clone(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            );
        }
        if families.len() == 2 {
            invalid(
                &mut causes,
                "spec.ipFamilyPolicy",
                policy.clone(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            );
        }
    }
    // The families of the given addresses, where not given themselves.
    for (i, ip) in ips.iter().enumerate() {
        if ip == CLUSTER_IP_NONE {
            break;
        }
        let Ok(ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        let family = IpFamily::of(ip);
        if i >= families.len() {
            if ranges.range(family).is_none() {
                invalid(
                    &mut causes,
                    &format!("spec.clusterIPs[{i}]"),
                    json!(ips),
                    &format!("{family} is not configured on this cluster"),
                );
            } else {
                families.push(family);
            }
        }
    }
    if !causes.is_empty() {
        return Err(invalid_service(key, causes));
    }
    let primary = ranges.primary();
    if headless_selectorless(service) {
        // Allocates nothing: any family will do, even on a single-stack
        // cluster.
        if families.is_empty() {
            families.push(primary);
        }
        if families.len() < 2 && !single_stack {
            families.push(families[0].other());
        }
        set_families(service, &families);
        return Ok(());
    }
    if policy_of(service) == "RequireDualStack" && !ranges.dual() {
        invalid(
            &mut causes,
            "spec.ipFamilyPolicy",
            policy.clone(),
            "this cluster is not configured for dual-stack services",
        );
    }
    for (i, family) in families.iter().enumerate() {
        if ranges.range(*family).is_none() {
            invalid(
                &mut causes,
                &format!("spec.ipFamilies[{i}]"),
                json!(family.as_str()),
                "not configured on this cluster",
            );
        }
    }
    if !causes.is_empty() {
        return Err(invalid_service(key, causes));
    }
    if families.is_empty() {
        families.push(primary);
    }
    if !single_stack && families.len() == 1 && ranges.dual() {
        families.push(families[0].other());
    }
    set_families(service, &families);
    Ok(())
}

fn invalid(causes: &mut Vec<FieldError>, path: &str, value: Value, detail: &str) {
    causes.push(FieldError {
        path: path.to_string(),
        message: format!("Invalid value: {value}: {detail}"),
    });
}

fn set_families(service: &mut Value, families: &[IpFamily]) {
    let names: Vec<&str> = families.iter().map(|f| f.as_str()).collect();
    set_spec(service, "ipFamilies", json!(names));
}

/// `validateUpgradeDowngradeClusterIPs` and `...IPFamilies`, on the
/// allocated update: the primary address and family never change, and a
/// secondary one is released only with `ipFamilyPolicy: SingleStack`.
pub(super) fn upgrade_downgrade(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut causes = Vec::new();
    if !needs_cluster_ip(old) || !needs_cluster_ip(new) {
        return causes;
    }
    for field in ["clusterIPs", "ipFamilies"] {
        if field == "clusterIPs" && headless(old) && headless(new) {
            continue;
        }
        let pointer = format!("/spec/{field}");
        let (was, now) = (strs_at(old, &pointer), strs_at(new, &pointer));
        let path = format!("spec.{field}[0]");
        let mut invalid = |detail: &str| {
            causes.push(FieldError {
                path: path.clone(),
                message: format!("Invalid value: {}: {detail}", json!(now)),
            });
        };
        let changed = was.iter().zip(&now).any(|(a, b)| a != b);
        if was.len() == now.len() || was.len() < now.len() {
            if changed && !was.is_empty() {
                invalid("may not change once set");
            }
        } else {
            if now.is_empty() {
                invalid(if field == "clusterIPs" {
                    "primary clusterIP can not be unset"
                } else {
                    "primary ipFamily can not be unset"
                });
            }
            if changed {
                invalid("may not change once set");
            }
            if now.len() == 1 && policy_of(new) != "SingleStack" {
                invalid(if field == "clusterIPs" {
                    "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP"
                } else {
                    "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary ipFamily"
                });
            }
        }
    }
    causes
}
