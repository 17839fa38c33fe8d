//! Route table building and request routing, table-driven through
//! [`check`], which compares a one-line rendering of the outcome.

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

fn rule(host: &str, paths: Vec<Value>) -> Value {
    json!({"host": host, "http": {"paths": paths}})
}

fn rules(rules: Vec<Value>) -> Value {
    json!({"rules": rules})
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
        }
    }

    fn table(&self) -> RouteTable {
        RouteTable::build(&RouteInput {
            ingresses: &self.ingresses,
            classes: &self.classes,
            services: &self.services,
            slices: &self.slices,
        })
    }
}

fn table(ingresses: Vec<Value>) -> RouteTable {
    World::new(ingresses).table()
}

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

// ---- hosts ----------------------------------------------------------------

#[test]
fn renders_a_full_backend() {
    let t = table(vec![ing(
        "shop",
        0,
        rules(vec![rule(
            "shop.example.com",
            vec![path("/api", "Prefix", "api")],
        )]),
    )]);
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
    let t = table(vec![
        ing(
            "wild",
            0,
            rules(vec![rule("*.foo.com", vec![path("/", "Prefix", "a")])]),
        ),
        ing(
            "exact",
            1,
            rules(vec![rule("bar.foo.com", vec![path("/x", "Prefix", "bb")])]),
        ),
        ing(
            "any",
            2,
            rules(vec![rule("", vec![path("/", "Prefix", "ccc")])]),
        ),
    ]);
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
    let t = table(vec![ing(
        "wild",
        0,
        rules(vec![rule("*.foo.com", vec![path("/", "Prefix", "a")])]),
    )]);
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
    let t = table(vec![ing(
        "wild",
        0,
        rules(vec![
            rule("*.foo.com", vec![path("/", "Prefix", "a")]),
            rule("*.bar.foo.com", vec![path("/", "Prefix", "bb")]),
        ]),
    )]);
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
    let t = table(vec![ing(
        "shop",
        0,
        rules(vec![
            rule("Shop.Example.com", vec![path("/", "Prefix", "a")]),
            rule("*.Wild.com.", vec![path("/", "Prefix", "bb")]),
        ]),
    )]);
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
    let t = table(vec![ing(
        "any",
        0,
        rules(vec![rule("", vec![path("/", "Prefix", "a")])]),
    )]);
    check_svc(
        &t,
        &[
            ("[::1]:80", "/", "a"),
            ("[fe80::1%25eth0]", "/", "a"),
            ("[", "/", "a"),
            ("fe80::1", "/", "a"),
        ],
    );
    assert_eq!(request_host("[::1]:8080"), "::1");
    assert_eq!(request_host("fe80::1"), "fe80::1");
    assert_eq!(request_host("Example.COM.:8443"), "example.com");
    assert_eq!(request_host("example.com:"), "example.com");
}

#[test]
fn invalid_rule_hosts_match_nothing() {
    let t = table(vec![ing(
        "bad",
        0,
        rules(vec![
            rule("foo.*.com", vec![path("/", "Prefix", "a")]),
            rule("*", vec![path("/", "Prefix", "a")]),
            rule(".", vec![path("/", "Prefix", "a")]),
            rule("*.", vec![path("/", "Prefix", "a")]),
        ]),
    )]);
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
    let t = table(vec![
        ing(
            "one",
            0,
            rules(vec![rule("m.com", vec![path("/a", "Prefix", "a")])]),
        ),
        ing(
            "two",
            1,
            rules(vec![rule("M.com", vec![path("/b", "Prefix", "bb")])]),
        ),
    ]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule(
            "h.com",
            vec![
                path("/foo", "Prefix", "a"),
                path("/foo", "Exact", "bb"),
                path("/foo", "ImplementationSpecific", "ccc"),
            ],
        )]),
    )]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule("h.com", vec![path("/Foo/", "Exact", "a")])]),
    )]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule(
            "h.com",
            vec![
                path("/foo", "Prefix", "a"),
                path("/bar/", "Prefix", "bb"),
                path("/aaa/bbb", "Prefix", "ccc"),
            ],
        )]),
    )]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule("h.com", vec![path("/", "Prefix", "a")])]),
    )]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule(
            "h.com",
            vec![
                path("/foo", "ImplementationSpecific", "a"),
                json!({"path": "/bar", "backend": backend("bb", json!(80))}),
                json!({"pathType": "ImplementationSpecific", "backend": backend("ccc", json!(80))}),
            ],
        )]),
    )]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule(
            "h.com",
            vec![path("/", "Regex", "a"), path("/x", "Prefix", "bb")],
        )]),
    )]);
    check_svc(&t, &[("h.com", "/x", "bb"), ("h.com", "/", "-")]);
}

