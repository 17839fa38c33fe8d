//! Staying registered, as the kubelet does: a heartbeat renews the node's
//! lease every quarter of it, and when the control plane answers NOT_FOUND
//! (someone deleted the Node object) the node registers again under the
//! same name. It first waits, bounded, until the pods that were bound to
//! it are gone (the control plane's pod garbage collector deletes them
//! with their Node), so the new Node starts empty and gets pods scheduled
//! afresh.
//!
//! The datapath was built for one podCIDR and one node IP: the control
//! plane hands the same ones back when they are still free, and a node
//! that would get others stops rather than run with addresses it does not
//! own.

use std::net::Ipv4Addr;
use std::time::Duration;

use ipnet::IpNet;
use podnet_proto::informer::Cache;
use podnet_proto::v1::api_client::ApiClient;
use podnet_proto::v1::{HeartbeatRequest, JoinRequest};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// How long a node whose Node was deleted waits for its pods to be gone
/// before it registers again anyway.
const PODS_GONE_WITHIN: Duration = Duration::from_secs(10);

/// What a node needs to renew its lease and register again.
pub(crate) struct Registration {
    pub api: ApiClient<Channel>,
    /// The request it joined with; joining again sends it unchanged.
    pub join: JoinRequest,
    /// What it runs with (the datapath's addresses).
    /// The primary family's podCIDR.
    pub pod_cidr: IpNet,
    pub node_ip: Ipv4Addr,
    /// How often to renew.
    pub every: Duration,
    /// The pods bound to this node, from its informer.
    pub pods: watch::Receiver<Cache>,
}

/// What registering again came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejoined {
    /// The same addresses: carry on.
    Same,
    /// Other addresses than the datapath has: this process cannot go on.
    Moved { pod_cidr: String, node_ip: String },
}

/// Whether the addresses a new join handed out are the ones this node runs.
pub(crate) fn compare(
    pod_cidr: IpNet,
    node_ip: Ipv4Addr,
    got_cidr: &str,
    got_ip: &str,
) -> Rejoined {
    let same_cidr = got_cidr.parse::<IpNet>().is_ok_and(|c| c == pod_cidr);
    let same_ip = got_ip.parse::<Ipv4Addr>().is_ok_and(|ip| ip == node_ip);
    if same_cidr && same_ip {
        Rejoined::Same
    } else {
        Rejoined::Moved {
            pod_cidr: got_cidr.to_string(),
            node_ip: got_ip.to_string(),
        }
    }
}

/// Renews the lease until `shutdown`; registers again when the Node is
/// gone. Cancels `shutdown` (the node's root token: the node stops) when
/// registering again gave this node other addresses.
pub(crate) async fn run(mut reg: Registration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(reg.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let req = HeartbeatRequest {
            node_name: reg.join.node_name.clone(),
        };
        match reg.api.heartbeat(req).await {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::NotFound => {
                tracing::warn!(
                    "this node's Node object was deleted; registering again once its pods are gone"
                );
                if !pods_gone(&mut reg.pods, &shutdown).await {
                    tracing::warn!(within = ?PODS_GONE_WITHIN, "pods still bound to this node; registering again anyway");
                }
                match reg.api.join(reg.join.clone()).await {
                    Ok(joined) => {
                        let joined = joined.into_inner();
                        match compare(reg.pod_cidr, reg.node_ip, &joined.pod_cidr, &joined.node_ip)
                        {
                            Rejoined::Same => {
                                tracing::info!(pod_cidr = %reg.pod_cidr, node_ip = %reg.node_ip, "registered again");
                            }
                            Rejoined::Moved { pod_cidr, node_ip } => {
                                tracing::error!(
                                    %pod_cidr, %node_ip, runs_cidr = %reg.pod_cidr, runs_ip = %reg.node_ip,
                                    "registered again with other addresses than this node runs with; stopping (start the node again to use them)"
                                );
                                shutdown.cancel();
                                return;
                            }
                        }
                    }
                    // The next tick tries again.
                    Err(s) => {
                        tracing::warn!(code = ?s.code(), error = %s.message(), "registering again failed")
                    }
                }
            }
            Err(s) => {
                tracing::warn!(code = ?s.code(), error = %s.message(), "heartbeat failed")
            }
        }
    }
}

/// Waits until no pod is bound to this node, up to [`PODS_GONE_WITHIN`];
/// whether they are gone.
async fn pods_gone(pods: &mut watch::Receiver<Cache>, shutdown: &CancellationToken) -> bool {
    let deadline = tokio::time::Instant::now() + PODS_GONE_WITHIN;
    loop {
        if pods.borrow_and_update().is_empty() {
            return true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(deadline) => return false,
            r = pods.changed() => if r.is_err() { return false },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_goes_on_only_with_the_addresses_it_runs() {
        let cidr: IpNet = "10.244.1.0/24".parse().unwrap();
        let ip = Ipv4Addr::new(172, 18, 0, 3);
        for (got_cidr, got_ip, same) in [
            ("10.244.1.0/24", "172.18.0.3", true),
            ("10.244.2.0/24", "172.18.0.3", false),
            ("10.244.1.0/24", "172.18.0.4", false),
            ("", "", false),
            ("garbage", "172.18.0.3", false),
        ] {
            let got = compare(cidr, ip, got_cidr, got_ip);
            assert_eq!(got == Rejoined::Same, same, "{got_cidr} {got_ip}: {got:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_pods_ends_when_they_are_gone_or_at_the_deadline() {
        let shutdown = CancellationToken::new();
        let (tx, mut rx) = watch::channel(Cache::from([(
            "default/a".to_string(),
            serde_json::json!({}),
        )]));
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { pods_gone(&mut rx, &shutdown).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send_replace(Cache::new());
        assert!(waiter.await.unwrap());

        let (_tx, mut rx) = watch::channel(Cache::from([(
            "default/a".to_string(),
            serde_json::json!({}),
        )]));
        let started = tokio::time::Instant::now();
        assert!(!pods_gone(&mut rx, &shutdown).await);
        assert_eq!(started.elapsed(), PODS_GONE_WITHIN);
    }
}
