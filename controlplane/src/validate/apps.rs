//! apps/v1 Deployment and ReplicaSet: their defaults (`SetDefaults_Deployment`,
//! `SetDefaults_ReplicaSet`) and `ValidateDeploymentSpec` /
//! `ValidateReplicaSetSpec`: a non-empty selector that matches the
//! template's labels, a valid pod template that restarts `Always`, and a
//! rolling-update strategy that can make progress.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use podnet_proto::model::LabelSelector;

use super::field::{Errors, FieldPath};
use super::names::{label_value, qualified_name, validate_labels};
use super::pod::{default_pod_spec, validate_pod_spec};

const STRATEGIES: &[&str] = &["Recreate", "RollingUpdate"];
/// `maxSurge` and `maxUnavailable` when a RollingUpdate strategy gives none.
const DEFAULT_ROLLING_STEP: &str = "25%";

pub(super) fn default_deployment(d: &mut Deployment) {
    let spec = d.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    if strategy.type_.as_deref().is_none_or(str::is_empty) {
        strategy.type_ = Some("RollingUpdate".to_string());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let rolling = strategy.rolling_update.get_or_insert_with(Default::default);
        rolling
            .max_unavailable
            .get_or_insert_with(|| IntOrString::String(DEFAULT_ROLLING_STEP.to_string()));
        rolling
            .max_surge
            .get_or_insert_with(|| IntOrString::String(DEFAULT_ROLLING_STEP.to_string()));
    }
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    if let Some(pod) = &mut spec.template.spec {
        default_pod_spec(pod);
    }
}

pub(super) fn default_replica_set(rs: &mut ReplicaSet) {
    let spec = rs.spec.get_or_insert_with(Default::default);
    spec.replicas.get_or_insert(1);
    if let Some(pod) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
        default_pod_spec(pod);
    }
}

/// `selector_given`: whether the body had a selector at all, which the
/// typed model cannot tell from an empty one.
pub(super) fn validate_deployment(d: &Deployment, selector_given: bool, errs: &mut Errors) {
    let path = FieldPath::new("spec");
    let Some(spec) = &d.spec else {
        errs.required(&path, "");
        return;
    };
    errs.non_negative(&path.child("replicas"), spec.replicas.map(i64::from));
    let selector = validate_selector(
        selector_given.then_some(&spec.selector),
        &path.child("selector"),
        "deployment",
        errs,
    );
    validate_template(
        Some(&spec.template),
        selector.as_ref(),
        &path.child("template"),
        errs,
    );

    if let Some(strategy) = &spec.strategy {
        let p = path.child("strategy");
        match strategy.type_.as_deref().unwrap_or_default() {
            "Recreate" => {
                if strategy.rolling_update.is_some() {
                    errs.forbidden(
                        &p.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    );
                }
            }
            "RollingUpdate" => {
                if let Some(rolling) = &strategy.rolling_update {
                    validate_rolling_update(rolling, &p.child("rollingUpdate"), errs);
                }
            }
            other => errs.unsupported(&p.child("type"), other, STRATEGIES),
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    errs.non_negative(&path.child("minReadySeconds"), Some(i64::from(min_ready)));
    errs.non_negative(
        &path.child("revisionHistoryLimit"),
        spec.revision_history_limit.map(i64::from),
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        let p = path.child("progressDeadlineSeconds");
        errs.non_negative(&p, Some(i64::from(deadline)));
        if deadline <= min_ready {
            errs.invalid(&p, deadline, "must be greater than minReadySeconds");
        }
    }
}

pub(super) fn validate_replica_set(rs: &ReplicaSet, selector_given: bool, errs: &mut Errors) {
    let path = FieldPath::new("spec");
    let Some(spec) = &rs.spec else {
        errs.required(&path, "");
        return;
    };
    errs.non_negative(&path.child("replicas"), spec.replicas.map(i64::from));
    errs.non_negative(
        &path.child("minReadySeconds"),
        spec.min_ready_seconds.map(i64::from),
    );
    let selector = validate_selector(
        selector_given.then_some(&spec.selector),
        &path.child("selector"),
        "replicaset",
        errs,
    );
    validate_template(
        spec.template.as_ref(),
        selector.as_ref(),
        &path.child("template"),
        errs,
    );
}

/// `ValidateLabelSelector` plus the workload rule that a selector may not be
/// empty (it would adopt every pod of the namespace). Returns the selector
/// to match the template with, when it is usable.
fn validate_selector(
    selector: Option<&meta::LabelSelector>,
    path: &FieldPath,
    kind: &str,
    errs: &mut Errors,
) -> Option<LabelSelector> {
    let Some(selector) = selector else {
        errs.required(path, "");
        return None;
    };
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errs.required(
                    &p.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                );
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errs.forbidden(
                    &p.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                );
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.invalid(&p.child("operator"), other, "not a valid selector operator"),
        }
        errs.invalid_each(&p.child("key"), &expr.key, qualified_name(&expr.key));
        for (j, value) in values.iter().enumerate() {
            errs.invalid_each(&p.child("values").index(j), value, label_value(value));
        }
    }
    validate_labels(
        selector.match_labels.as_ref(),
        &path.child("matchLabels"),
        errs,
    );
    let empty = selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty);
    if empty {
        errs.invalid(
            path,
            selector,
            &format!("empty selector is invalid for {kind}"),
        );
        return None;
    }
    // Errors here are the operator and values problems reported above.
    LabelSelector::from_k8s(selector).ok()
}

