//! Decoding a JSON body into its typed k8s-openapi model with every type
//! error named by its field path (`spec.replicas: invalid type: string "x",
//! expected i32`).
//!
//! serde stops at the first error; the API server reports them all. So a
//! failed field is reported, replaced in a scratch copy by a stand-in that
//! decodes (the field dropped, or an empty value of some JSON type), and
//! decoding runs again, until the body decodes. The stand-ins are podnet's,
//! not the user's: later errors at or under a patched field are not
//! reported, and the caller suppresses its own validation errors there too.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::field::{FieldError, FieldPath};

/// Bounds the retries on a hostile body; real manifests have a handful of
/// errors at most.
const MAX_PASSES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// The `n`th stand-in for a field that failed to decode: first no value at
/// all (right for every optional field, and for fields podnet's own schema
/// does not know), then an empty value of each JSON type in turn.
fn stand_in(n: usize) -> Option<Option<Value>> {
    Some(match n {
        0 => None,
        1 => Some(Value::String(String::new())),
        2 => Some(Value::from(0)),
        3 => Some(Value::Array(Vec::new())),
        4 => Some(Value::Object(serde_json::Map::new())),
        5 => Some(Value::Bool(false)),
        _ => return None,
    })
}

/// What decoding produced: the typed value when the body (with stand-ins
/// for its bad fields) decodes, and the errors found on the way.
pub(super) struct Decoded<T> {
    pub(super) value: Option<T>,
    pub(super) errors: Vec<FieldError>,
    /// Where stand-ins went: nothing at or under these paths is the user's.
    pub(super) patched: Vec<FieldPath>,
}

pub(super) fn decode<T: DeserializeOwned>(input: &Value) -> Decoded<T> {
    let mut scratch = input.clone();
    let mut out = Decoded {
        value: None,
        errors: Vec::new(),
        patched: Vec::new(),
    };
    // Next stand-in to try, per patched field.
    let mut next: HashMap<Vec<Step>, usize> = HashMap::new();
    for _ in 0..MAX_PASSES {
        let err = match serde_path_to_error::deserialize::<_, T>(&scratch) {
            Ok(value) => {
                out.value = Some(value);
                return out;
            }
            Err(err) => err,
        };
        let message = err.inner().to_string();
        let Some(mut steps) = steps_of(err.path()) else {
            // A path we cannot follow back into the JSON: report it as
            // serde_path_to_error prints it and stop.
            out.errors.push(FieldError {
                path: err.path().to_string(),
                message,
            });
            return out;
        };
        // serde reports a missing field, and an unknown one under
        // `deny_unknown_fields`, at the struct that lacks or holds it.
        let missing = quoted_field(&message, "missing field `").is_some();
        if let Some(field) = quoted_field(&message, "missing field `")
            .or_else(|| quoted_field(&message, "unknown field `"))
            && steps.last() != Some(&Step::Key(field.to_string()))
        {
            steps.push(Step::Key(field.to_string()));
        }
        let path = render(&steps);
        if !out.patched.iter().any(|p| p.contains(path.as_str())) {
            let message = if missing {
                "Required value".to_string()
            } else {
                message
            };
            out.errors.push(FieldError {
                path: path.as_str().to_string(),
                message,
            });
            out.patched.push(path);
        }
        // Dropping a field that is already missing cannot help.
        let n = next
            .entry(steps.clone())
            .or_insert(if missing { 1 } else { 0 });
        let Some(value) = stand_in(*n) else {
            return out;
        };
        *n += 1;
        if !put(&mut scratch, &steps, value) {
            return out;
        }
    }
    out
}

/// `missing field `name``: the name.
fn quoted_field<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

fn steps_of(path: &serde_path_to_error::Path) -> Option<Vec<Step>> {
    path.iter()
        .map(|segment| match segment {
            Segment::Map { key } => Some(Step::Key(key.clone())),
            Segment::Seq { index } => Some(Step::Index(*index)),
            _ => None,
        })
        .collect()
}

/// serde cannot tell a struct field from a map entry, so both print as
/// `.key`.
fn render(steps: &[Step]) -> FieldPath {
    steps
        .iter()
        .fold(FieldPath::default(), |path, step| match step {
            Step::Key(k) => path.child(k),
            Step::Index(i) => path.index(*i),
        })
}

/// Sets (or with `None` removes) the value at `steps`; false when the path
/// does not lead into the JSON.
fn put(root: &mut Value, steps: &[Step], value: Option<Value>) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut node = root;
    for step in parents {
        let child = match (step, node) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k),
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        let Some(child) = child else { return false };
        node = child;
    }
    match (last, node) {
        (Step::Key(k), Value::Object(map)) => {
            match value {
                Some(v) => map.insert(k.clone(), v),
                None => map.remove(k),
            };
            true
        }
        (Step::Index(i), Value::Array(items)) => match items.get_mut(*i) {
            // A list item cannot be dropped without renumbering the rest;
            // null fails to decode and moves on to the next stand-in.
            Some(slot) => {
                *slot = value.unwrap_or(Value::Null);
                true
            }
            None => false,
        },
        _ => false,
    }
}
