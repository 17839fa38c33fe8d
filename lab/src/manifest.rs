//! Reading Kubernetes manifests: multi-document YAML (or JSON) into
//! Kubernetes JSON objects, with errors that say file, line and column.
//!
//! `List` objects are flattened into their items, as kubectl does. Parsing
//! is separate from reading the file so it is testable. Validation is the
//! control plane's job; this only turns text into objects.

use std::path::Path;

use serde_json::Value;

/// Bad input from a user's file, with where it was wrong. Exits with 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Documents one manifest may hold: kubectl has no limit, and the YAML
/// parser's default (1,024) is below what a generated manifest of many
/// pods holds. The parser's other limits (events, nesting, aliases, input
/// size) still stop YAML bombs.
const MAX_DOCUMENTS: usize = 100_000;

/// Parses every document of `text`; `origin` names it in errors.
pub fn parse(origin: &str, text: &str) -> Result<Vec<Value>, InputError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: MAX_DOCUMENTS,
        },
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| yaml_error(origin, &e))?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        match doc {
            Value::Null => {}
            Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = o
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                out.extend(items);
            }
            Value::Object(_) => out.push(doc),
            other => {
                return Err(InputError(format!(
                    "{origin}: document {} is not a Kubernetes object (found {})",
                    i + 1,
                    kind_of(&other)
                )));
            }
        }
    }
    Ok(out)
}

/// A YAML or schema error as `ORIGIN:LINE:COLUMN: what`, without the
/// location serde-saphyr also writes into its message.
pub(crate) fn yaml_error(origin: &str, e: &serde_saphyr::Error) -> InputError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("");
    match e.location() {
        Some(loc) => {
            let own = format!("error: line {} column {}: ", loc.line(), loc.column());
            let what = first.strip_prefix(own.as_str()).unwrap_or(first);
            InputError(format!("{origin}:{}:{}: {what}", loc.line(), loc.column()))
        }
        None => InputError(format!("{origin}: {first}")),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads and parses a manifest file, or standard input for `-`.
pub fn read(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| InputError(format!("cannot read standard input: {e}")))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?
    };
    Ok(parse(&path.display().to_string(), &text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents_and_lists() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\nkind: List\nitems:\n- {kind: Pod}\n- {kind: Pod}\n";
        let docs = parse("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1]["kind"], "Pod");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let err = parse("bad.yaml", "kind: Pod\nmetadata:\n  name: [unclosed\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.yaml:"), "{err}");
        let parts: Vec<&str> = err.splitn(4, ':').collect();
        assert!(
            parts[1].parse::<u32>().is_ok() && parts[2].parse::<u32>().is_ok(),
            "{err}"
        );
        let many: String = (0..2000)
            .map(|i| format!("---\nkind: Namespace\nmetadata: {{name: n{i}}}\n"))
            .collect();
        assert_eq!(parse("many.yaml", &many).unwrap().len(), 2000);
        let err = parse("s.yaml", "just a string\n").unwrap_err().to_string();
        assert!(err.contains("not a Kubernetes object"), "{err}");
    }
}
