//! Route table building and request routing, table-driven: [`routes`]
//! builds the Ingresses from one row per path rule, and [`check`],
//! [`check_svc`] and [`check_tls`] compare each case's outcome.

use proptest::prelude::*;
use serde_json::json;

use super::*;

// ---- fixtures -------------------------------------------------------------

/// Our class, the default one.
fn our_default_class() -> Value {
    json!({"metadata": {"name": "podnet", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
           "spec": {"controller": CONTROLLER_NAME}})
}

fn class(name: &str, controller: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"controller": controller}})
}

/// An Ingress in `default` of class `podnet`, created `minute` minutes
/// after a fixed instant (so tests say which is older).
fn ing(name: &str, minute: u32, spec: Value) -> Value {
    let mut spec = spec;
    if let Some(s) = spec.as_object_mut() {
        s.entry("ingressClassName").or_insert(json!("podnet"));
    }
    json!({"metadata": {"name": name, "namespace": "default",
                        "creationTimestamp": format!("2024-05-01T10:{minute:02}:00Z")},
           "spec": spec})
}

/// A service backend: `port` is a number (`80`) or a name (`"http"`).
fn backend(svc: &str, port: Value) -> Value {
    let port = if port.is_number() {
        json!({"number": port})
    } else {
        json!({"name": port})
    };
    json!({"service": {"name": svc, "port": port}})
}

/// A path to service `svc` port 80.
fn path(p: &str, ty: &str, svc: &str) -> Value {
    json!({"path": p, "pathType": ty, "backend": backend(svc, json!(80))})
}

/// One rule for `host` with hand-written `paths`.
fn rule(host: &str, paths: Vec<Value>) -> Value {
    json!({"host": host, "http": {"paths": paths}})
}

/// One path rule: (ingress, minute, host, path, pathType, service).
type Row<'a> = (&'a str, u32, &'a str, &'a str, &'a str, &'a str);

/// The Ingresses of `rows` ([`ing`]): consecutive rows of the same
/// (ingress, minute) make one Ingress, and consecutive rows of the same
/// host in it one rule; each path goes to its service's port 80.
fn routes(rows: &[Row]) -> Vec<Value> {
    /// (ingress, minute, rules), a rule being (host, paths).
    type Draft<'a> = (&'a str, u32, Vec<(&'a str, Vec<Value>)>);
    let mut ingresses: Vec<Draft> = Vec::new();
    for &(name, minute, host, p, ty, svc) in rows {
        let path = path(p, ty, svc);
        match ingresses.last_mut() {
            Some((n, m, rules)) if (*n, *m) == (name, minute) => match rules.last_mut() {
                Some((h, paths)) if *h == host => paths.push(path),
                _ => rules.push((host, vec![path])),
            },
            _ => ingresses.push((name, minute, vec![(host, vec![path])])),
        }
    }
    ingresses
        .into_iter()
        .map(|(name, minute, rules)| {
            let rules: Vec<Value> = rules.into_iter().map(|(h, ps)| rule(h, ps)).collect();
            ing(name, minute, json!({"rules": rules}))
        })
        .collect()
}

/// Service `name` in `default`: port 80 named `http` (target 8080 in its
/// slice) and unnamed port 9000 (target 9090), with one ready endpoint
/// `10.0.<n>.1` where n is the name's length, so outcomes show which
/// service was chosen.
fn svc(name: &str) -> (Value, Value) {
    let ip = format!("10.0.{}.1", name.len());
    let service = json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"port": 9000, "targetPort": 9090}]}});
    let slice = json!({"metadata": {"name": format!("{name}-abc"), "namespace": "default",
                                    "labels": {SERVICE_NAME_LABEL: name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9090}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]});
    (service, slice)
}

/// The objects of one test; services `a`, `bb`, `ccc`, `web` and `api`
/// exist unless a test says otherwise.
struct World {
    ingresses: Vec<Value>,
    classes: Vec<Value>,
    services: Vec<Value>,
    slices: Vec<Value>,
    /// The controller's `--default-backend-service`.
    default_service: Option<(&'static str, &'static str)>,
}

impl World {
    fn new(ingresses: Vec<Value>) -> World {
        let (services, slices) = ["a", "bb", "ccc", "web", "api"]
            .into_iter()
            .map(svc)
            .unzip();
        World {
            ingresses,
            classes: vec![our_default_class()],
            services,
            slices,
            default_service: None,
        }
    }

    fn table(&self) -> RouteTable {
        RouteTable::build(&RouteInput {
            ingresses: &self.ingresses,
            classes: &self.classes,
            services: &self.services,
            slices: &self.slices,
            default_service: self.default_service,
            family: podnet_proto::model::network::IpFamily::V4,
        })
    }
}

