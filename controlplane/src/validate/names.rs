//! The field-level checks of object metadata: labels and annotations, by
//! the name formats of `podnet_proto::model::names`.

use std::collections::BTreeMap;

pub(super) use podnet_proto::model::names::{
    dns1035_label, dns1123_label, dns1123_subdomain, label_value, port_name, qualified_name,
};

use super::field::{Errors, FieldPath};

/// `TotalAnnotationSizeLimitB`: keys and values of all annotations together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// `ValidateLabels`: every key a qualified name, every value a label value;
/// errors at the map's path, as Kubernetes reports them.
pub(super) fn validate_labels(
    labels: Option<&BTreeMap<String, String>>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    for (k, v) in labels.into_iter().flatten() {
        errs.invalid_each(path, k, qualified_name(k));
        errs.invalid_each(path, v, label_value(v));
    }
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitively) and
/// the whole map stays under 256 KiB.
pub(super) fn validate_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    let Some(annotations) = annotations else {
        return;
    };
    let mut total = 0;
    for (k, v) in annotations {
        errs.invalid_each(path, k, qualified_name(&k.to_ascii_lowercase()));
        total += k.len() + v.len();
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.too_long(path, ANNOTATIONS_MAX_BYTES);
    }
}
