//! The pure part of the mirroring controller, table-driven through
//! `check`: each case is an Endpoints object's subsets and the slices they
//! must give, one line per slice; then the rules of what is mirrored, the
//! slices' metadata and names, and a pass over a real registry.

use serde_json::{Value, json};

use super::*;
use crate::registry::Registry;
use crate::store::{MemBackend, Storage};

fn endpoints(subsets: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "db", "namespace": "default", "uid": "ep-uid"},
        "subsets": subsets,
    })
}

fn selectorless() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"ports": [{"name": "sql", "port": 5432}]},
    })
}

/// `IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2(not-ready)`, then
/// `skipped N (invalid M)` when anything was.
fn summary(m: &Mirrored) -> Vec<String> {
    let mut lines: Vec<String> = m
        .slices
        .iter()
        .map(|s| {
            let ports: Vec<String> = list(s, "/ports")
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}/{}",
                        str_at(p, "/name"),
                        p["port"],
                        str_at(p, "/protocol")
                    )
                })
                .collect();
            let mut line = format!("{} [{}]", str_at(s, "/addressType"), ports.join(","));
            for e in list(s, "/endpoints") {
                line.push(' ');
                line.push_str(str_at(e, "/addresses/0"));
                match e["conditions"]["ready"].as_bool() {
                    Some(true) => {}
                    Some(false) => line.push_str("(not-ready)"),
                    None => line.push_str("(unset)"),
                }
            }
            line
        })
        .collect();
    // The summary's order is the keys', not the names'.
    lines.sort();
    if m.skipped > 0 {
        lines.push(format!("skipped {} (invalid {})", m.skipped, m.invalid));
    }
    lines
}

#[track_caller]
fn check(subsets: Value, max: usize, expected: &[&str]) -> Mirrored {
    let m = desired(&endpoints(subsets), &[], &BTreeSet::new(), max);
    assert_eq!(summary(&m), expected);
    m
}

const MAX: usize = DEFAULT_MAX_ENDPOINTS_PER_SUBSET;

#[test]
fn addresses_become_endpoints() {
    // addressToEndpoint: `addresses` are ready, `notReadyAddresses` not,
    // and nothing but `ready` is set.
    check(
        json!([{"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}],
                "notReadyAddresses": [{"ip": "10.0.0.3"}],
                "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}]}]),
        MAX,
        &["IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2 10.0.0.3(not-ready)"],
    );
    // epPortsToEpsPorts: an unnamed port is named "", TCP by default.
    let m = check(
        json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]),
        MAX,
        &["IPv4 [:80/TCP] 10.0.0.1"],
    );
    assert_eq!(
        m.slices[0]["endpoints"][0]["conditions"],
        json!({"ready": true})
    );
    // A subset without ports: a slice without ports.
    let m = check(
        json!([{"addresses": [{"ip": "10.0.0.1"}]}]),
        MAX,
        &["IPv4 [] 10.0.0.1"],
    );
    assert_eq!(m.slices[0].get("ports"), None);
    // No subsets: no slices.
    check(json!([]), MAX, &[]);
}

#[test]
fn subsets_are_repacked_first() {
    // RepackSubsets: subsets with the same ports are one, an address
    // listed twice is one.
    check(
        json!([
            {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "sql", "port": 5432}]},
            {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}], "ports": [{"name": "sql", "port": 5432}]},
        ]),
        MAX,
        &["IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2"],
    );
    // RepackSubsets: not ready trumps ready.
    check(
        json!([
            {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "sql", "port": 5432}]},
            {"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "sql", "port": 5432}]},
        ]),
        MAX,
        &["IPv4 [sql:5432/TCP] 10.0.0.1(not-ready)"],
    );
    // RepackSubsets: addresses are grouped by the ports they offer, so
    // one subset listing two ports for the same addresses as another
    // listing one gives a slice per port set.
    check(
        json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
             "ports": [{"name": "sql", "port": 5432}, {"name": "admin", "port": 9000}]},
            {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "sql", "port": 5432}]},
        ]),
        MAX,
        &[
            "IPv4 [admin:9000/TCP] 10.0.0.1 10.0.0.2",
            "IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2 10.0.0.3",
        ],
    );
    // The same IP for two pods (targetRef uids) is two addresses.
    let m = check(
        json!([{"addresses": [
            {"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "a", "uid": "a"}},
            {"ip": "10.0.0.1", "targetRef": {"kind": "Pod", "name": "b", "uid": "b"}}],
            "ports": [{"name": "sql", "port": 5432}]}]),
        MAX,
        &["IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.1"],
    );
    assert_eq!(m.slices[0]["endpoints"][1]["targetRef"]["name"], "b");
}

