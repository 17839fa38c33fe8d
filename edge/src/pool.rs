//! Handing out LoadBalancer addresses from a pool, the way MetalLB hands
//! them out of an IPAddressPool: a Service keeps the address it has (as
//! recorded in its status), may ask for one (`spec.loadBalancerIP`), and
//! otherwise gets the lowest free one. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// What one LoadBalancer Service has and asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The address its status records now, if any.
    pub current: Option<Ipv4Addr>,
    /// `spec.loadBalancerIP`, if set.
    pub requested: Option<Ipv4Addr>,
}

/// Why a Service got no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("requested address {0} is outside the pool {1}")]
    OutsidePool(Ipv4Addr, Ipv4Net),
    #[error("requested address {0} is already used by another Service")]
    Taken(Ipv4Addr),
    #[error("no free address left in the pool {0}")]
    Exhausted(Ipv4Net),
}

impl PoolError {
    /// The reason of the Warning Event a Service gets, as a cloud
    /// provider's service controller records one.
    pub fn reason(&self) -> &'static str {
        match self {
            PoolError::OutsidePool(..) => "LoadBalancerIPNotAllowed",
            PoolError::Taken(_) => "LoadBalancerIPInUse",
            PoolError::Exhausted(_) => "LoadBalancerPoolExhausted",
        }
    }

    /// What the Event says: what is wrong and what would do.
    pub fn message(&self) -> String {
        match self {
            PoolError::OutsidePool(_, pool) => format!(
                "{self}: set spec.loadBalancerIP to an address in {pool}, or leave it unset for the lowest free one"
            ),
            PoolError::Taken(_) => format!(
                "{self}: ask for another address in the pool, or leave spec.loadBalancerIP unset"
            ),
            PoolError::Exhausted(_) => {
                format!(
                    "{self}: delete a LoadBalancer Service or start the cluster with a larger --lb-pool"
                )
            }
        }
    }
}

/// Assigns an address to every claim, in key order (callers order keys by
/// creation, so older Services win conflicts). Addresses already held are
/// kept first, so a new Service never takes one from an existing Service.
pub fn assign<K: Ord + Clone>(
    pool: Ipv4Net,
    claims: &BTreeMap<K, Claim>,
) -> BTreeMap<K, Result<Ipv4Addr, PoolError>> {
    let mut taken = BTreeSet::new();
    let mut out = BTreeMap::new();
    // Keep what is held, if it is still in the pool and nobody older holds it.
    for (key, claim) in claims {
        let keep = claim
            .current
            .filter(|ip| pool.contains(ip) && claim.requested.is_none_or(|r| r == *ip));
        if let Some(ip) = keep
            && taken.insert(ip)
        {
            out.insert(key.clone(), Ok(ip));
        }
    }
    // Requested addresses next, then the lowest free one.
    for (key, claim) in claims {
        if out.contains_key(key) {
            continue;
        }
        let result = match claim.requested {
            Some(ip) if !pool.contains(&ip) => Err(PoolError::OutsidePool(ip, pool)),
            Some(ip) if taken.contains(&ip) => Err(PoolError::Taken(ip)),
            Some(ip) => Ok(ip),
            None => pool
                .hosts()
                .find(|ip| !taken.contains(ip))
                .ok_or(PoolError::Exhausted(pool)),
        };
        if let Ok(ip) = result {
            taken.insert(ip);
        }
        out.insert(key.clone(), result);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Ipv4Net {
        "127.0.1.0/30".parse().unwrap()
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 1, last)
    }

    fn claim(current: Option<u8>, requested: Option<u8>) -> Claim {
        Claim {
            current: current.map(ip),
            requested: requested.map(ip),
        }
    }

    #[test]
    fn lowest_free_in_order_and_exhaustion() {
        let claims = BTreeMap::from([
            ("a", claim(None, None)),
            ("b", claim(None, None)),
            ("c", claim(None, None)),
        ]);
        let got = assign(pool(), &claims);
        assert_eq!(got["a"], Ok(ip(1)));
        assert_eq!(got["b"], Ok(ip(2)));
        assert_eq!(got["c"], Err(PoolError::Exhausted(pool())));
    }

    #[test]
    fn held_addresses_are_kept_before_new_ones_are_given() {
        // "b" holds .1; "a" is new and sorts first, yet must not take it.
        let claims = BTreeMap::from([("a", claim(None, None)), ("b", claim(Some(1), None))]);
        let got = assign(pool(), &claims);
        assert_eq!(got["b"], Ok(ip(1)));
        assert_eq!(got["a"], Ok(ip(2)));
    }

    #[test]
    fn requested_addresses_are_honoured_or_refused_with_a_reason() {
        let claims = BTreeMap::from([
            ("a", claim(None, Some(2))),
            ("b", claim(None, Some(2))),
            ("c", claim(None, Some(9))),
        ]);
        let got = assign(pool(), &claims);
        assert_eq!(got["a"], Ok(ip(2)));
        assert_eq!(got["b"], Err(PoolError::Taken(ip(2))));
        assert_eq!(got["c"], Err(PoolError::OutsidePool(ip(9), pool())));
    }

    #[test]
    fn refusals_have_a_reason_and_say_what_would_do() {
        for (error, reason, says) in [
            (
                PoolError::OutsidePool(Ipv4Addr::new(8, 8, 8, 8), pool()),
                "LoadBalancerIPNotAllowed",
                "requested address 8.8.8.8 is outside the pool 127.0.1.0/30: set spec.loadBalancerIP to an address in 127.0.1.0/30",
            ),
            (
                PoolError::Taken(ip(2)),
                "LoadBalancerIPInUse",
                "127.0.1.2 is already used",
            ),
            (
                PoolError::Exhausted(pool()),
                "LoadBalancerPoolExhausted",
                "larger --lb-pool",
            ),
        ] {
            assert_eq!(error.reason(), reason);
            assert!(error.message().contains(says), "{}", error.message());
        }
    }

    #[test]
    fn a_held_address_outside_the_pool_is_replaced() {
        let claims = BTreeMap::from([("a", claim(Some(9), None))]);
        assert_eq!(assign(pool(), &claims)["a"], Ok(ip(1)));
    }

    #[test]
    fn a_changed_request_moves_the_service() {
        let claims = BTreeMap::from([("a", claim(Some(1), Some(2)))]);
        assert_eq!(assign(pool(), &claims)["a"], Ok(ip(2)));
    }
}
