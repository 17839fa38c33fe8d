//! Kubernetes NetworkPolicy evaluation as a pure core: plain data in,
//! decisions out. No I/O, no clock, no async. The datapath, the control
//! plane's validation and the CLI build on it.
//!
//! # Using it
//!
//! [`compile`] turns a `networking.k8s.io/v1` `NetworkPolicy` into a
//! [`Policy`] (selectors and CIDRs parsed once) or the first
//! [`InvalidPolicy`], with its field path
//! (`spec.ingress[0].from[1].ipBlock.cidr`). [`validate`] lists every
//! problem as the API server words it ([`FieldError`]); it refuses exactly
//! what `compile` refuses. An [`Index`] holds compiled policies, pods
//! ([`PodInfo`]), namespace labels and node addresses, updated one object
//! at a time (`upsert_*`/`remove_*`), and judges a [`Flow`]:
//! [`Index::judge_egress`] at the source pod's node, [`Index::judge_ingress`]
//! at the destination pod's node, [`Index::judge`] both. A flow is judged
//! after the service proxy's DNAT: its destination is the backend pod (or
//! outside address) actually reached and its port the backend's port.
//! [`Index::endpoint`] turns an address into a pod endpoint when a held
//! pod has it (sharing the held [`PodInfo`]); an address no held pod has
//! is an outside one, matched by `ipBlock`s alone.
//!
//! # Semantics (upstream Kubernetes)
//!
//! **Isolation.** A pod is isolated for ingress (egress) iff some policy of
//! its namespace selects it by `podSelector` and has Ingress (Egress)
//! among its effective `policyTypes`. A pod that is not isolated for a
//! direction allows everything in it ([`Verdict::NotIsolated`]). A policy
//! without `policyTypes` has Ingress, plus Egress only when `spec.egress`
//! has at least one rule: an egress-only policy written without
//! `policyTypes` also isolates ingress, and `egress: []` without
//! `policyTypes` isolates nothing for egress. Rules of a direction missing
//! from `policyTypes` are ignored.
//!
//! **Allowing.** Policies only add: what an isolated pod allows in a
//! direction is the union of the rules of that direction of every policy
//! selecting it ([`Verdict::Allowed`] names the policies whose rules
//! matched; [`Verdict::Denied`] the ones isolating the pod). A connection
//! needs both the source pod's egress and the destination pod's ingress;
//! an outside source has no egress side and an outside destination no
//! ingress side ([`Verdict::NotAPod`]).
//!
//! **Rules.** A rule allows a flow when one of its peers matches the other
//! end and one of its `ports` entries matches the destination port. A rule
//! without `from`/`to` (absent or empty) matches every peer, one without
//! `ports` every port and protocol; so `ingress: [{}]` allows all, and a
//! policy with no rules for an isolated direction denies all.
//!
//! **Peers.** `podSelector` alone: pods of the policy's own namespace.
//! `namespaceSelector` alone: every pod of the namespaces it selects (`{}`
//! selects every namespace), judged against the namespace labels held at
//! judging time (every namespace has `kubernetes.io/metadata.name`). Both in
//! one peer: pods matching the podSelector *in* the selected namespaces
//! (AND); separate peers OR. `ipBlock`: addresses in `cidr` and in none of
//! `except`. Upstream meant ipBlock for cluster-external addresses and
//! leaves its effect on pod addresses to the implementation; podnet
//! matches any address, pods' included, by the address the flow uses. A
//! peer with none of the three, or ipBlock beside a selector, is invalid
//! (as upstream validates it).
//!
//! **Ports.** `port` (a number; with `endPort` the range `port..=endPort`)
//! and `protocol` (TCP when absent; SCTP, TCP and UDP are valid); an entry
//! with a protocol and no port matches every port of that protocol. A
//! *named* port matches when the destination pod has a container port of
//! that name and protocol whose number is the flow's port, for ingress and
//! egress alike: egress to an outside address, or to a pod without that
//! port, never matches a named port.
//!
//! **Always allowed.** A pod can always reach itself ([`Verdict::SamePod`]:
//! the docs' "a pod cannot block access to itself"; upstream's e2e suite,
//! probing a pod from itself through its pod IP, expects policy to apply
//! there, which podnet does not follow),
//! and traffic between a pod and its own node's addresses (kubelet probes)
//! is always allowed in both directions ([`Verdict::LocalNode`]); the index
//! learns node addresses from [`Index::upsert_node`].
//!
//! **Not yet known.** A pod the index does not hold is selected by no
//! policy and matched only by `ipBlock` peers: the window upstream documents
//! for pods that start before the plugin has handled them.
//!
//! **Sources as the judge sees them.** The ingress side judges the source
//! address as it arrives at the destination node: a NodePort flow the
//! proxy SNATed to a node IP comes from that node (from the pod's own
//! node it is always allowed), as in a real cluster.
//!
//! **Validation.** [`validate`] is upstream's `ValidateNetworkPolicySpec`
//! plus a missing `metadata.name`; the rest of the object metadata is the
//! control plane's. Label values in selectors are checked strictly, as for
//! a new object.
//!
//! Not here: protocols other than TCP, UDP and SCTP (upstream leaves ICMP
//! to the plugin; the caller decides), anything per packet (policies are
//! per flow: replies of an allowed flow ride on it), `hostNetwork` pods
//! (they are outside addresses here), AdminNetworkPolicy, and the flow log
//! (the caller records the [`Verdict`]).

mod index;
mod invalid;
mod judge;
mod model;
mod policy;
#[cfg(test)]
mod testkit;

pub use index::Index;
pub use invalid::{CidrProblem, FieldError, FieldErrorKind, InvalidPolicy};
pub use judge::{Judgement, Verdict};
pub use model::{
    ContainerPort, Direction, Endpoint, Flow, LABEL_NAMESPACE_NAME, PodInfo, PodKey, PolicyRef,
    Protocol,
};
pub use policy::{DEFAULT_NAMESPACE, Policy, compile, validate};