fn table(ingresses: Vec<Value>) -> RouteTable {
    World::new(ingresses).table()
}

// ---- checks ---------------------------------------------------------------

fn render(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Backend(b) => {
            let eps: Vec<String> = b.endpoints.iter().map(|e| e.to_string()).collect();
            format!(
                "{}/{} [{}] -> {}/{}:{} {}",
                b.ingress.0,
                b.ingress.1,
                b.rule,
                b.service.0,
                b.service.1,
                b.port,
                eps.join(",")
            )
        }
        Outcome::NotFound => "not found".to_string(),
        Outcome::Unavailable(u) => format!(
            "{}/{} [{}] unavailable ({}/{}): {}",
            u.ingress.0, u.ingress.1, u.rule, u.service.0, u.service.1, u.reason
        ),
    }
}

/// Routes each (host, path) and compares the rendered outcome.
#[track_caller]
fn check(table: &RouteTable, cases: &[(&str, &str, &str)]) {
    for (host, path, expected) in cases {
        let got = render(&table.route(host, path));
        assert_eq!(&got, expected, "route({host:?}, {path:?})");
    }
}

/// Routes each (host, path) and compares only the chosen service name
/// (`-` for NotFound, `!reason` for Unavailable).
#[track_caller]
fn check_svc(table: &RouteTable, cases: &[(&str, &str, &str)]) {
    for (host, path, expected) in cases {
        let got = match table.route(host, path) {
            Outcome::Backend(b) => b.service.1,
            Outcome::NotFound => "-".to_string(),
            Outcome::Unavailable(u) => format!("!{}", u.reason),
        };
        assert_eq!(&got, expected, "route({host:?}, {path:?})");
    }
}

/// Looks up each SNI name's TLS Secret, `namespace/name` or `-` for none.
#[track_caller]
fn check_tls(table: &RouteTable, cases: &[(&str, &str)]) {
    for (sni, expected) in cases {
        let got = table
            .tls_secret(sni)
            .map_or("-".to_string(), |(ns, name)| format!("{ns}/{name}"));
        assert_eq!(&got, expected, "tls_secret({sni:?})");
    }
}

// ---- hosts ----------------------------------------------------------------

#[test]
fn renders_a_full_backend() {
    let t = table(routes(&[(
        "shop",
        0,
        "shop.example.com",
        "/api",
        "Prefix",
        "api",
    )]));
    check(
        &t,
        &[
            (
                "shop.example.com",
                "/api/v1",
                "default/shop [shop.example.com /api (Prefix)] -> default/api:80 10.0.3.1:8080",
            ),
            ("shop.example.com", "/other", "not found"),
            ("other.example.com", "/api", "not found"),
        ],
    );
}

#[test]
fn exact_host_beats_wildcard_beats_no_host() {
    let t = table(routes(&[
        ("wild", 0, "*.foo.com", "/", "Prefix", "a"),
        ("exact", 1, "bar.foo.com", "/x", "Prefix", "bb"),
        ("any", 2, "", "/", "Prefix", "ccc"),
    ]));
    check_svc(
        &t,
        &[
            ("bar.foo.com", "/x", "bb"),
            // Only the exact host's rules count, even when none matches.
            ("bar.foo.com", "/y", "-"),
            ("baz.foo.com", "/y", "a"),
            ("foo.com", "/y", "ccc"),
            ("elsewhere.org", "/", "ccc"),
        ],
    );
}

#[test]
fn wildcard_matches_one_label_only() {
    let t = table(routes(&[("wild", 0, "*.foo.com", "/", "Prefix", "a")]));
    check_svc(
        &t,
        &[
            ("bar.foo.com", "/", "a"),
            ("foo.com", "/", "-"),
            ("baz.bar.foo.com", "/", "-"),
            (".foo.com", "/", "-"),
            ("barfoo.com", "/", "-"),
        ],
    );
}

#[test]
fn nested_wildcards_pick_the_one_label_match() {
    let t = table(routes(&[
        ("wild", 0, "*.foo.com", "/", "Prefix", "a"),
        ("wild", 0, "*.bar.foo.com", "/", "Prefix", "bb"),
    ]));
    check_svc(
        &t,
        &[
            ("x.foo.com", "/", "a"),
            ("bar.foo.com", "/", "a"),
            ("x.bar.foo.com", "/", "bb"),
            ("y.x.bar.foo.com", "/", "-"),
        ],
    );
}