#[test]
fn longest_path_wins_across_ingresses() {
    let t = table(vec![
        ing(
            "old",
            0,
            rules(vec![rule(
                "h.com",
                vec![path("/", "Prefix", "a"), path("/api/v1", "Prefix", "api")],
            )]),
        ),
        ing(
            "new",
            5,
            rules(vec![rule("h.com", vec![path("/api", "Prefix", "bb")])]),
        ),
    ]);
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
    let conflict = |svc: &str| rules(vec![rule("h.com", vec![path("/x", "Prefix", svc)])]);
    // Listed newest first: order of input must not matter.
    let t = table(vec![
        ing("zz-new", 9, conflict("bb")),
        ing("mm-old", 1, conflict("a")),
    ]);
    check(
        &t,
        &[(
            "h.com",
            "/x",
            "default/mm-old [h.com /x (Prefix)] -> default/a:80 10.0.1.1:8080",
        )],
    );
    // Same creation time: namespace/name decides.
    let t = table(vec![
        ing("b", 3, conflict("bb")),
        ing("a", 3, conflict("a")),
    ]);
    check_svc(&t, &[("h.com", "/x", "a")]);
    // An unparseable timestamp counts as newest.
    let mut broken = ing("a", 0, conflict("a"));
    broken["metadata"]["creationTimestamp"] = json!("yesterday");
    let t = table(vec![broken, ing("b", 59, conflict("bb"))]);
    check_svc(&t, &[("h.com", "/x", "bb")]);
}

// ---- default backends -----------------------------------------------------

