//! Label and field selectors with Kubernetes semantics.
//!
//! Label selector strings follow `kubectl -l`: `a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x,y)`, `a` (exists), `!a` (does not exist),
//! joined by commas (AND). An empty selector matches everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selector {selector:?}: {reason}")]
pub struct InvalidSelector {
    /// The selector as given, cut short when it is too long to repeat.
    pub selector: String,
    pub reason: String,
}

/// The longest label or field selector accepted, in bytes. Kubernetes has
/// no limit of its own beyond the request size; a selector is a handful of
/// terms of keys (at most 316 bytes) and values (at most 63), so 8 KiB
/// leaves room for any real one and keeps a refusal small enough to send.
pub const MAX_SELECTOR_LEN: usize = 8192;

/// How much of a refused selector its error repeats.
const SHOWN_LEN: usize = 200;

/// `s` cut at [`SHOWN_LEN`] bytes (on a character boundary), marked `...`.
fn shown(s: &str) -> String {
    if s.len() <= SHOWN_LEN {
        return s.to_string();
    }
    let mut end = SHOWN_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Refuses a selector longer than [`MAX_SELECTOR_LEN`] before parsing it.
fn check_len(s: &str) -> Result<(), InvalidSelector> {
    if s.len() > MAX_SELECTOR_LEN {
        return Err(InvalidSelector {
            selector: shown(s),
            reason: format!(
                "it is {} bytes long; a selector may be at most {MAX_SELECTOR_LEN} bytes",
                s.len()
            ),
        });
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector: a conjunction of requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses `kubectl -l` syntax.
    pub fn parse(s: &str) -> Result<LabelSelector, InvalidSelector> {
        check_len(s)?;
        let err = |reason: &str| InvalidSelector {
            selector: shown(s),
            reason: reason.to_string(),
        };
        let mut requirements = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::DoesNotExist(valid_key(key.trim()).map_err(|r| err(&r))?)
            } else if let Some((key, rest)) = split_set_op(term, " notin ") {
                Requirement::NotIn(
                    valid_key(key).map_err(|r| err(&r))?,
                    parse_set(rest).map_err(|r| err(&r))?,
                )
            } else if let Some((key, rest)) = split_set_op(term, " in ") {
                Requirement::In(
                    valid_key(key).map_err(|r| err(&r))?,
                    parse_set(rest).map_err(|r| err(&r))?,
                )
            } else if let Some((key, value)) = term.split_once("!=") {
                Requirement::NotIn(
                    valid_key(key.trim()).map_err(|r| err(&r))?,
                    vec![value.trim().to_string()],
                )
            } else if let Some((key, value)) =
                term.split_once("==").or_else(|| term.split_once('='))
            {
                Requirement::In(
                    valid_key(key.trim()).map_err(|r| err(&r))?,
                    vec![value.trim().to_string()],
                )
            } else {
                Requirement::Exists(valid_key(term).map_err(|r| err(&r))?)
            };
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    /// From `matchLabels` alone (Service selectors, ReplicaSet templates).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement::In(k.clone(), vec![v.clone()]))
                .collect(),
        }
    }

    /// From a Kubernetes `LabelSelector` (matchLabels and matchExpressions).
    pub fn from_k8s(sel: &meta::LabelSelector) -> Result<LabelSelector, InvalidSelector> {
        let mut out = sel
            .match_labels
            .as_ref()
            .map(LabelSelector::from_labels)
            .unwrap_or_default();
        for expr in sel.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            let err = |reason: &str| InvalidSelector {
                selector: expr.key.clone(),
                reason: reason.to_string(),
            };
            let req = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(err("operator In/NotIn needs values"));
                }
                "In" => Requirement::In(expr.key.clone(), values),
                "NotIn" => Requirement::NotIn(expr.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(err("operator Exists/DoesNotExist takes no values"));
                }
                "Exists" => Requirement::Exists(expr.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(expr.key.clone()),
                other => {
                    return Err(err(&format!(
                        "unknown operator {other:?}: In, NotIn, Exists or DoesNotExist"
                    )));
                }
            };
            out.requirements.push(req);
        }
        Ok(out)
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_set_op<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    term.find(op)
        .map(|i| (term[..i].trim(), term[i + op.len()..].trim()))
}