#[test]
fn host_with_port_case_and_trailing_dot() {
    let t = table(routes(&[
        ("shop", 0, "Shop.Example.com", "/", "Prefix", "a"),
        ("shop", 0, "*.Wild.com.", "/", "Prefix", "bb"),
    ]));
    check_svc(
        &t,
        &[
            ("shop.example.com", "/", "a"),
            ("SHOP.EXAMPLE.COM:8080", "/", "a"),
            ("shop.example.com.", "/", "a"),
            ("shop.example.com.:443", "/", "a"),
            ("  shop.example.com ", "/", "a"),
            ("X.WILD.COM:80", "/", "bb"),
            ("[::1]:80", "/", "-"),
            ("[::1]", "/", "-"),
            ("::1", "/", "-"),
            ("", "/", "-"),
        ],
    );
}

#[test]
fn ipv6_literal_hosts_reach_rules_without_host() {
    let t = table(routes(&[("any", 0, "", "/", "Prefix", "a")]));
    check_svc(
        &t,
        &[
            ("[::1]:80", "/", "a"),
            ("[fe80::1%25eth0]", "/", "a"),
            ("[", "/", "a"),
            ("fe80::1", "/", "a"),
        ],
    );
    for (host, expected) in [
        ("[::1]:8080", "::1"),
        ("fe80::1", "fe80::1"),
        ("Example.COM.:8443", "example.com"),
        ("example.com:", "example.com"),
    ] {
        assert_eq!(request_host(host), expected, "request_host({host:?})");
    }
}

#[test]
fn invalid_rule_hosts_match_nothing() {
    let t = table(routes(&[
        ("bad", 0, "foo.*.com", "/", "Prefix", "a"),
        ("bad", 0, "*", "/", "Prefix", "a"),
        ("bad", 0, ".", "/", "Prefix", "a"),
        ("bad", 0, "*.", "/", "Prefix", "a"),
    ]));
    check_svc(
        &t,
        &[
            ("foo.x.com", "/", "-"),
            ("anything", "/", "-"),
            ("", "/", "-"),
            ("x.", "/", "-"),
        ],
    );
}

#[test]
fn same_host_in_two_ingresses_is_merged() {
    let t = table(routes(&[
        ("one", 0, "m.com", "/a", "Prefix", "a"),
        ("two", 1, "M.com", "/b", "Prefix", "bb"),
    ]));
    check_svc(
        &t,
        &[
            ("m.com", "/a", "a"),
            ("m.com", "/b/c", "bb"),
            ("m.com", "/c", "-"),
        ],
    );
}

// ---- paths ----------------------------------------------------------------

#[test]
fn exact_beats_prefix_at_the_same_path() {
    let t = table(routes(&[
        ("p", 0, "h.com", "/foo", "Prefix", "a"),
        ("p", 0, "h.com", "/foo", "Exact", "bb"),
        ("p", 0, "h.com", "/foo", "ImplementationSpecific", "ccc"),
    ]));
    check_svc(
        &t,
        &[
            ("h.com", "/foo", "bb"),
            ("h.com", "/foo/", "a"),
            ("h.com", "/foo/x", "a"),
            ("h.com", "/foox", "ccc"),
        ],
    );
}

#[test]
fn exact_matches_only_itself() {
    let t = table(routes(&[("p", 0, "h.com", "/Foo/", "Exact", "a")]));
    check_svc(
        &t,
        &[
            ("h.com", "/Foo/", "a"),
            ("h.com", "/Foo", "-"),
            ("h.com", "/foo/", "-"),
            ("h.com", "/Foo/x", "-"),
        ],
    );
}

#[test]
fn prefix_matches_element_wise() {
    let t = table(routes(&[
        ("p", 0, "h.com", "/foo", "Prefix", "a"),
        ("p", 0, "h.com", "/bar/", "Prefix", "bb"),
        ("p", 0, "h.com", "/aaa/bbb", "Prefix", "ccc"),
    ]));
    check_svc(
        &t,
        &[
            ("h.com", "/foo", "a"),
            ("h.com", "/foo/", "a"),
            ("h.com", "/foo/bar", "a"),
            ("h.com", "/foo//bar", "a"),
            ("h.com", "/foobar", "-"),
            ("h.com", "/Foo", "-"),
            // A trailing slash in the rule path is ignored.
            ("h.com", "/bar", "bb"),
            ("h.com", "/bar/", "bb"),
            ("h.com", "/bar/x", "bb"),
            ("h.com", "/barx", "-"),
            ("h.com", "/aaa/bbb/ccc", "ccc"),
            ("h.com", "/aaa/bbbxyz", "-"),
            ("h.com", "/aaa", "-"),
        ],
    );
}

