//! The environment a container starts with, as the kubelet builds it
//! (`makeEnvironmentVariables` and `getServiceEnvVarMap` in
//! pkg/kubelet/kubelet_pods.go, `FromServices` in pkg/kubelet/envvars):
//! the image's `PATH`, the runtime's `HOSTNAME` and `HOME`, the container's
//! `env`, and the Docker-links-style variables of Services.
//!
//! Service variables come from the Services with a cluster IP (not
//! headless, not ExternalName) in the pod's namespace, unless the pod sets
//! `enableServiceLinks: false`, plus the `kubernetes` Service of `default`
//! always; a Service of the pod's own namespace named `kubernetes` wins
//! over it. The container's own `env` wins over all of them.
//!
//! Pure: the caller passes the Services the node knows when the container
//! starts. Deliberately not here: `$(VAR)` expansion in values, `envFrom`
//! and `valueFrom` (a `valueFrom` entry has the empty value the runtime
//! reads from the spec).

use std::collections::BTreeMap;

use podnet_proto::model::view::{Protocol, ServiceView};
use serde_json::Value;

/// The `PATH` of the built-in images (a Debian-like image's default).
pub const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The home directory the runtime sets for root, the images' user.
const HOME: &str = "/root";
/// The Services the kubelet always injects, from `default`.
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// `makeEnvVariableName`: upper case, `-` as `_`.
fn variable_name(service: &str) -> String {
    service.to_ascii_uppercase().replace('-', "_")
}

/// The variables of one Service (`FromServices` for one Service), in the
/// kubelet's order; none for a Service without a cluster IP or ports.
fn from_service(service: ServiceView<'_>) -> Vec<(String, String)> {
    let Some(ip) = service.cluster_ips().first().copied() else {
        return Vec::new();
    };
    let ports: Vec<_> = service
        .ports()
        .filter_map(|p| Some((p.name(), p.port()?, p.protocol().unwrap_or_default())))
        .collect();
    let Some(&(_, first_port, _)) = ports.first() else {
        return Vec::new();
    };
    let prefix = variable_name(service.meta().name());
    let mut vars = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_owned()),
        (format!("{prefix}_SERVICE_PORT"), first_port.to_string()),
    ];
    for (name, port, _) in &ports {
        if !name.is_empty() {
            vars.push((
                format!("{prefix}_SERVICE_PORT_{}", variable_name(name)),
                port.to_string(),
            ));
        }
    }
    // The Docker link variables (`makeLinkVariables`).
    for (i, (_, port, protocol)) in ports.iter().enumerate() {
        let proto = protocol_lower(*protocol);
        let url = format!("{proto}://{ip}:{port}");
        if i == 0 {
            vars.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{port}_{}", protocol.as_str());
        vars.push((port_prefix.clone(), url));
        vars.push((format!("{port_prefix}_PROTO"), proto.to_owned()));
        vars.push((format!("{port_prefix}_PORT"), port.to_string()));
        vars.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
    }
    vars
}

fn protocol_lower(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// `getServiceEnvVarMap`: the Service variables for a pod in `namespace`,
/// from `services` (Service objects of every namespace).
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a Value>,
    namespace: &str,
    enable_service_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<&str, ServiceView<'a>> = BTreeMap::new();
    for service in services.into_iter().map(ServiceView) {
        if service.cluster_ips().is_empty() {
            continue;
        }
        let meta = service.meta();
        let name = meta.name();
        if meta.namespace() == "default" && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(service);
        } else if meta.namespace() == namespace && enable_service_links {
            chosen.insert(name, service);
        }
    }
    chosen.into_values().flat_map(from_service).collect()
}

/// The whole environment of a container: `PATH`, `HOSTNAME`, the
/// container's `env` in spec order (a later duplicate replaces an earlier
/// one, and any of them replaces `PATH` or `HOSTNAME`), the Service
/// variables the container does not set, sorted by name, and `HOME` unless
/// set.
pub fn container_env(
    hostname: &str,
    spec_env: &[(String, String)],
    services: BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".to_owned(), IMAGE_PATH.to_owned()),
        ("HOSTNAME".to_owned(), hostname.to_owned()),
    ];
    for (name, value) in spec_env {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1.clone_from(value),
            None => env.push((name.clone(), value.clone())),
        }
    }
    for (name, value) in services {
        if !spec_env.iter().any(|(n, _)| *n == name) {
            env.push((name, value));
        }
    }
    if !env.iter().any(|(n, _)| n == "HOME") {
        env.push(("HOME".to_owned(), HOME.to_owned()));
    }
    env
}

