//! The emulated outside world, as each node carries its own copy of it:
//! the outside resolver at `OUTSIDE_DNS_IP`, and one namespace per served
//! outside address (`--external NAME=IP,serve=IMAGE`) running that
//! built-in image, as a host on the Internet beyond a kind node's Docker
//! network would.
//!
//! Each is a namespace registered in the node's datapath like its host
//! namespace, so a pod reaches it through the datapath as any address:
//! TCP as a local pipe, UDP delivered, with the node's egress masquerade
//! applied on the way (the outside sees the node's IP). Nothing routes an
//! outside address over the overlay: every node answers for it itself.
//! An external address without `serve` has no namespace and leads
//! nowhere, as a blackholed host does.
//!
//! Deliberately not here: which addresses are outside (the datapath's
//! masquerade decision), and checking the hosts (the flags' parser).

use std::net::Ipv4Addr;
use std::sync::Arc;

use podnet_pod::container::{ContainerSpec, WorkloadEnv};
use podnet_pod::netns::{NetNs, PodInfo};
use podnet_proto::model::network::OUTSIDE_DNS_IP;
use podnet_proto::trace::Recorder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::datapath::Datapath;

/// An outside address that serves something: a built-in image run in a
/// namespace of its own at `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedHost {
    pub address: Ipv4Addr,
    /// The first name given for the address: what the image reports as
    /// its pod.
    pub name: String,
    /// `podnet/http-echo`, `podnet/tcp-echo` or `podnet/udp-echo`.
    pub image: String,
}

/// Registers the outside resolver and every served host in `datapath` and
/// runs them until `shutdown`, tracked in `tasks`. A served host whose
/// image cannot start is refused: the node does not start without it.
pub fn start(
    datapath: &Arc<Datapath>,
    resolver: podnet_pod::dns::Outside,
    served: &[ServedHost],
    recorder: Recorder,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let namespace = |ip: Ipv4Addr, name: &str| {
        let ns = NetNs::new(
            ip,
            PodInfo {
                namespace: String::new(),
                name: name.to_owned(),
                node: datapath.node_name().to_owned(),
            },
            Arc::<Datapath>::downgrade(datapath),
        );
        datapath.add_pod(ns.clone());
        ns
    };
    // The resolver: what the node's resolv.conf names, so the DNS pods
    // forward there.
    let resolver_ns = namespace(OUTSIDE_DNS_IP, "outside-resolver");
    let cancel = shutdown.clone();
    tasks.spawn(
        async move {
            if let Err(error) = podnet_pod::dns::serve_outside(resolver_ns, resolver, cancel).await
            {
                tracing::error!(%error, "the outside resolver stopped");
            }
        }
        .instrument(tracing::info_span!("outside")),
    );
    for host in served {
        if datapath.local_pod(host.address).is_some() {
            anyhow::bail!(
                "outside host {} cannot serve at {}: the node already has that address",
                host.name,
                host.address
            );
        }
        let ns = namespace(host.address, &host.name);
        let spec = ContainerSpec {
            name: "outside".to_owned(),
            image: host.image.clone(),
            args: Vec::new(),
            env: Vec::new(),
            ports: Vec::new(),
            workload_env: WorkloadEnv {
                recorder: recorder.clone(),
                ..WorkloadEnv::default()
            },
        };
        let running =
            podnet_pod::images::start(ns, &spec, shutdown.child_token()).map_err(|error| {
                anyhow::anyhow!(
                    "outside host {} cannot serve {} at {}: {error}",
                    host.name,
                    host.image,
                    host.address
                )
            })?;
        tasks.spawn(
            async move {
                match running.await {
                    Ok(_) => {}
                    Err(error) => tracing::error!(%error, "the outside host stopped serving"),
                }
            }
            .instrument(tracing::info_span!(
                "outside.host",
                host.name = %host.name,
                host.address = %host.address,
                host.image = %host.image
            )),
        );
    }
    Ok(())
}