#[test]
fn root_prefix_matches_everything() {
    let t = table(routes(&[("p", 0, "h.com", "/", "Prefix", "a")]));
    check_svc(
        &t,
        &[
            ("h.com", "/", "a"),
            ("h.com", "/anything/at/all", "a"),
            ("h.com", "", "a"),
            ("h.com", "*", "a"),
        ],
    );
}

#[test]
fn implementation_specific_is_a_string_prefix() {
    let paths = vec![
        path("/foo", "ImplementationSpecific", "a"),
        json!({"path": "/bar", "backend": backend("bb", json!(80))}),
        json!({"pathType": "ImplementationSpecific", "backend": backend("ccc", json!(80))}),
    ];
    let t = table(vec![ing("p", 0, json!({"rules": [rule("h.com", paths)]}))]);
    check_svc(
        &t,
        &[
            ("h.com", "/foo", "a"),
            ("h.com", "/foobar", "a"),
            ("h.com", "/foo/bar", "a"),
            // No pathType: ImplementationSpecific.
            ("h.com", "/barbaz", "bb"),
            // No path: `/`.
            ("h.com", "/fo", "ccc"),
        ],
    );
}

#[test]
fn unknown_path_type_is_skipped() {
    let t = table(routes(&[
        ("p", 0, "h.com", "/", "Regex", "a"),
        ("p", 0, "h.com", "/x", "Prefix", "bb"),
    ]));
    check_svc(&t, &[("h.com", "/x", "bb"), ("h.com", "/", "-")]);
}

#[test]
fn longest_path_wins_across_ingresses() {
    let t = table(routes(&[
        ("old", 0, "h.com", "/", "Prefix", "a"),
        ("old", 0, "h.com", "/api/v1", "Prefix", "api"),
        ("new", 5, "h.com", "/api", "Prefix", "bb"),
    ]));
    check_svc(
        &t,
        &[
            ("h.com", "/api/v1/users", "api"),
            ("h.com", "/api/v2", "bb"),
            ("h.com", "/api", "bb"),
            ("h.com", "/apix", "a"),
        ],
    );
}

#[test]
fn conflicts_go_to_the_oldest_ingress() {
    // Listed newest first: order of input must not matter.
    let t = table(routes(&[
        ("zz-new", 9, "h.com", "/x", "Prefix", "bb"),
        ("mm-old", 1, "h.com", "/x", "Prefix", "a"),
    ]));
    check(
        &t,
        &[(
            "h.com",
            "/x",
            "default/mm-old [h.com /x (Prefix)] -> default/a:80 10.0.1.1:8080",
        )],
    );
    // Same creation time: namespace/name decides.
    let t = table(routes(&[
        ("b", 3, "h.com", "/x", "Prefix", "bb"),
        ("a", 3, "h.com", "/x", "Prefix", "a"),
    ]));
    check_svc(&t, &[("h.com", "/x", "a")]);
    // An unparseable timestamp counts as newest.
    let mut ingresses = routes(&[
        ("a", 0, "h.com", "/x", "Prefix", "a"),
        ("b", 59, "h.com", "/x", "Prefix", "bb"),
    ]);
    ingresses[0]["metadata"]["creationTimestamp"] = json!("yesterday");
    check_svc(&table(ingresses), &[("h.com", "/x", "bb")]);
}

// ---- default backends -----------------------------------------------------

#[test]
fn default_backend_of_the_host_owner_then_oldest_then_not_found() {
    let blog = ("blog", 2, "blog.com", "/", "Exact", "ccc");
    let mut ingresses = routes(&[("shop", 1, "shop.com", "/api", "Prefix", "api"), blog]);
    ingresses[0]["spec"]["defaultBackend"] = backend("bb", json!(80));
    let global = ing(
        "global",
        0,
        json!({"defaultBackend": backend("a", json!(80))}),
    );
    ingresses.insert(0, global);
    check(
        &table(ingresses),
        &[
            (
                "shop.com",
                "/other",
                "default/shop [default backend] -> default/bb:80 10.0.2.1:8080",
            ),
            (
                "blog.com",
                "/x",
                "default/global [default backend] -> default/a:80 10.0.1.1:8080",
            ),
            (
                "unknown.com",
                "/",
                "default/global [default backend] -> default/a:80 10.0.1.1:8080",
            ),
        ],
    );
    check(
        &table(routes(&[blog])),
        &[("blog.com", "/x", "not found"), ("x.com", "/", "not found")],
    );
}