#[test]
fn one_slice_per_address_family() {
    // addrTypePortMapKey: IPv4 and IPv6 addresses of one subset go to
    // two slices; an IPv4-mapped IPv6 address is IPv4 (Go's To4).
    check(
        json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}, {"ip": "::ffff:10.0.0.2"}],
                "ports": [{"name": "sql", "port": 5432}]}]),
        MAX,
        &[
            "IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2",
            "IPv6 [sql:5432/TCP] fd00::1",
        ],
    );
}

#[test]
fn addresses_beyond_the_limit_and_invalid_ones_are_skipped() {
    // maxEndpointsPerSubset: ready addresses first, the rest skipped.
    check(
        json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                "notReadyAddresses": [{"ip": "10.0.0.3"}],
                "ports": [{"name": "sql", "port": 5432}]}]),
        2,
        &[
            "IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2",
            "skipped 1 (invalid 0)",
        ],
    );
    // The limit is per subset, not per Endpoints.
    check(
        json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "a", "port": 1}]},
            {"addresses": [{"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}], "ports": [{"name": "b", "port": 2}]},
        ]),
        1,
        &[
            "IPv4 [a:1/TCP] 10.0.0.1",
            "IPv4 [b:2/TCP] 10.0.0.3",
            "skipped 2 (invalid 0)",
        ],
    );
    // An address that is not an IP is skipped and does not count against
    // the limit (repacked addresses are in IP text order, so it comes
    // first).
    check(
        json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "1.2.3"}],
                "ports": [{"name": "sql", "port": 5432}]}]),
        1,
        &["IPv4 [sql:5432/TCP] 10.0.0.1", "skipped 1 (invalid 1)"],
    );
}

/// `endpoints` with `key: value` in its metadata's `field` map.
fn with(mut endpoints: Value, field: &str, key: &str, value: &str) -> Value {
    endpoints["metadata"]
        .as_object_mut()
        .unwrap()
        .entry(field)
        .or_insert_with(|| json!({}))[key] = json!(value);
    endpoints
}

#[test]
fn what_is_mirrored() {
    let ep = endpoints(json!([]));
    let plain = selectorless();
    let mut selector = selectorless();
    selector["spec"]["selector"] = json!({"app": "db"});
    let mut empty_selector = selectorless();
    empty_selector["spec"]["selector"] = json!({});
    let mut external_name = selectorless();
    external_name["spec"]["type"] = json!("ExternalName");
    let cases: Vec<(&str, Value, Option<&Value>, Option<Skip>)> = vec![
        (
            "a Service without a selector",
            ep.clone(),
            Some(&plain),
            None,
        ),
        // shouldMirror and syncEndpoints do not look at the type.
        (
            "an ExternalName Service",
            ep.clone(),
            Some(&external_name),
            None,
        ),
        (
            "syncEndpoints: Service not found",
            ep.clone(),
            None,
            Some(Skip::NoService),
        ),
        (
            "syncEndpoints: the Service has a selector",
            ep.clone(),
            Some(&selector),
            Some(Skip::Selector),
        ),
        (
            "an empty selector is a selector, as for the EndpointSlice controller",
            ep.clone(),
            Some(&empty_selector),
            Some(Skip::Selector),
        ),
        (
            "skipMirror",
            with(ep.clone(), "labels", LABEL_SKIP_MIRROR, "true"),
            Some(&plain),
            Some(Skip::SkipMirrorLabel),
        ),
        (
            "skipMirror: only \"true\" skips",
            with(ep.clone(), "labels", LABEL_SKIP_MIRROR, "false"),
            Some(&plain),
            None,
        ),
        (
            "hasLeaderElection",
            with(ep.clone(), "annotations", ANNOTATION_LEADER, "{}"),
            Some(&plain),
            Some(Skip::LeaderElection),
        ),
        (
            "the Endpoints controller's own object",
            with(
                ep.clone(),
                "labels",
                ENDPOINTS_MANAGED_BY.0,
                ENDPOINTS_MANAGED_BY.1,
            ),
            Some(&plain),
            Some(Skip::EndpointController),
        ),
    ];
    for (what, endpoints, service, expected) in cases {
        assert_eq!(skip(&endpoints, service), expected, "{what}");
    }
}

