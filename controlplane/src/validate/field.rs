//! Field paths and field errors worded the way the Kubernetes API server
//! words them (`k8s.io/apimachinery/pkg/util/validation/field`), so a user
//! who knows `kubectl`'s 422 answers recognises podnet's.

use std::fmt;

use serde::Serialize;

/// One invalid field: where, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path from the object's root, with `[i]` for list items and
    /// `[key]` for map entries: `spec.containers[0].ports[0].containerPort`.
    pub path: String,
    /// Kubernetes' wording: `Invalid value: 70000: must be between 1 and
    /// 65535, inclusive`, `Required value`, `Unsupported value: ...`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A field path under construction. Cheap enough to clone per field: the
/// validators walk small objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FieldPath(String);

impl FieldPath {
    pub(super) fn new(root: &str) -> FieldPath {
        FieldPath(root.to_string())
    }

    /// A struct field: `spec` + `containers` is `spec.containers`.
    pub(super) fn child(&self, name: &str) -> FieldPath {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// A list item: `spec.containers[0]`.
    pub(super) fn index(&self, i: usize) -> FieldPath {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// A map entry: `resources.requests[cpu]`.
    pub(super) fn key(&self, k: &str) -> FieldPath {
        FieldPath(format!("{}[{k}]", self.0))
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `path` is this path or lies inside it.
    pub(super) fn contains(&self, path: &str) -> bool {
        match path.strip_prefix(self.0.as_str()) {
            Some(rest) => self.0.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
            None => false,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Renders a value the way the API server prints it in `Invalid value: X`:
/// strings quoted, numbers bare, structures as JSON.
pub(super) fn shown(value: impl Serialize) -> String {
    // Serializing plain data (strings, numbers, string-keyed maps) to JSON
    // cannot fail; the fallback only keeps this total.
    serde_json::to_string(&value).unwrap_or_else(|_| "<unprintable>".to_string())
}

/// Collects every field error of one object, like the API server's
/// `field.ErrorList`: validation goes on after the first problem. Rules that
/// accept a value podnet does not act on leave a warning beside the errors.
#[derive(Debug, Default)]
pub(super) struct Errors {
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl Errors {
    fn push(&mut self, path: &FieldPath, message: String) {
        self.errors.push(FieldError {
            path: path.as_str().to_string(),
            message,
        });
    }

    /// An error worded elsewhere, as the API server words it (the
    /// NetworkPolicy rules of `podnet-netpol`).
    pub(super) fn worded(&mut self, path: &str, message: String) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message,
        });
    }

    pub(super) fn required(&mut self, path: &FieldPath, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push(path, message);
    }

    pub(super) fn invalid(&mut self, path: &FieldPath, value: impl Serialize, detail: &str) {
        self.push(path, format!("Invalid value: {}: {detail}", shown(value)));
    }

    /// `field.NotSupported`: a value outside a fixed set.
    pub(super) fn unsupported(&mut self, path: &FieldPath, value: &str, supported: &[&str]) {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            path,
            format!(
                "Unsupported value: {}: supported values: {list}",
                shown(value)
            ),
        );
    }

    pub(super) fn duplicate(&mut self, path: &FieldPath, value: impl Serialize) {
        self.push(path, format!("Duplicate value: {}", shown(value)));
    }

    pub(super) fn forbidden(&mut self, path: &FieldPath, detail: &str) {
        self.push(path, format!("Forbidden: {detail}"));
    }

    pub(super) fn too_long(&mut self, path: &FieldPath, max_bytes: usize) {
        self.push(
            path,
            format!("Too long: must have at most {max_bytes} bytes"),
        );
    }

    /// One `Invalid value` per message, the way Kubernetes reports each
    /// failed rule of a name check separately.
    pub(super) fn invalid_each(&mut self, path: &FieldPath, value: &str, messages: Vec<String>) {
        for message in messages {
            self.invalid(path, value, &message);
        }
    }

    /// `ValidateNonnegativeField`.
    pub(super) fn non_negative(&mut self, path: &FieldPath, value: Option<i64>) {
        if let Some(v) = value
            && v < 0
        {
            self.invalid(path, v, "must be greater than or equal to 0");
        }
    }

    /// `field.TooMany`.
    pub(super) fn too_many(&mut self, path: &FieldPath, actual: usize, max: usize) {
        self.push(
            path,
            format!("Too many: {actual}: must have at most {max} items"),
        );
    }

    /// Accepted, but without effect in podnet: `path: why`.
    pub(super) fn warn(&mut self, path: &FieldPath, why: &str) {
        self.warnings.push(format!("{path}: {why}"));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub(super) fn into_vec(self) -> Vec<FieldError> {
        self.errors
    }

    /// The errors and the warnings.
    pub(super) fn into_parts(self) -> (Vec<FieldError>, Vec<String>) {
        (self.errors, self.warnings)
    }
}