#[test]
fn host_owner_default_backend_applies_without_paths() {
    let t = table(vec![
        ing(
            "global",
            0,
            json!({"defaultBackend": backend("a", json!(80))}),
        ),
        ing(
            "bare",
            1,
            json!({"defaultBackend": backend("bb", json!(80)), "rules": [{"host": "bare.com"}]}),
        ),
    ]);
    check_svc(&t, &[("bare.com", "/", "bb"), ("other.com", "/", "a")]);
}

#[test]
fn unavailable_default_backend_is_reported() {
    let t = table(vec![ing(
        "d",
        0,
        json!({"defaultBackend": backend("gone", json!(80))}),
    )]);
    check(
        &t,
        &[(
            "x.com",
            "/",
            "default/d [default backend] unavailable (default/gone): service \"default/gone\" not found",
        )],
    );
}

#[test]
fn controller_default_backend_comes_after_every_ingress_default() {
    // ingress-nginx: --default-backend-service serves what no rule and no
    // Ingress's defaultBackend takes, on the Service's first port.
    let blog = ("blog", 2, "blog.com", "/", "Exact", "ccc");
    let mut world = World::new(routes(&[blog]));
    world.default_service = Some(("default", "web"));
    check(
        &world.table(),
        &[
            (
                "blog.com",
                "/",
                "default/blog [blog.com / (Exact)] -> default/ccc:80 10.0.3.1:8080",
            ),
            (
                "blog.com",
                "/x",
                "/ [controller default backend] -> default/web:80 10.0.3.1:8080",
            ),
            (
                "x.com",
                "/",
                "/ [controller default backend] -> default/web:80 10.0.3.1:8080",
            ),
        ],
    );
    let mut world = World::new(vec![ing(
        "global",
        0,
        json!({"defaultBackend": backend("a", json!(80))}),
    )]);
    world.default_service = Some(("default", "web"));
    check_svc(&world.table(), &[("x.com", "/", "a")]);
    world.default_service = Some(("other", "gone"));
    world.ingresses.clear();
    check(
        &world.table(),
        &[(
            "x.com",
            "/",
            "/ [controller default backend] unavailable (other/gone): service \"other/gone\" not found",
        )],
    );
}

// ---- backends -------------------------------------------------------------

#[test]
fn service_port_by_number_and_by_name() {
    let p = |p: &str, port: Value| json!({"path": p, "pathType": "Prefix", "backend": backend("web", port)});
    let paths = vec![
        p("/num", json!(80)),
        p("/name", json!("http")),
        p("/unnamed", json!(9000)),
        p("/nope", json!(8080)),
        p("/nope-name", json!("grpc")),
    ];
    let t = table(vec![ing("p", 0, json!({"rules": [rule("h.com", paths)]}))]);
    check(
        &t,
        &[
            (
                "h.com",
                "/num",
                "default/p [h.com /num (Prefix)] -> default/web:80 10.0.3.1:8080",
            ),
            (
                "h.com",
                "/name",
                "default/p [h.com /name (Prefix)] -> default/web:http 10.0.3.1:8080",
            ),
            (
                "h.com",
                "/unnamed",
                "default/p [h.com /unnamed (Prefix)] -> default/web:9000 10.0.3.1:9090",
            ),
            (
                "h.com",
                "/nope",
                "default/p [h.com /nope (Prefix)] unavailable (default/web): service \"default/web\" has no port 8080",
            ),
            (
                "h.com",
                "/nope-name",
                "default/p [h.com /nope-name (Prefix)] unavailable (default/web): service \"default/web\" has no port named \"grpc\"",
            ),
        ],
    );
}

/// One Ingress routing `/` of `h.com` to `web` port 80, with the given
/// services and slices.
fn web_world(services: Vec<Value>, slices: Vec<Value>) -> RouteTable {
    let ingresses = routes(&[("p", 0, "h.com", "/", "Prefix", "web")]);
    World {
        services,
        slices,
        ..World::new(ingresses)
    }
    .table()
}

fn web_slice(name: &str, eps: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
           "endpoints": eps})
}

