//! `-o jsonpath=TEMPLATE`, as kubectl prints it: literal text with
//! `{EXPR}` parts, where EXPR is kubectl's JSONPath (`.items[0].status.podIP`,
//! `.items[*].metadata.name`, `.metadata.labels.app`) or a quoted string
//! (`{"\n"}`). The queries are run by `serde_json_path` (RFC 9535) after
//! the kubectl spelling is turned into it; several results are printed
//! separated by spaces, strings bare and anything else as JSON, as kubectl
//! does. Deliberately not here: `{range}`/`{end}` loops.

use serde_json::Value;
use serde_json_path::JsonPath;

/// One part of a template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Query(JsonPath),
}

/// A parsed template, ready to be applied to objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `template`; the error says what and where, as kubectl's
    /// "error parsing jsonpath" does.
    pub fn parse(template: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = closing_brace(after)
                .ok_or_else(|| format!("error parsing jsonpath {template}, unclosed action"))?;
            let expr = after[..close].trim();
            parts.push(part(expr).map_err(|e| format!("error parsing jsonpath {template}, {e}"))?);
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The template applied to `v`.
    pub fn render(&self, v: &Value) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Query(path) => {
                    let found: Vec<String> = path
                        .query(v)
                        .all()
                        .into_iter()
                        .map(|value| match value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    out.push_str(&found.join(" "));
                }
            }
        }
        out
    }
}

/// The `}` that closes an action, skipping those inside quotes.
fn closing_brace(s: &str) -> Option<usize> {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '}') => return Some(i),
            _ => {}
        }
        escaped = false;
    }
    None
}

fn part(expr: &str) -> Result<Part, String> {
    if let Some(literal) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        return Ok(Part::Text(unescape(literal)));
    }
    if expr == "end" || expr.starts_with("range") {
        return Err("range and end are not supported by podnet's jsonpath".into());
    }
    let query = if expr.starts_with('$') {
        expr.to_string()
    } else if expr.starts_with('.') || expr.starts_with('[') {
        format!("${}", kubectl_filters(expr))
    } else if expr.is_empty() {
        "$".to_string()
    } else {
        format!("$.{}", kubectl_filters(expr))
    };
    JsonPath::parse(&query)
        .map(Part::Query)
        .map_err(|e| format!("{expr:?}: {e}"))
}

/// kubectl writes filters `[?(@.name=="x")]`; RFC 9535 has no parentheses
/// there: `[?@.name=="x"]`.
fn kubectl_filters(expr: &str) -> String {
    expr.replace("[?(", "[?").replace(")]", "]")
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(template: &str, expected: &str) {
        let pods = json!({"kind": "List", "items": [
            {"metadata": {"name": "web-1", "labels": {"app": "web"}}, "status": {"podIP": "10.244.1.3"}, "spec": {"ports": [80]}},
            {"metadata": {"name": "web-2", "labels": {"app": "web"}}, "status": {"podIP": "10.244.2.3"}, "spec": {"ports": [81]}},
        ]});
        let t = Template::parse(template).unwrap_or_else(|e| panic!("{template}: {e}"));
        assert_eq!(t.render(&pods), expected, "{template}");
    }

    #[test]
    fn templates_print_as_kubectl_prints_them() {
        check("{.items[0].status.podIP}", "10.244.1.3");
        check("{.items[*].metadata.name}", "web-1 web-2");
        check("ip={.items[1].status.podIP}:8080", "ip=10.244.2.3:8080");
        check(r#"{.items[0].metadata.name}{"\n"}"#, "web-1\n");
        check("{.items[0].spec.ports}", "[80]");
        check(
            r#"{.items[?(@.metadata.name=="web-2")].status.podIP}"#,
            "10.244.2.3",
        );
        check("{.items[5].status.podIP}", "");
        check("no braces", "no braces");
    }

    #[test]
    fn bad_templates_say_what() {
        for (template, part) in [
            ("{.items[0", "unclosed action"),
            ("{range .items[*]}{.metadata.name}{end}", "not supported"),
            ("{.items[}", "error parsing jsonpath"),
        ] {
            let err = Template::parse(template).unwrap_err();
            assert!(err.contains(part), "{template}: {err}");
        }
    }
}