#[test]
fn default_backend_of_the_host_owner_then_oldest_then_not_found() {
    let t = table(vec![
        ing(
            "global",
            0,
            json!({"defaultBackend": backend("a", json!(80))}),
        ),
        ing(
            "shop",
            1,
            json!({"defaultBackend": backend("bb", json!(80)),
                   "rules": [rule("shop.com", vec![path("/api", "Prefix", "api")])]}),
        ),
        ing(
            "blog",
            2,
            rules(vec![rule("blog.com", vec![path("/", "Exact", "ccc")])]),
        ),
    ]);
    check(
        &t,
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
    let t = table(vec![ing(
        "blog",
        2,
        rules(vec![rule("blog.com", vec![path("/", "Exact", "ccc")])]),
    )]);
    check(
        &t,
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

// ---- backends -------------------------------------------------------------

#[test]
fn service_port_by_number_and_by_name() {
    let p = |p: &str, port: Value| json!({"path": p, "pathType": "Prefix", "backend": backend("web", port)});
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule(
            "h.com",
            vec![
                p("/num", json!(80)),
                p("/name", json!("http")),
                p("/unnamed", json!(9000)),
                p("/nope", json!(8080)),
                p("/nope-name", json!("grpc")),
            ],
        )]),
    )]);
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
    let mut w = World::new(vec![ing(
        "p",
        0,
        rules(vec![rule("h.com", vec![path("/", "Prefix", "web")])]),
    )]);
    w.services = services;
    w.slices = slices;
    w.table()
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
    let cases: Vec<(RouteTable, &str)> = vec![
        (
            web_world(vec![], vec![web_slices.clone()]),
            "service \"default/web\" not found",
        ),
        (
            web_world(vec![other_ns], vec![web_slices]),
            "service \"default/web\" not found",
        ),
        (
            web_world(vec![external], vec![]),
            "service \"default/web\" is of type ExternalName, which podnet's ingress does not route to",
        ),
        (
            web_world(vec![udp], vec![]),
            "service \"default/web\" port 80 is UDP, ingress needs TCP",
        ),
        (
            web_world(vec![web.clone()], vec![]),
            "service \"default/web\" has no ready endpoints",
        ),
        (
            web_world(
                vec![web.clone()],
                vec![web_slice(
                    "s",
                    json!([{"addresses": ["10.0.0.9"], "conditions": {"ready": false}}]),
                )],
            ),
            "service \"default/web\" has no ready endpoints",
        ),
    ];
    for (t, reason) in cases {
        match t.route("h.com", "/") {
            Outcome::Unavailable(u) => {
                assert_eq!(u.reason, reason);
                assert_eq!(u.ingress, ("default".to_string(), "p".to_string()));
                assert_eq!(u.rule, "h.com / (Prefix)");
                assert_eq!(u.service, ("default".to_string(), "web".to_string()));
            }
            other => panic!("expected unavailable ({reason}), got {other:?}"),
        }
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
    let mut i = ing(
        "p",
        0,
        rules(vec![rule("h.com", vec![path("/", "Prefix", "web")])]),
    );
    i["metadata"]["namespace"] = json!("prod");
    let mut w = World::new(vec![i]);
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
    let t = table(vec![ing(
        "p",
        0,
        rules(vec![rule(
            "h.com",
            vec![
                p(
                    "/res",
                    json!({"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "b"}}),
                ),
                p("/noport", json!({"service": {"name": "web"}})),
                p("/nosvc", json!({})),
                p(
                    "/badport",
                    json!({"service": {"name": "web", "port": {"number": 70000}}}),
                ),
            ],
        )]),
    )]);
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

fn classy(name: &str, class: Option<&str>, legacy: Option<&str>) -> Value {
    let mut spec = rules(vec![rule(
        &format!("{name}.com"),
        vec![path("/", "Prefix", "a")],
    )]);
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
    let mut w = World::new(ingresses);
    w.classes = classes;
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

    // Ours not default: classless Ingresses are someone else's.
    assert_eq!(
        served_by(
            vec![ours.clone(), internal.clone(), nginx.clone()],
            ingresses()
        ),
        ["explicit", "legacy", "second"]
    );
    // Ours default: classless ones are ours too.
    assert_eq!(
        served_by(vec![our_default_class(), nginx.clone()], ingresses()),
        ["classless", "explicit", "legacy"]
    );
    // Another controller's default class is not ours.
    assert_eq!(
        served_by(vec![ours.clone(), nginx_default], ingresses()),
        ["explicit", "legacy"]
    );
    // "True" is not "true", as upstream.
    let mut shouting = ours.clone();
    shouting["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "True"});
    assert_eq!(
        served_by(vec![shouting], ingresses()),
        ["explicit", "legacy"]
    );
    // No classes at all: nothing is served.
    assert!(served_by(vec![], ingresses()).is_empty());
    // Routing follows: nginx's Ingress host is not routed.
    let mut w = World::new(ingresses());
    w.classes = vec![ours, nginx];
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
    let mut deleted = ing(
        "deleted",
        0,
        rules(vec![rule("h.com", vec![path("/", "Prefix", "a")])]),
    );
    deleted["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:00:00Z");
    let mut null_deletion = ing(
        "alive",
        1,
        rules(vec![rule("h.com", vec![path("/", "Prefix", "bb")])]),
    );
    null_deletion["metadata"]["deletionTimestamp"] = Value::Null;
    let t = table(vec![
        deleted,
        null_deletion,
        Value::Null,
        json!(42),
        json!("ingress"),
        json!({"metadata": 1, "spec": {"rules": "no", "tls": {"x": 1}, "defaultBackend": 3}}),
        json!({"spec": {"rules": [1, {"host": 2, "http": {"paths": [null, {"path": 5, "backend": []}]}}]}}),
    ]);
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

fn pair(ns: &str, name: &str) -> Option<(String, String)> {
    Some((ns.to_string(), name.to_string()))
}

#[test]
fn tls_sni_exact_then_wildcard() {
    let mut prod = ing(
        "prod",
        5,
        tls(json!([{"hosts": ["*.shop.com"], "secretName": "wild-cert"}])),
    );
    prod["metadata"]["namespace"] = json!("prod");
    let t = table(vec![
        prod,
        ing(
            "exact",
            1,
            tls(
                json!([{"hosts": ["www.shop.com", "Api.Shop.com"], "secretName": "www-cert"},
                       {"hosts": ["nosecret.com"]}]),
            ),
        ),
    ]);
    assert_eq!(t.tls_secret("www.shop.com"), pair("default", "www-cert"));
    assert_eq!(t.tls_secret("API.shop.com."), pair("default", "www-cert"));
    assert_eq!(t.tls_secret("img.shop.com"), pair("prod", "wild-cert"));
    assert_eq!(t.tls_secret("a.img.shop.com"), None);
    assert_eq!(t.tls_secret("shop.com"), None);
    assert_eq!(t.tls_secret("nosecret.com"), None);
    assert_eq!(t.tls_secret(""), None);
    assert_eq!(
        t.tls_secrets(),
        vec![
            ("default".to_string(), "www-cert".to_string()),
            ("prod".to_string(), "wild-cert".to_string())
        ]
    );
}

#[test]
fn tls_conflicts_go_to_the_oldest_and_hostless_entries_cover_rule_hosts() {
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
        ing(
            "hostless",
            0,
            json!({"tls": [{"secretName": "rule-cert"}],
                   "rules": [rule("b.com", vec![]), rule("a.com", vec![]), rule("*.c.com", vec![])]}),
        ),
    ]);
    // Listed hosts beat an older entry that lists none.
    assert_eq!(t.tls_secret("a.com"), pair("default", "old-cert"));
    assert_eq!(t.tls_secret("b.com"), pair("default", "rule-cert"));
    assert_eq!(t.tls_secret("x.c.com"), pair("default", "rule-cert"));
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
    assert_eq!(t.tls_secret("a.com"), None);
    assert!(t.tls_secrets().is_empty());
    assert!(t.served().is_empty());
}

// ---- scale and robustness -------------------------------------------------

#[test]
fn a_thousand_ingresses() {
    let ingresses: Vec<Value> = (0..1000)
        .map(|i| {
            let mut v = ing(
                &format!("ing-{i:04}"),
                (i % 60) as u32,
                rules(vec![
                    rule(
                        &format!("host-{}.com", i % 100),
                        vec![
                            path(&format!("/p{i}"), "Prefix", "web"),
                            path("/", "Prefix", "a"),
                        ],
                    ),
                    rule(
                        "*.wild.com",
                        vec![path(&format!("/w{i}"), "Exact", "api")],
                    ),
                ]),
            );
            v["spec"]["tls"] = json!([{"hosts": [format!("host-{}.com", i % 100)], "secretName": format!("s{i}")}]);
            v
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
    match t.route("host-7.com", "/") {
        Outcome::Backend(b) => assert_eq!(b.ingress.1, "ing-0007"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn empty_table_routes_nothing() {
    let t = RouteTable::default();
    assert_eq!(t.route("a.com", "/"), Outcome::NotFound);
    assert_eq!(t.tls_secret("a.com"), None);
    assert!(t.served().is_empty());
}

proptest! {
    #[test]
    fn route_never_panics(host in any::<String>(), req_path in any::<String>()) {
        let t = table(vec![
            ing("a", 0, json!({"defaultBackend": backend("a", json!(80)),
                "rules": [rule("h.com", vec![path("/x", "Prefix", "a"), path("/é", "ImplementationSpecific", "bb")]),
                          rule("*.h.com", vec![path("/", "Exact", "gone")]),
                          rule("", vec![path("/ü/", "Prefix", "ccc")])]})),
        ]);
        let _ = t.route(&host, &req_path);
        let _ = t.tls_secret(&host);
    }

    #[test]
    fn route_never_panics_near_rule_hosts(
        host in "[\\[\\]:.*a-zA-Z0-9]{0,12}(h\\.com)?[.:0-9\\]]{0,4}",
        req_path in "[/xé]{0,6}",
    ) {
        let t = table(vec![ing("a", 0, rules(vec![
            rule("h.com", vec![path("/x", "Prefix", "a"), path("/é", "ImplementationSpecific", "bb")]),
            rule("*.h.com", vec![path("/", "Exact", "a")]),
        ]))]);
        let _ = t.route(&host, &req_path);
    }
}