#[test]
fn unavailable_backends_say_why() {
    let (web, web_slices) = svc("web");
    let external = json!({"metadata": {"name": "web", "namespace": "default"},
                          "spec": {"type": "ExternalName", "externalName": "example.com"}});
    let udp = json!({"metadata": {"name": "web", "namespace": "default"},
                     "spec": {"ports": [{"name": "http", "port": 80, "protocol": "UDP"}]}});
    let other_ns = json!({"metadata": {"name": "web", "namespace": "prod"},
                          "spec": {"ports": [{"name": "http", "port": 80}]}});
    let not_ready = json!([{"addresses": ["10.0.0.9"], "conditions": {"ready": false}}]);
    let cases = [
        (vec![], vec![web_slices.clone()], "not found"),
        (vec![other_ns], vec![web_slices], "not found"),
        (
            vec![external],
            vec![],
            "is of type ExternalName, which podnet's ingress does not route to",
        ),
        (vec![udp], vec![], "port 80 is UDP, ingress needs TCP"),
        (vec![web.clone()], vec![], "has no ready endpoints"),
        (
            vec![web],
            vec![web_slice("s", not_ready)],
            "has no ready endpoints",
        ),
    ];
    // The rendering holds all of it: Ingress, rule, Service and reason.
    for (services, slices, reason) in cases {
        let expected = format!(
            "default/p [h.com / (Prefix)] unavailable (default/web): service \"default/web\" {reason}"
        );
        check(&web_world(services, slices), &[("h.com", "/", &expected)]);
    }
}

