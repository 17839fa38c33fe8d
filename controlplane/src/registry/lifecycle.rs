//! The NamespaceLifecycle admission rule on delete: the namespaces a
//! cluster cannot work without may not be deleted. Upstream's immortal
//! namespaces are `default`, `kube-system` and `kube-public`; podnet adds
//! `podnet-ingress`, where its ingress controller lives (deleting it would
//! lose the controller for good: bootstrap only runs at start).
//!
//! `kube-node-lease` stays deletable, as upstream has it. Creating objects
//! in a terminating namespace is not covered: podnet deletes a namespace's
//! contents at once, there is no Terminating phase.

use podnet_proto::model::{Kind, ObjectKey};

use super::bootstrap::INGRESS_NAMESPACE;

/// Namespaces whose deletion is refused.
pub const IMMORTAL_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", INGRESS_NAMESPACE];

/// Whether deleting `key` is admitted; `Err` carries the namespace's name.
pub(super) fn admit_delete(key: &ObjectKey) -> Result<(), String> {
    if key.kind == Kind::Namespace && IMMORTAL_NAMESPACES.contains(&key.name.as_str()) {
        return Err(key.name.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: Kind, namespace: &str, name: &str, refused: bool) {
        let key = ObjectKey::new(kind, namespace, name);
        assert_eq!(admit_delete(&key).is_err(), refused, "{key}");
    }

    #[test]
    fn system_namespaces_may_not_be_deleted() {
        for (kind, namespace, name, refused) in [
            (Kind::Namespace, "", "default", true),
            (Kind::Namespace, "", "kube-system", true),
            (Kind::Namespace, "", "kube-public", true),
            (Kind::Namespace, "", "podnet-ingress", true),
            (Kind::Namespace, "", "kube-node-lease", false),
            (Kind::Namespace, "", "shop", false),
            (Kind::Namespace, "", "kube-systemx", false),
            // Objects inside them may go.
            (Kind::Pod, "kube-system", "coredns-1", false),
            (Kind::Service, "default", "default", false),
        ] {
            check(kind, namespace, name, refused);
        }
    }
}