#[test]
fn slices_carry_the_endpoints_metadata() {
    // newEndpointSlice: labels copied, service-name and managed-by
    // overwritten, annotations but trigger time and last-applied copied,
    // a controller ownerReference to the Endpoints.
    let mut ep = endpoints(json!([{"addresses": [{
        "ip": "10.0.0.1", "hostname": "db-0", "nodeName": "node-1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0", "uid": "pod-uid"}}],
        "ports": [{"name": "sql", "port": 5432, "appProtocol": "postgresql"}]}]));
    ep["metadata"]["labels"] = json!({
        "team": "data",
        LABEL_MANAGED_BY: "someone",
        LABEL_SERVICE_NAME: "other",
    });
    ep["metadata"]["annotations"] = json!({
        "note": "by hand",
        "endpoints.kubernetes.io/last-change-trigger-time": "2025-01-01T00:00:00Z",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    });
    let m = desired(&ep, &[], &BTreeSet::new(), MAX);
    let slice = &m.slices[0];
    assert_eq!(
        slice["metadata"]["labels"],
        json!({
            "team": "data",
            LABEL_MANAGED_BY: CONTROLLER_NAME,
            LABEL_SERVICE_NAME: "db",
        })
    );
    assert_eq!(slice["metadata"]["annotations"], json!({"note": "by hand"}));
    assert_eq!(
        slice["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Endpoints", "name": "db", "uid": "ep-uid",
                "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(slice["metadata"]["namespace"], "default");
    assert_eq!(
        slice["endpoints"][0],
        json!({"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "hostname": "db-0",
               "nodeName": "node-1",
               "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0", "uid": "pod-uid"}})
    );
    assert_eq!(
        slice["ports"],
        json!([{"name": "sql", "port": 5432, "protocol": "TCP", "appProtocol": "postgresql"}])
    );
    // What is written is a valid EndpointSlice.
    crate::validate::validate(slice).unwrap();
    // Without annotations to copy, none.
    let m = desired(
        &endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}]}])),
        &[],
        &BTreeSet::new(),
        MAX,
    );
    assert_eq!(m.slices[0]["metadata"].get("annotations"), None);
}

fn names(m: &Mirrored) -> Vec<&str> {
    m.slices
        .iter()
        .map(|s| str_at(s, "/metadata/name"))
        .collect()
}

#[test]
fn slice_names_are_kept_recycled_or_new() {
    let one =
        json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "sql", "port": 5432}]}]);
    let taken: BTreeSet<String> = ["db-user-made".to_string()].into();
    let first = desired(&endpoints(one.clone()), &[], &taken, MAX);
    let [name] = names(&first)[..] else {
        panic!("{:?}", names(&first))
    };
    assert!(name.starts_with("db-") && name != "db-user-made", "{name}");
    // The same state again: the same slice, so a second pass writes nothing.
    let existing: Vec<&Value> = first.slices.iter().collect();
    assert_eq!(desired(&endpoints(one), &existing, &taken, MAX), first);

    // The port changes: the slice of the old port is recycled.
    let moved =
        json!([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "sql", "port": 5433}]}]);
    let second = desired(&endpoints(moved), &existing, &taken, MAX);
    assert_eq!(names(&second), [name]);
    assert_eq!(second.slices[0]["ports"][0]["port"], 5433);

    // An IPv6 address as well: a new slice beside it; an IPv4 slice is
    // never recycled as IPv6.
    let dual = json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                       "ports": [{"name": "sql", "port": 5432}]}]);
    let third = desired(&endpoints(dual), &existing, &taken, MAX);
    assert_eq!(third.slices.len(), 2);
    assert!(names(&third).contains(&name));
    let v6 = third
        .slices
        .iter()
        .find(|s| s["addressType"] == "IPv6")
        .unwrap();
    assert_ne!(v6["metadata"]["name"], name);

    // Two slices of one key (a user copied one): the first by name stays.
    let mut copy = first.slices[0].clone();
    copy["metadata"]["name"] = json!("db-aaaa");
    let both = [&copy, &first.slices[0]];
    let fourth = desired(
        &endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}],
        "ports": [{"name": "sql", "port": 5432}]}])),
        &both,
        &taken,
        MAX,
    );
    assert_eq!(names(&fourth), ["db-aaaa"]);
}