#[test]
fn only_ready_endpoints_are_used() {
    let (web, _) = svc("web");
    let t = web_world(
        vec![web],
        vec![
            web_slice(
                "s1",
                json!([
                    {"addresses": ["10.0.0.3"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                    {"addresses": ["10.0.0.1"]},
                    {"addresses": ["10.0.0.4"], "conditions": {}},
                    {"addresses": ["not-an-ip", 7, "fd00::1"], "conditions": {"ready": true}},
                ]),
            ),
            // Endpoints spread over slices, one repeated.
            web_slice("s2", json!([{"addresses": ["10.0.0.5", "10.0.0.3"]}])),
            // Another service's slice, an IPv6 slice, and a slice of the
            // wrong port name contribute nothing.
            json!({"metadata": {"name": "x", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "api"}},
                   "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                   "endpoints": [{"addresses": ["10.9.9.9"]}]}),
            json!({"metadata": {"name": "v6", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
                   "addressType": "IPv6", "ports": [{"name": "http", "port": 8080}],
                   "endpoints": [{"addresses": ["10.9.9.8"]}]}),
            json!({"metadata": {"name": "other-port", "namespace": "default", "labels": {SERVICE_NAME_LABEL: "web"}},
                   "addressType": "IPv4", "ports": [{"name": "metrics", "port": 9100}],
                   "endpoints": [{"addresses": ["10.9.9.7"]}]}),
        ],
    );
    check(
        &t,
        &[(
            "h.com",
            "/",
            "default/p [h.com / (Prefix)] -> default/web:80 10.0.0.1:8080,10.0.0.3:8080,10.0.0.4:8080,10.0.0.5:8080",
        )],
    );
}

#[test]
fn backends_in_the_ingress_namespace() {
    let (mut prod, mut prod_slice) = svc("web");
    prod["metadata"]["namespace"] = json!("prod");
    prod_slice["metadata"]["namespace"] = json!("prod");
    prod_slice["endpoints"][0]["addresses"] = json!(["10.7.7.7"]);
    let mut w = World::new(routes(&[("p", 0, "h.com", "/", "Prefix", "web")]));
    w.ingresses[0]["metadata"]["namespace"] = json!("prod");
    w.services.push(prod);
    w.slices.push(prod_slice);
    check(
        &w.table(),
        &[(
            "h.com",
            "/",
            "prod/p [h.com / (Prefix)] -> prod/web:80 10.7.7.7:8080",
        )],
    );
}

#[test]
fn odd_backends_are_unavailable() {
    let p = |p: &str, backend: Value| json!({"path": p, "pathType": "Prefix", "backend": backend});
    let bucket = json!({"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"});
    let paths = vec![
        p("/res", json!({ "resource": bucket })),
        p("/noport", json!({"service": {"name": "web"}})),
        p("/nosvc", json!({})),
        p(
            "/badport",
            json!({"service": {"name": "web", "port": {"number": 70000}}}),
        ),
    ];
    let t = table(vec![ing("p", 0, json!({"rules": [rule("h.com", paths)]}))]);
    check_svc(
        &t,
        &[
            (
                "h.com",
                "/res",
                "!resource backends are not supported by podnet",
            ),
            (
                "h.com",
                "/noport",
                "!the backend for service \"default/web\" names no port",
            ),
            ("h.com", "/nosvc", "!the backend names no service"),
            (
                "h.com",
                "/badport",
                "!service \"default/web\" has no port 70000",
            ),
        ],
    );
}

// ---- class selection ------------------------------------------------------

/// An Ingress routing `<name>.com` to `a`, with no creation time, and the
/// given class name and legacy class annotation.
fn classy(name: &str, class: Option<&str>, legacy: Option<&str>) -> Value {
    let mut spec = json!({"rules": [rule(&format!("{name}.com"), vec![path("/", "Prefix", "a")])]});
    if let Some(c) = class {
        spec["ingressClassName"] = json!(c);
    }
    let mut v = json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec});
    if let Some(l) = legacy {
        v["metadata"]["annotations"] = json!({LEGACY_CLASS_ANNOTATION: l});
    }
    v
}

fn served_by(classes: Vec<Value>, ingresses: Vec<Value>) -> Vec<String> {
    let w = World {
        classes,
        ..World::new(ingresses)
    };
    w.table().served().into_iter().map(|(_, n)| n).collect()
}

#[test]
fn class_selection() {
    let ingresses = || {
        vec![
            classy("explicit", Some("podnet"), None),
            classy("second", Some("podnet-internal"), None),
            classy("nginx", Some("nginx"), None),
            classy("missing-class", Some("nope"), None),
            classy("classless", None, None),
            classy("legacy", None, Some("podnet")),
            classy("legacy-nginx", None, Some("nginx")),
        ]
    };
    let nginx = class("nginx", "k8s.io/ingress-nginx");
    let mut nginx_default = nginx.clone();
    nginx_default["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    let ours = class("podnet", CONTROLLER_NAME);
    let internal = class("podnet-internal", CONTROLLER_NAME);
    let mut shouting = ours.clone();
    shouting["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "True"});

    let cases: [(Vec<Value>, &[&str]); 5] = [
        // Ours not default: classless Ingresses are someone else's.
        (
            vec![ours.clone(), internal, nginx.clone()],
            &["explicit", "legacy", "second"],
        ),
        // Ours default: classless ones are ours too.
        (
            vec![our_default_class(), nginx.clone()],
            &["classless", "explicit", "legacy"],
        ),
        // Another controller's default class is not ours.
        (vec![ours.clone(), nginx_default], &["explicit", "legacy"]),
        // "True" is not "true", as upstream.
        (vec![shouting], &["explicit", "legacy"]),
        // No classes at all: nothing is served.
        (vec![], &[]),
    ];
    for (classes, expected) in cases {
        assert_eq!(served_by(classes, ingresses()), expected);
    }
    // Routing follows: nginx's Ingress host is not routed.
    let w = World {
        classes: vec![ours, nginx],
        ..World::new(ingresses())
    };
    check_svc(
        &w.table(),
        &[
            ("explicit.com", "/", "a"),
            ("nginx.com", "/", "-"),
            ("legacy-nginx.com", "/", "-"),
        ],
    );
}

#[test]
fn deleted_and_malformed_ingresses_are_ignored() {
    let mut ingresses = routes(&[
        ("deleted", 0, "h.com", "/", "Prefix", "a"),
        ("alive", 1, "h.com", "/", "Prefix", "bb"),
    ]);
    ingresses[0]["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:00:00Z");
    ingresses[1]["metadata"]["deletionTimestamp"] = Value::Null;
    ingresses.extend([
        Value::Null,
        json!(42),
        json!("ingress"),
        json!({"metadata": 1, "spec": {"rules": "no", "tls": {"x": 1}, "defaultBackend": 3}}),
        json!({"spec": {"rules": [1, {"host": 2, "http": {"paths": [null, {"path": 5, "backend": []}]}}]}}),
    ]);
    let t = table(ingresses);
    check_svc(&t, &[("h.com", "/", "bb"), ("x.com", "/", "-")]);
    assert!(
        t.served()
            .contains(&("default".to_string(), "alive".to_string()))
    );
    assert!(!t.served().iter().any(|(_, n)| n == "deleted"));
}

// ---- TLS ------------------------------------------------------------------

fn tls(entries: Value) -> Value {
    json!({"tls": entries})
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(ns, name)| (ns.to_string(), name.to_string()))
        .collect()
}

#[test]
fn tls_sni_exact_then_wildcard() {
    let mut prod = ing(
        "prod",
        5,
        tls(json!([{"hosts": ["*.shop.com"], "secretName": "wild-cert"}])),
    );
    prod["metadata"]["namespace"] = json!("prod");
    let exact = tls(
        json!([{"hosts": ["www.shop.com", "Api.Shop.com"], "secretName": "www-cert"},
                           {"hosts": ["nosecret.com"]}]),
    );
    let t = table(vec![prod, ing("exact", 1, exact)]);
    check_tls(
        &t,
        &[
            ("www.shop.com", "default/www-cert"),
            ("API.shop.com.", "default/www-cert"),
            ("img.shop.com", "prod/wild-cert"),
            ("a.img.shop.com", "-"),
            ("shop.com", "-"),
            ("nosecret.com", "-"),
            ("", "-"),
        ],
    );
    assert_eq!(
        t.tls_secrets(),
        pairs(&[("default", "www-cert"), ("prod", "wild-cert")])
    );
}

#[test]
fn tls_conflicts_go_to_the_oldest_and_hostless_entries_cover_rule_hosts() {
    let hostless = json!({"tls": [{"secretName": "rule-cert"}],
                          "rules": [rule("b.com", vec![]), rule("a.com", vec![]), rule("*.c.com", vec![])]});
    let t = table(vec![
        ing(
            "new",
            9,
            tls(json!([{"hosts": ["a.com"], "secretName": "new-cert"}])),
        ),
        ing(
            "old",
            1,
            tls(json!([{"hosts": ["a.com"], "secretName": "old-cert"}])),
        ),
        ing("hostless", 0, hostless),
    ]);
    check_tls(
        &t,
        &[
            // Listed hosts beat an older entry that lists none.
            ("a.com", "default/old-cert"),
            ("b.com", "default/rule-cert"),
            ("x.c.com", "default/rule-cert"),
        ],
    );
    assert_eq!(t.tls_secrets().len(), 3);
}

#[test]
fn tls_of_unserved_ingresses_is_ignored() {
    let mut other = ing(
        "other",
        0,
        tls(json!([{"hosts": ["a.com"], "secretName": "c"}])),
    );
    other["spec"]["ingressClassName"] = json!("nginx");
    let t = table(vec![other]);
    check_tls(&t, &[("a.com", "-")]);
    assert!(t.tls_secrets().is_empty());
    assert!(t.served().is_empty());
}

// ---- scale and robustness -------------------------------------------------

#[test]
fn a_thousand_ingresses() {
    let ingresses = (0..1000u32)
        .map(|i| {
            let host = format!("host-{}.com", i % 100);
            let spec = json!({
                "rules": [rule(&host, vec![path(&format!("/p{i}"), "Prefix", "web"), path("/", "Prefix", "a")]),
                          rule("*.wild.com", vec![path(&format!("/w{i}"), "Exact", "api")])],
                "tls": [{"hosts": [host], "secretName": format!("s{i}")}]});
            ing(&format!("ing-{i:04}"), i % 60, spec)
        })
        .collect();
    let t = table(ingresses);
    assert_eq!(t.served().len(), 1000);
    assert_eq!(t.tls_secrets().len(), 1000);
    check_svc(
        &t,
        &[
            ("host-7.com", "/p507", "web"),
            ("host-7.com", "/p508", "a"),
            ("x.wild.com", "/w999", "api"),
            ("x.wild.com", "/w1000", "-"),
        ],
    );
    // host-7.com is shared by ing-0007, -0107, …, -0907, created at minutes
    // 7, 47, 27, 7, …: the oldest, by name among minute 7, is ing-0007.
    check(
        &t,
        &[(
            "host-7.com",
            "/",
            "default/ing-0007 [host-7.com / (Prefix)] -> default/a:80 10.0.1.1:8080",
        )],
    );
}

#[test]
fn empty_table_routes_nothing() {
    let t = RouteTable::default();
    check(&t, &[("a.com", "/", "not found")]);
    check_tls(&t, &[("a.com", "-")]);
    assert!(t.served().is_empty());
}

proptest! {
    #[test]
    fn route_never_panics(host in any::<String>(), req_path in any::<String>()) {
        let mut ingresses = routes(&[
            ("a", 0, "h.com", "/x", "Prefix", "a"),
            ("a", 0, "h.com", "/é", "ImplementationSpecific", "bb"),
            ("a", 0, "*.h.com", "/", "Exact", "gone"),
            ("a", 0, "", "/ü/", "Prefix", "ccc"),
        ]);
        ingresses[0]["spec"]["defaultBackend"] = backend("a", json!(80));
        let t = table(ingresses);
        let _ = t.route(&host, &req_path);
        let _ = t.tls_secret(&host);
    }

    #[test]
    fn route_never_panics_near_rule_hosts(
        host in "[\\[\\]:.*a-zA-Z0-9]{0,12}(h\\.com)?[.:0-9\\]]{0,4}",
        req_path in "[/xé]{0,6}",
    ) {
        let t = table(routes(&[
            ("a", 0, "h.com", "/x", "Prefix", "a"),
            ("a", 0, "h.com", "/é", "ImplementationSpecific", "bb"),
            ("a", 0, "*.h.com", "/", "Exact", "a"),
        ]));
        let _ = t.route(&host, &req_path);
    }
}
