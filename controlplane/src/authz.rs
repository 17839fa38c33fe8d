//! Who may do what: the API's authorizer, a pure function of the caller
//! and the request, as the Kubernetes API server chains its Node
//! authorizer, NodeRestriction admission and RBAC's bootstrap roles.
//!
//! - `system:masters` (the admin, the control plane itself): everything.
//! - A node (`system:node:<name>`): reads what its agent, proxy and DNS
//!   follow (Pods, Services, EndpointSlices, Endpoints, Nodes, Links,
//!   Namespaces); changes only its own Node and the status of pods bound
//!   to it, deletes only pods bound to it (finishing a graceful delete),
//!   records Events, and asks for the service account credentials of pods
//!   bound to it. No Secrets, no exec, no traces.
//! - The edge (`system:podnet-edge`): reads Services, EndpointSlices and
//!   Nodes, writes Service status (the LoadBalancer address), records
//!   Events.
//! - The ingress controller's service account
//!   (`podnet-ingress:podnet-ingress-controller`): what ingress-nginx's
//!   ClusterRole grants: reads Ingresses, IngressClasses, Secrets,
//!   Services, EndpointSlices, Pods, Namespaces; writes Ingress status;
//!   records Events.
//! - Anyone else, other service accounts included: nothing (RBAC's
//!   default deny). There are no Role or RoleBinding objects yet.
//!
//! Messages are the API server's (`pods "x" is forbidden: User "…" cannot
//! update resource "pods/status" in API group "" in the namespace "…"`).
//! This module reads no store: the caller passes what a decision needs
//! (the node a stored pod is bound to).

use podnet_proto::auth::User;
use podnet_proto::model::Kind;

use crate::registry::{INGRESS_CONTROLLER, INGRESS_NAMESPACE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    /// `kubectl apply`: create or update.
    Patch,
    Delete,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    fn reads(self) -> bool {
        matches!(self, Verb::Get | Verb::List | Verb::Watch)
    }
}

/// What a call does to which object (or collection, with an empty name).
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub verb: Verb,
    pub kind: Kind,
    /// `status`, `exec`, or none.
    pub subresource: Option<&'static str>,
    /// Empty: every namespace, or a cluster-scoped kind.
    pub namespace: &'a str,
    pub name: &'a str,
    /// For a Pod that exists: the node it is bound to (`spec.nodeName`).
    pub bound_node: Option<&'a str>,
}

impl<'a> Action<'a> {
    pub fn new(verb: Verb, kind: Kind, namespace: &'a str, name: &'a str) -> Action<'a> {
        Action {
            verb,
            kind,
            subresource: None,
            namespace,
            name,
            bound_node: None,
        }
    }

    pub fn subresource(self, subresource: &'static str) -> Action<'a> {
        Action {
            subresource: Some(subresource),
            ..self
        }
    }

    pub fn bound_to(self, node: &'a str) -> Action<'a> {
        Action {
            bound_node: Some(node),
            ..self
        }
    }
}

/// A refusal, worded as the API server words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// Kinds a node's agent, proxy, DNS and NetworkPolicy enforcement follow.
/// Upstream's Node authorizer grants none of NetworkPolicy (kube-proxy
/// does not read it): there the CNI plugin's agent reads policies with
/// its own service account; a podnet node is its own CNI agent.
const NODE_READS: &[Kind] = &[
    Kind::Pod,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Endpoints,
    Kind::Node,
    Kind::Link,
    Kind::Namespace,
    Kind::NetworkPolicy,
];
const EDGE_READS: &[Kind] = &[Kind::Service, Kind::EndpointSlice, Kind::Node];
const INGRESS_READS: &[Kind] = &[
    Kind::Ingress,
    Kind::IngressClass,
    Kind::Secret,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Endpoints,
    Kind::Pod,
    Kind::Namespace,
];

pub fn authorize(user: &User, action: &Action) -> Result<(), Forbidden> {
    if user.is_admin() {
        return Ok(());
    }
    if let Some(node) = user.node() {
        return node_may(node, action).map_err(|why| forbidden(user, action, why));
    }
    let allowed = if user.is_edge() {
        edge_may(action)
    } else if user.service_account() == Some((INGRESS_NAMESPACE, INGRESS_CONTROLLER)) {
        ingress_may(action)
    } else {
        false
    };
    if allowed {
        Ok(())
    } else {
        Err(forbidden(user, action, None))
    }
}

/// The `Traces` call (spans of every process): for `system:masters` only.
pub fn authorize_traces(user: &User) -> Result<(), Forbidden> {
    if user.is_admin() {
        return Ok(());
    }
    Err(Forbidden(format!(
        "User {:?} cannot get journeys: only system:masters may",
        user.name
    )))
}

/// `Err(Some(reason))` for NodeRestriction's refusals, `Err(None)` for
/// what no node may do.
fn node_may(node: &str, a: &Action) -> Result<(), Option<String>> {
    let bound_here = a.bound_node == Some(node);
    match (a.kind, a.verb, a.subresource) {
        (k, v, None) if v.reads() && NODE_READS.contains(&k) => Ok(()),
        (Kind::Event, Verb::Get | Verb::Create | Verb::Update | Verb::Patch, None) => Ok(()),
        (Kind::Node, Verb::Update | Verb::Patch, None | Some("status")) => {
            if a.name == node {
                Ok(())
            } else {
                Err(Some(format!("node {node:?} can only modify its own Node")))
            }
        }
        (Kind::Pod, Verb::Update | Verb::Patch, Some("status"))
        | (Kind::Pod, Verb::Delete, None)
        // NodeRestriction's eviction rule: its own pods only.
        | (Kind::Pod, Verb::Create, Some("eviction"))
        | (Kind::Pod, Verb::Create, Some("serviceaccount")) => {
            if bound_here {
                Ok(())
            } else {
                Err(Some(format!(
                    "node {node:?} can only change pods with spec.nodeName set to itself"
                )))
            }
        }
        _ => Err(None),
    }
}

fn edge_may(a: &Action) -> bool {
    match (a.kind, a.verb, a.subresource) {
        (k, v, None) if v.reads() && EDGE_READS.contains(&k) => true,
        (Kind::Service, Verb::Update | Verb::Patch, Some("status")) => true,
        (Kind::Event, Verb::Get | Verb::Create | Verb::Update | Verb::Patch, None) => true,
        _ => false,
    }
}

fn ingress_may(a: &Action) -> bool {
    match (a.kind, a.verb, a.subresource) {
        (k, v, None) if v.reads() && INGRESS_READS.contains(&k) => true,
        (Kind::Ingress, Verb::Update | Verb::Patch, Some("status")) => true,
        (Kind::Event, Verb::Get | Verb::Create | Verb::Update | Verb::Patch, None) => true,
        _ => false,
    }
}

/// `api group` of a kind, as RBAC names it: "" for the core group.
fn group(kind: Kind) -> &'static str {
    kind.api_version()
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
}