#[test]
fn updates_touch_only_what_the_controller_owns() {
    let want = desired(
        &endpoints(json!([{"addresses": [{"ip": "10.0.0.1"}]}])),
        &[],
        &BTreeSet::new(),
        MAX,
    )
    .slices
    .remove(0);
    let mut current = want.clone();
    current["metadata"]["uid"] = json!("slice-uid");
    current["metadata"]["annotations"] = json!({});
    assert_eq!(updated(&current, &want), None, "an empty map is no map");
    current["endpoints"][0]["conditions"]["ready"] = json!(false);
    current["metadata"]["annotations"] = json!({"stale": "yes"});
    let next = updated(&current, &want).expect("an update");
    assert_eq!(next["endpoints"], want["endpoints"]);
    assert_eq!(next["metadata"]["uid"], "slice-uid");
    assert_eq!(next["metadata"].get("annotations"), None);
}

fn registry() -> Registry {
    let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
    r.bootstrap(&crate::registry::Addons::dns(0)).unwrap();
    r
}

fn create(r: &Registry, object: Value) -> Value {
    r.create(object).unwrap()
}

fn db_svc() -> Value {
    let mut svc = selectorless();
    svc["metadata"].as_object_mut().unwrap().remove("uid");
    svc
}

fn db_ep() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "db", "namespace": "default", "labels": {"team": "data"}},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "notReadyAddresses": [{"ip": "10.0.0.2"}],
                     "ports": [{"name": "sql", "port": 5432}]}],
    })
}

fn slice(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.9"]}],
    })
}

fn mirrored_slices(r: &Registry) -> Vec<Value> {
    r.list_all(Kind::EndpointSlice, "default")
        .unwrap()
        .into_iter()
        .filter(mirrored)
        .collect()
}

fn key(kind: Kind, name: &str) -> ObjectKey {
    ObjectKey::new(kind, "default", name)
}