fn parse_set(s: &str) -> Result<Vec<String>, String> {
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("expected a set like (a,b), found {s:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn valid_key(key: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

/// A field selector over an object's JSON: `spec.nodeName=node-1,status.phase!=Failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub const SUPPORTED: [&'static str; 4] = [
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
    ];

    pub fn parse(s: &str) -> Result<FieldSelector, InvalidSelector> {
        check_len(s)?;
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(InvalidSelector {
                    selector: shown(s),
                    reason: format!("{term:?} is not path=value"),
                });
            };
            let path = path.trim();
            if !FieldSelector::SUPPORTED.contains(&path) {
                return Err(InvalidSelector {
                    selector: shown(s),
                    reason: format!(
                        "field {path:?} is not supported: {}",
                        FieldSelector::SUPPORTED.join(", ")
                    ),
                });
            }
            terms.push((path.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn matches(&self, object: &serde_json::Value) -> bool {
        self.terms.iter().all(|(path, equal, value)| {
            let found = path
                .split('.')
                .try_fold(object, |v, part| v.get(part))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            (found == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_longer_than_the_limit_are_refused_without_being_repeated() {
        for (len, refused) in [(MAX_SELECTOR_LEN, false), (MAX_SELECTOR_LEN + 1, true)] {
            let labels = format!("a={}", "x".repeat(len - 2));
            let fields = format!("metadata.name={}", "x".repeat(len - 14));
            assert_eq!((labels.len(), fields.len()), (len, len));
            for result in [
                LabelSelector::parse(&labels).err(),
                FieldSelector::parse(&fields).err(),
            ] {
                let too_long = result.is_some_and(|e| {
                    let text = e.to_string();
                    assert!(text.len() < 600, "the error repeats the selector: {text}");
                    text.contains("at most 8192 bytes")
                });
                assert_eq!(too_long, refused, "{len} bytes");
            }
        }
        let e = LabelSelector::parse(&"é".repeat(MAX_SELECTOR_LEN)).unwrap_err();
        assert!(e.selector.ends_with("..."), "{e}");
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(selector: &str, pairs: &[(&str, &str)], expected: bool) {
        let sel = LabelSelector::parse(selector).unwrap();
        assert_eq!(
            sel.matches(&labels(pairs)),
            expected,
            "{selector} on {pairs:?}"
        );
    }

    #[test]
    fn label_selector_semantics() {
        check("", &[], true);
        check("app=web", &[("app", "web")], true);
        check("app==web", &[("app", "db")], false);
        check("app!=web", &[], true);
        check("app!=web", &[("app", "web")], false);
        check("env in (a, b),app", &[("env", "b"), ("app", "x")], true);
        check("env in (a,b)", &[("env", "c")], false);
        check("env notin (a,b)", &[], true);
        check("!canary", &[("canary", "1")], false);
        check("!canary,app=web", &[("app", "web")], true);
    }

    #[test]
    fn label_selector_errors_name_the_problem() {
        let err = LabelSelector::parse("app in a,b").unwrap_err();
        assert!(err.reason.contains("expected a set"), "{err}");
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selector_on_json() {
        let pod = serde_json::json!({"metadata": {"name": "p"}, "spec": {"nodeName": "node-1"}});
        assert!(
            FieldSelector::parse("spec.nodeName=node-1")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("spec.nodeName!=node-1")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("spec.nodeName=")
                .unwrap()
                .matches(&serde_json::json!({}))
        );
        assert!(FieldSelector::parse("spec.foo=1").is_err());
    }
}
