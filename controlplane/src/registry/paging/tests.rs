//! Pages over the in-memory store: every object once, in key order, with
//! selectors, tokens that do not fit, and writes between pages.

use serde_json::json;

use super::*;
use crate::store::{MemBackend, Storage};

fn registry(pods: usize) -> Registry {
    let r = Registry::new(Storage::new(Box::new(MemBackend::new())).unwrap());
    for ns in ["default", "other"] {
        r.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .unwrap();
    }
    for i in 0..pods {
        r.create(pod(&format!("p{i:03}"), if i % 3 == 0 { "a" } else { "b" }))
            .unwrap();
    }
    r
}

fn pod(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "podnet/http-echo"}]}})
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// Pages through with `limit`, returning each page's size and
/// remainingItemCount, and every name in order.
fn page_through(
    r: &Registry,
    labels: &str,
    limit: usize,
) -> (Vec<(usize, Option<u64>)>, Vec<String>) {
    let labels = LabelSelector::parse(labels).unwrap();
    let mut token = String::new();
    let mut pages = Vec::new();
    let mut all = Vec::new();
    let mut first_revision = None;
    loop {
        let page = r
            .list_page(
                Kind::Pod,
                "",
                &labels,
                &FieldSelector::default(),
                limit,
                &token,
            )
            .unwrap();
        assert_eq!(
            *first_revision.get_or_insert(page.revision),
            page.revision,
            "every page reports the first page's revision"
        );
        pages.push((page.items.len(), page.remaining));
        all.extend(names(&page.items));
        if page.continue_token.is_empty() {
            return (pages, all);
        }
        token = page.continue_token;
        assert!(pages.len() < 1000, "paging does not end");
    }
}

#[test]
fn pages_hold_every_object_once_in_order() {
    let r = registry(10);
    let every: Vec<String> = (0..10).map(|i| format!("p{i:03}")).collect();
    let check = |labels: &str, limit: usize, pages: &[(usize, Option<u64>)], want: &[String]| {
        let (got_pages, got) = page_through(&r, labels, limit);
        assert_eq!(got_pages, pages, "pages of {labels:?} by {limit}");
        assert_eq!(got, want, "items of {labels:?} by {limit}");
    };
    check("", 0, &[(10, None)], &every);
    check("", 4, &[(4, Some(6)), (4, Some(2)), (2, None)], &every);
    check("", 5, &[(5, Some(5)), (5, None)], &every);
    check("", 10, &[(10, None)], &every);
    check("", 11, &[(10, None)], &every);
    let one_by_one: Vec<(usize, Option<u64>)> = (1..10)
        .rev()
        .map(|left| (1, Some(left)))
        .chain([(1, None)])
        .collect();
    check("", 1, &one_by_one, &every);
    // Selectors filter while reading: pages are full until the last, and
    // the remaining count is not known.
    let a: Vec<String> = ["p000", "p003", "p006", "p009"].map(String::from).into();
    check("app=a", 2, &[(2, None), (2, None)], &a);
    check("app=a", 3, &[(3, None), (1, None)], &a);
    check("app=none", 3, &[(0, None)], &[]);
}

#[test]
fn pages_after_the_first_see_the_store_as_it_is_then() {
    let r = registry(6);
    let everything = LabelSelector::everything();
    let fields = FieldSelector::default();
    let first = r
        .list_page(Kind::Pod, "", &everything, &fields, 3, "")
        .unwrap();
    assert_eq!(names(&first.items), ["p000", "p001", "p002"]);
    // Behind the token, ahead of it, and deleted ahead of it.
    r.create(pod("p0005", "a")).unwrap();
    r.create(pod("p0045", "a")).unwrap();
    r.delete(&ObjectKey::new(Kind::Pod, "default", "p004"), None, "")
        .unwrap();
    let rest = r
        .list_page(
            Kind::Pod,
            "",
            &everything,
            &fields,
            0,
            &first.continue_token,
        )
        .unwrap();
    assert_eq!(names(&rest.items), ["p003", "p0045", "p005"]);
    assert_eq!(rest.revision, first.revision);
    assert!(rest.continue_token.is_empty());
}

#[test]
fn a_token_that_does_not_fit_is_refused_with_the_reason() {
    let r = registry(4);
    let everything = LabelSelector::everything();
    let fields = FieldSelector::default();
    let page = r
        .list_page(Kind::Pod, "default", &everything, &fields, 2, "")
        .unwrap();
    let check = |kind: Kind, namespace: &str, token: &str, reason: &str| {
        let err = r
            .list_page(kind, namespace, &everything, &fields, 2, token)
            .unwrap_err();
        assert!(matches!(err, ApiError::Continue(_)), "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with("continue token is not valid: ") && message.contains(reason),
            "{token:?}: {message}"
        );
        assert!(
            message.ends_with("list again without it to start over"),
            "{message}"
        );
    };
    check(Kind::Pod, "default", "zz", "not a token this API issued");
    check(Kind::Pod, "default", "abc", "not a token this API issued");
    check(Kind::Pod, "default", "7b7d", "not a token this API issued");
    check(
        Kind::Pod,
        "default",
        &encode_token(1, "Pod/default/x").replace("31", "32"),
        "version 2",
    );
    check(
        Kind::Pod,
        "other",
        &page.continue_token,
        "another kind or namespace",
    );
    check(
        Kind::Service,
        "default",
        &page.continue_token,
        "another kind or namespace",
    );
    // The same list, in every namespace, may continue it.
    let all = r
        .list_page(Kind::Pod, "", &everything, &fields, 2, &page.continue_token)
        .unwrap();
    assert_eq!(names(&all.items), ["p002", "p003"]);
}