/// `ValidatePodTemplateSpecForReplicaSet`.
fn validate_template(
    template: Option<&PodTemplateSpec>,
    selector: Option<&LabelSelector>,
    path: &FieldPath,
    errs: &mut Errors,
) {
    let Some(template) = template else {
        errs.required(path, "");
        return;
    };
    let no_labels = BTreeMap::new();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&no_labels);
    if let Some(selector) = selector
        && !selector.matches(labels)
    {
        errs.invalid(
            &path.child("metadata").child("labels"),
            labels,
            "`selector` does not match template `labels`",
        );
    }
    super::meta::validate_template(template.metadata.as_ref(), &path.child("metadata"), errs);

    let spec_path = path.child("spec");
    let Some(spec) = &template.spec else {
        errs.required(&spec_path.child("containers"), "");
        return;
    };
    validate_pod_spec(spec, &spec_path, errs);
    // A controller replaces pods that exit; one that let them stay down
    // would never converge on `replicas`.
    if let Some(policy) = spec.restart_policy.as_deref()
        && policy != "Always"
    {
        errs.unsupported(&spec_path.child("restartPolicy"), policy, &["Always"]);
    }
    if spec.active_deadline_seconds.is_some() {
        errs.forbidden(
            &spec_path.child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        );
    }
}

/// `ValidateRollingUpdateDeployment`.
fn validate_rolling_update(rolling: &RollingUpdateDeployment, path: &FieldPath, errs: &mut Errors) {
    let unavailable_path = path.child("maxUnavailable");
    let unavailable = int_or_percent(rolling.max_unavailable.as_ref(), &unavailable_path, errs);
    let surge = int_or_percent(rolling.max_surge.as_ref(), &path.child("maxSurge"), errs);
    if unavailable.map(|(v, _)| v) == Some(0) && surge.map(|(v, _)| v) == Some(0) {
        // Neither a new pod could start nor an old one stop.
        errs.invalid(
            &unavailable_path,
            &rolling.max_unavailable,
            "may not be 0 when `maxSurge` is 0",
        );
    }
    if let Some((v, true)) = unavailable
        && v > 100
    {
        errs.invalid(
            &unavailable_path,
            &rolling.max_unavailable,
            "must not be greater than 100%",
        );
    }
}

/// An int or a percentage like `25%`: its number and whether it was a
/// percentage, or `None` when absent or malformed (reported).
fn int_or_percent(
    value: Option<&IntOrString>,
    path: &FieldPath,
    errs: &mut Errors,
) -> Option<(i64, bool)> {
    match value? {
        IntOrString::Int(n) => {
            errs.non_negative(path, Some(i64::from(*n)));
            Some((i64::from(*n), false))
        }
        IntOrString::String(s) => {
            let number = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match number.and_then(|d| d.parse::<i64>().ok()) {
                Some(n) => Some((n, true)),
                None => {
                    errs.invalid(path, s, "must be an integer or percentage (e.g '5%')");
                    None
                }
            }
        }
    }
}