#[test]
fn reconcile_mirrors_follows_and_cleans_up() {
    let r = registry();
    create(&r, db_svc());
    let ep = create(&r, db_ep());
    // Neither a user's slice nor the EndpointSlice controller's is touched.
    create(&r, slice("db-by-hand", json!({LABEL_SERVICE_NAME: "db"})));
    crate::controllers::endpointslice::reconcile(&r).unwrap();
    let others = |r: &Registry| {
        let mut all = r.list_all(Kind::EndpointSlice, "").unwrap();
        all.retain(|s| !mirrored(s));
        for s in &mut all {
            s["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion");
        }
        all
    };
    let before = others(&r);
    assert!(before.len() >= 2, "{before:#?}");

    reconcile(&r, MAX).unwrap();
    let slices = mirrored_slices(&r);
    assert_eq!(slices.len(), 1, "{slices:#?}");
    assert_eq!(
        summary(&Mirrored {
            slices: slices.clone(),
            invalid: 0,
            skipped: 0
        }),
        ["IPv4 [sql:5432/TCP] 10.0.0.1 10.0.0.2(not-ready)"]
    );
    assert_eq!(slices[0]["metadata"]["labels"]["team"], "data");
    assert_eq!(
        slices[0]["metadata"]["ownerReferences"][0]["uid"],
        ep["metadata"]["uid"]
    );
    let revision = r.revision().unwrap();
    reconcile(&r, MAX).unwrap();
    assert_eq!(
        r.revision().unwrap(),
        revision,
        "a second pass writes nothing"
    );

    // The Endpoints change: the slice follows, under its name.
    let mut changed = r.must_get(&key(Kind::Endpoints, "db")).unwrap();
    changed["subsets"][0]["addresses"] = json!([{"ip": "10.0.0.3"}]);
    r.update(changed).unwrap();
    reconcile(&r, MAX).unwrap();
    let after = mirrored_slices(&r);
    assert_eq!(after[0]["metadata"]["name"], slices[0]["metadata"]["name"]);
    assert_eq!(after[0]["endpoints"][0]["addresses"][0], "10.0.0.2");
    assert_eq!(after[0]["endpoints"][1]["addresses"][0], "10.0.0.3");

    // A mirrored slice deleted by hand comes back.
    r.delete(&key_of_value(Kind::EndpointSlice, &after[0]), None, "")
        .unwrap();
    reconcile(&r, MAX).unwrap();
    assert_eq!(mirrored_slices(&r).len(), 1);

    // skip-mirror: gone; the label removed: back.
    let mut skipped = r.must_get(&key(Kind::Endpoints, "db")).unwrap();
    skipped["metadata"]["labels"][LABEL_SKIP_MIRROR] = json!("true");
    let skipped = r.update(skipped).unwrap();
    reconcile(&r, MAX).unwrap();
    assert!(mirrored_slices(&r).is_empty());
    let mut unskipped = skipped;
    unskipped["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove(LABEL_SKIP_MIRROR);
    r.update(unskipped).unwrap();
    reconcile(&r, MAX).unwrap();
    assert_eq!(mirrored_slices(&r).len(), 1);

    // The Service gets a selector: gone; loses it: back.
    let mut svc = r.must_get(&key(Kind::Service, "db")).unwrap();
    svc["spec"]["selector"] = json!({"app": "db"});
    let svc = r.update(svc).unwrap();
    reconcile(&r, MAX).unwrap();
    assert!(mirrored_slices(&r).is_empty());
    let mut svc = svc;
    svc["spec"].as_object_mut().unwrap().remove("selector");
    r.update(svc).unwrap();
    reconcile(&r, MAX).unwrap();
    assert_eq!(mirrored_slices(&r).len(), 1);

    // The Service deleted: gone.
    r.delete(&key(Kind::Service, "db"), None, "").unwrap();
    reconcile(&r, MAX).unwrap();
    assert!(mirrored_slices(&r).is_empty());

    // The Endpoints deleted: its slices go with it at once.
    create(&r, db_svc());
    reconcile(&r, MAX).unwrap();
    assert_eq!(mirrored_slices(&r).len(), 1);
    r.delete(&key(Kind::Endpoints, "db"), None, "").unwrap();
    assert!(mirrored_slices(&r).is_empty());

    // Nothing else was touched.
    assert_eq!(others(&r), before);
}

#[test]
fn stale_mirrors_of_a_missing_endpoints_are_deleted() {
    // A mirrored slice whose Endpoints is gone (deleted while the
    // controller was down: only the garbage collector's cascade and this
    // pass see it).
    let r = registry();
    create(
        &r,
        slice(
            "ghost-abcde",
            json!({LABEL_SERVICE_NAME: "ghost", LABEL_MANAGED_BY: CONTROLLER_NAME}),
        ),
    );
    reconcile(&r, MAX).unwrap();
    assert!(mirrored_slices(&r).is_empty());
}

#[test]
fn skipped_addresses_are_reported_once() {
    let r = registry();
    create(&r, db_svc());
    let ep = create(&r, db_ep());
    for _ in 0..3 {
        reconcile(&r, 1).unwrap();
    }
    let events: Vec<Value> = r
        .list_all(Kind::Event, "default")
        .unwrap()
        .into_iter()
        .filter(|e| str_at(e, "/involvedObject/uid") == str_at(&ep, "/metadata/uid"))
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(str_at(e, "/reason"), "TooManyAddressesToMirror");
    assert_eq!(
        str_at(e, "/message"),
        "A max of 1 addresses can be mirrored to EndpointSlices per Endpoints subset. 1 addresses were skipped"
    );
    assert_eq!(str_at(e, "/type"), "Warning");
    assert_eq!(
        str_at(e, "/source/component"),
        "endpoint-slice-mirroring-controller"
    );
    assert_eq!(e["count"], 1);
    assert_eq!(list(&mirrored_slices(&r)[0], "/endpoints").len(), 1);
}