/// `spec.enableServiceLinks` of a pod; unset is true.
pub fn enable_service_links(pod: &Value) -> bool {
    pod.pointer("/spec/enableServiceLinks")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(namespace: &str, name: &str, cluster_ip: &str, ports: Value) -> Value {
        json!({
            "metadata": {"namespace": namespace, "name": name},
            "spec": {"clusterIP": cluster_ip, "ports": ports},
        })
    }

    fn check(services: &[Value], namespace: &str, links: bool, expected: &[(&str, &str)]) {
        let got = service_env(services, namespace, links);
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, expected, "namespace {namespace}, links {links}");
    }

    fn kubernetes() -> Value {
        service(
            "default",
            "kubernetes",
            "10.96.0.1",
            json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
        )
    }

    const KUBERNETES_VARS: &[(&str, &str)] = &[
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
        ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_443_TCP_PORT", "443"),
        ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
    ];

    #[test]
    fn services_of_the_namespace_and_the_master() {
        let web = service(
            "default",
            "my-web",
            "10.96.0.12",
            json!([{"port": 80}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
        );
        let mut expected = KUBERNETES_VARS.to_vec();
        expected.extend([
            ("MY_WEB_SERVICE_HOST", "10.96.0.12"),
            ("MY_WEB_SERVICE_PORT", "80"),
            ("MY_WEB_SERVICE_PORT_DNS_UDP", "53"),
            ("MY_WEB_PORT", "tcp://10.96.0.12:80"),
            ("MY_WEB_PORT_80_TCP", "tcp://10.96.0.12:80"),
            ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
            ("MY_WEB_PORT_80_TCP_PORT", "80"),
            ("MY_WEB_PORT_80_TCP_ADDR", "10.96.0.12"),
            ("MY_WEB_PORT_53_UDP", "udp://10.96.0.12:53"),
            ("MY_WEB_PORT_53_UDP_PROTO", "udp"),
            ("MY_WEB_PORT_53_UDP_PORT", "53"),
            ("MY_WEB_PORT_53_UDP_ADDR", "10.96.0.12"),
        ]);
        check(&[kubernetes(), web.clone()], "default", true, &expected);
        // Another namespace sees only the master Service.
        check(&[kubernetes(), web.clone()], "other", true, KUBERNETES_VARS);
        // enableServiceLinks: false keeps only the master Service.
        check(&[kubernetes(), web], "default", false, KUBERNETES_VARS);
    }

    #[test]
    fn services_without_a_cluster_ip_have_no_variables() {
        let headless = service("a", "db", "None", json!([{"port": 5432}]));
        let external = json!({
            "metadata": {"namespace": "a", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        });
        let portless = service("a", "odd", "10.96.0.9", json!([]));
        check(&[headless, external, portless], "a", true, &[]);
        check(&[], "a", true, &[]);
    }

    #[test]
    fn the_namespace_s_own_kubernetes_service_wins() {
        let own = service("a", "kubernetes", "10.96.0.99", json!([{"port": 80}]));
        let expected = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.99"),
            ("KUBERNETES_SERVICE_PORT", "80"),
            ("KUBERNETES_PORT", "tcp://10.96.0.99:80"),
            ("KUBERNETES_PORT_80_TCP", "tcp://10.96.0.99:80"),
            ("KUBERNETES_PORT_80_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_80_TCP_PORT", "80"),
            ("KUBERNETES_PORT_80_TCP_ADDR", "10.96.0.99"),
        ];
        // Whatever the order the node lists them in.
        check(&[kubernetes(), own.clone()], "a", true, &expected);
        check(&[own, kubernetes()], "a", true, &expected);
    }

    #[test]
    fn container_env_order_and_precedence() {
        let services = service_env(&[kubernetes()], "default", true);
        let env = container_env(
            "web-0",
            &[
                ("PORT".into(), "8080".into()),
                ("KUBERNETES_SERVICE_HOST".into(), "override".into()),
                ("PORT".into(), "9090".into()),
                ("PATH".into(), "/bin".into()),
            ],
            services,
        );
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOSTNAME",
                "PORT",
                "KUBERNETES_SERVICE_HOST",
                "KUBERNETES_PORT",
                "KUBERNETES_PORT_443_TCP",
                "KUBERNETES_PORT_443_TCP_ADDR",
                "KUBERNETES_PORT_443_TCP_PORT",
                "KUBERNETES_PORT_443_TCP_PROTO",
                "KUBERNETES_SERVICE_PORT",
                "KUBERNETES_SERVICE_PORT_HTTPS",
                "HOME",
            ]
        );
        let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(value("PATH"), Some("/bin"));
        assert_eq!(value("HOSTNAME"), Some("web-0"));
        assert_eq!(value("PORT"), Some("9090"));
        assert_eq!(value("KUBERNETES_SERVICE_HOST"), Some("override"));
        assert_eq!(value("HOME"), Some("/root"));
    }

    #[test]
    fn enable_service_links_defaults_to_true() {
        assert!(enable_service_links(&json!({"spec": {}})));
        assert!(!enable_service_links(
            &json!({"spec": {"enableServiceLinks": false}})
        ));
    }
}