fn forbidden(user: &User, a: &Action, reason: Option<String>) -> Forbidden {
    let resource = match a.subresource {
        Some(sub) => format!("{}/{sub}", a.kind.plural()),
        None => a.kind.plural().to_string(),
    };
    let what = if a.name.is_empty() {
        a.kind.plural().to_string()
    } else {
        format!("{} {:?}", a.kind.plural(), a.name)
    };
    let scope = if a.kind.namespaced() && !a.namespace.is_empty() {
        format!("in the namespace {:?}", a.namespace)
    } else {
        "at the cluster scope".to_string()
    };
    let mut message = format!(
        "{what} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        user.name,
        a.verb.as_str(),
        group(a.kind),
    );
    if let Some(reason) = reason {
        message.push_str(": ");
        message.push_str(&reason);
    }
    Forbidden(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet_proto::auth::{
        self, ADMIN_USER, EDGE_USER, MASTERS_GROUP, NODES_GROUP, SERVICE_ACCOUNTS_GROUP,
    };

    fn node(name: &str) -> User {
        User::new(&auth::node_user(name), &[NODES_GROUP])
    }

    fn sa(ns: &str, name: &str) -> User {
        User::new(
            &auth::service_account_user(ns, name),
            &[SERVICE_ACCOUNTS_GROUP],
        )
    }

    fn check(user: &User, action: Action, allowed: bool) {
        let got = authorize(user, &action);
        assert_eq!(got.is_ok(), allowed, "{user:?} {action:?}: {got:?}");
    }

    #[test]
    fn admin_does_anything() {
        let admin = User::new(ADMIN_USER, &[MASTERS_GROUP]);
        check(
            &admin,
            Action::new(Verb::Delete, Kind::Namespace, "", "x"),
            true,
        );
        check(
            &admin,
            Action::new(Verb::Create, Kind::Pod, "default", "p").subresource("exec"),
            true,
        );
        assert!(authorize_traces(&admin).is_ok());
        assert!(authorize_traces(&node("node-1")).is_err());
    }

    #[test]
    fn node_restriction() {
        let n1 = node("node-1");
        let pod = |verb| Action::new(verb, Kind::Pod, "default", "web");
        // Reads of what a node follows.
        check(&n1, Action::new(Verb::Watch, Kind::Service, "", ""), true);
        check(&n1, Action::new(Verb::List, Kind::Pod, "", ""), true);
        // Enforcement follows every policy of the cluster, and writes none.
        check(
            &n1,
            Action::new(Verb::List, Kind::NetworkPolicy, "", ""),
            true,
        );
        check(
            &n1,
            Action::new(Verb::Watch, Kind::NetworkPolicy, "", ""),
            true,
        );
        check(
            &n1,
            Action::new(Verb::Create, Kind::NetworkPolicy, "a", "p"),
            false,
        );
        check(
            &n1,
            Action::new(Verb::Delete, Kind::NetworkPolicy, "a", "p"),
            false,
        );
        check(&n1, Action::new(Verb::Get, Kind::Secret, "a", "s"), false);
        check(&n1, Action::new(Verb::List, Kind::Secret, "", ""), false);
        // Its own Node only.
        check(
            &n1,
            Action::new(Verb::Update, Kind::Node, "", "node-1"),
            true,
        );
        check(
            &n1,
            Action::new(Verb::Update, Kind::Node, "", "node-2").subresource("status"),
            false,
        );
        check(
            &n1,
            Action::new(Verb::Create, Kind::Node, "", "phantom"),
            false,
        );
        check(
            &n1,
            Action::new(Verb::Delete, Kind::Node, "", "node-1"),
            false,
        );
        // Pods bound to it only.
        check(
            &n1,
            pod(Verb::Update).subresource("status").bound_to("node-1"),
            true,
        );
        check(
            &n1,
            pod(Verb::Update).subresource("status").bound_to("node-2"),
            false,
        );
        check(&n1, pod(Verb::Update).subresource("status"), false);
        check(&n1, pod(Verb::Delete).bound_to("node-1"), true);
        check(
            &n1,
            pod(Verb::Create).subresource("eviction").bound_to("node-1"),
            true,
        );
        check(
            &n1,
            pod(Verb::Create).subresource("eviction").bound_to("node-2"),
            false,
        );
        check(&n1, pod(Verb::Delete).bound_to("node-2"), false);
        check(&n1, pod(Verb::Update).bound_to("node-1"), false);
        check(&n1, pod(Verb::Create), false);
        check(
            &n1,
            pod(Verb::Create).subresource("exec").bound_to("node-1"),
            false,
        );
        check(
            &n1,
            pod(Verb::Create)
                .subresource("serviceaccount")
                .bound_to("node-1"),
            true,
        );
        check(
            &n1,
            pod(Verb::Create)
                .subresource("serviceaccount")
                .bound_to("node-2"),
            false,
        );
        check(&n1, Action::new(Verb::Create, Kind::Event, "x", "e"), true);
        // The recorder reads the Event it counts up, never lists them.
        check(&n1, Action::new(Verb::Get, Kind::Event, "x", "e"), true);
        check(&n1, Action::new(Verb::List, Kind::Event, "", ""), false);
        check(
            &n1,
            Action::new(Verb::Delete, Kind::Namespace, "", "kube-system"),
            false,
        );
    }

    #[test]
    fn edge_and_service_accounts() {
        let edge = User::new(EDGE_USER, &[]);
        check(&edge, Action::new(Verb::Watch, Kind::Service, "", ""), true);
        check(
            &edge,
            Action::new(Verb::Update, Kind::Service, "a", "s").subresource("status"),
            true,
        );
        check(
            &edge,
            Action::new(Verb::Update, Kind::Service, "a", "s"),
            false,
        );
        check(&edge, Action::new(Verb::Create, Kind::Pod, "a", "p"), false);
        check(&edge, Action::new(Verb::Get, Kind::Secret, "a", "s"), false);
        check(&edge, Action::new(Verb::Get, Kind::Event, "a", "e"), true);
        check(
            &edge,
            Action::new(Verb::Create, Kind::Event, "a", "e"),
            true,
        );

        let ingress = sa(INGRESS_NAMESPACE, INGRESS_CONTROLLER);
        check(
            &ingress,
            Action::new(Verb::Watch, Kind::Secret, "", ""),
            true,
        );
        check(
            &ingress,
            Action::new(Verb::Update, Kind::Ingress, "a", "i").subresource("status"),
            true,
        );
        check(
            &ingress,
            Action::new(Verb::Update, Kind::Ingress, "a", "i"),
            false,
        );
        check(
            &ingress,
            Action::new(Verb::Delete, Kind::Pod, "a", "p"),
            false,
        );

        // Another service account, even of the same name elsewhere: nothing.
        check(
            &sa("default", INGRESS_CONTROLLER),
            Action::new(Verb::Get, Kind::Secret, "a", "s"),
            false,
        );
        check(
            &User::new("someone", &["system:authenticated"]),
            Action::new(Verb::List, Kind::Pod, "", ""),
            false,
        );
    }

    #[test]
    fn messages_as_the_api_server_words_them() {
        let got = authorize(
            &node("node-2"),
            &Action::new(Verb::Update, Kind::Pod, "default", "web")
                .subresource("status")
                .bound_to("node-1"),
        );
        assert_eq!(
            got.unwrap_err().0,
            "pods \"web\" is forbidden: User \"system:node:node-2\" cannot update resource \
             \"pods/status\" in API group \"\" in the namespace \"default\": node \"node-2\" \
             can only change pods with spec.nodeName set to itself"
        );
        let got = authorize(
            &User::new(EDGE_USER, &[]),
            &Action::new(Verb::List, Kind::Deployment, "", ""),
        );
        assert_eq!(
            got.unwrap_err().0,
            "deployments is forbidden: User \"system:podnet-edge\" cannot list resource \
             \"deployments\" in API group \"apps\" at the cluster scope"
        );
    }
}
