//! What is wrong with a NetworkPolicy: [`InvalidPolicy`], one variant per
//! rule of upstream's `ValidateNetworkPolicySpec`
//! (`pkg/apis/networking/validation`), each with its field path, and
//! [`FieldError`], the same worded as the API server's 422 answer.
//!
//! [`compile`](crate::compile) refuses exactly what
//! [`validate`](crate::validate) reports: both walk the policy once with
//! the same checks.

use std::fmt;

use podnet_proto::model::InvalidSelector;

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];

/// Why a CIDR was refused, in upstream's order of checks (strict parsing,
/// as the API server does for new objects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrProblem {
    Unparsable,
    LeadingZeros,
    Ipv4Mapped,
    BitsBeyondPrefix,
}

impl CidrProblem {
    fn detail(self) -> &'static str {
        match self {
            CidrProblem::Unparsable => {
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
            }
            CidrProblem::LeadingZeros => "must not have leading 0s in IP or prefix length",
            CidrProblem::Ipv4Mapped => "must not have an IPv4-mapped IPv6 address",
            CidrProblem::BitsBeyondPrefix => "must not have bits set beyond the prefix length",
        }
    }
}

/// One thing wrong with a NetworkPolicy, at `path` (`spec.ingress[0].from[1].ipBlock.cidr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPolicy {
    #[error("{}", self.field_error())]
    MissingName { path: String },
    #[error("{}", self.field_error())]
    CidrRequired { path: String },
    #[error("{}", self.field_error())]
    Cidr {
        path: String,
        value: String,
        problem: CidrProblem,
    },
    /// An `except` entry not strictly inside its `cidr`.
    #[error("{}", self.field_error())]
    ExceptNotSubset { path: String, value: String },
    #[error("{}", self.field_error())]
    Protocol { path: String, value: String },
    /// `port` or `endPort` outside 1..=65535.
    #[error("{}", self.field_error())]
    PortNumber { path: String, value: i64 },
    #[error("{}", self.field_error())]
    EndPortBelowPort { path: String, value: i32 },
    #[error("{}", self.field_error())]
    EndPortWithNamedPort { path: String, value: i32 },
    #[error("{}", self.field_error())]
    EndPortWithoutPort { path: String, value: i32 },
    /// A named `port` that is not an IANA_SVC_NAME.
    #[error("{}", self.field_error())]
    PortName {
        path: String,
        value: String,
        reason: String,
    },
    /// A peer with none of podSelector, namespaceSelector, ipBlock.
    #[error("{}", self.field_error())]
    NoPeer { path: String },
    #[error("{}", self.field_error())]
    IpBlockWithSelector { path: String },
    #[error("{}", self.field_error())]
    SelectorOperator { path: String, value: String },
    /// `In`/`NotIn` without values.
    #[error("{}", self.field_error())]
    SelectorValuesRequired { path: String },
    /// `Exists`/`DoesNotExist` with values.
    #[error("{}", self.field_error())]
    SelectorValuesForbidden { path: String },
    #[error("{}", self.field_error())]
    LabelKey {
        path: String,
        value: String,
        reason: String,
    },
    #[error("{}", self.field_error())]
    LabelValue {
        path: String,
        value: String,
        reason: String,
    },
    /// A selector the checks above passed but the selector parser refused;
    /// kept so no refusal is lost.
    #[error("{path}: {source}")]
    Selector {
        path: String,
        #[source]
        source: InvalidSelector,
    },
    #[error("{}", self.field_error())]
    TooManyPolicyTypes { path: String, value: Vec<String> },
    #[error("{}", self.field_error())]
    PolicyType { path: String, value: String },
}

impl InvalidPolicy {
    pub fn path(&self) -> &str {
        use InvalidPolicy::*;
        match self {
            MissingName { path }
            | CidrRequired { path }
            | Cidr { path, .. }
            | ExceptNotSubset { path, .. }
            | Protocol { path, .. }
            | PortNumber { path, .. }
            | EndPortBelowPort { path, .. }
            | EndPortWithNamedPort { path, .. }
            | EndPortWithoutPort { path, .. }
            | PortName { path, .. }
            | NoPeer { path }
            | IpBlockWithSelector { path }
            | SelectorOperator { path, .. }
            | SelectorValuesRequired { path }
            | SelectorValuesForbidden { path }
            | LabelKey { path, .. }
            | LabelValue { path, .. }
            | Selector { path, .. }
            | TooManyPolicyTypes { path, .. }
            | PolicyType { path, .. } => path,
        }
    }

    /// The API server's wording of this error.
    pub fn field_error(&self) -> FieldError {
        use FieldErrorKind as K;
        use InvalidPolicy::*;
        let quoted = |s: &str| serde_json::Value::from(s).to_string();
        let (kind, value, message): (FieldErrorKind, String, String) = match self {
            MissingName { .. } => (
                K::Required,
                String::new(),
                "name or generateName is required".into(),
            ),
            CidrRequired { .. } => (K::Required, String::new(), String::new()),
            Cidr { value, problem, .. } => (K::Invalid, quoted(value), problem.detail().into()),
            ExceptNotSubset { value, .. } => (
                K::Invalid,
                quoted(value),
                "must be a strict subset of `cidr`".into(),
            ),
            Protocol { value, .. } => (K::NotSupported, quoted(value), supported(PROTOCOLS)),
            PortNumber { value, .. } => (K::Invalid, value.to_string(), PORT_RANGE.into()),
            EndPortBelowPort { value, .. } => (
                K::Invalid,
                value.to_string(),
                "must be greater than or equal to `port`".into(),
            ),
            EndPortWithNamedPort { value, .. } => (
                K::Invalid,
                value.to_string(),
                "may not be specified when `port` is non-numeric".into(),
            ),
            EndPortWithoutPort { value, .. } => (
                K::Invalid,
                value.to_string(),
                "may not be specified when `port` is not specified".into(),
            ),
            PortName { value, reason, .. }
            | LabelKey { value, reason, .. }
            | LabelValue { value, reason, .. } => (K::Invalid, quoted(value), reason.clone()),
            NoPeer { .. } => (K::Required, String::new(), "must specify a peer".into()),
            IpBlockWithSelector { .. } => (
                K::Forbidden,
                String::new(),
                "may not specify both ipBlock and another peer".into(),
            ),
            SelectorOperator { value, .. } => (
                K::Invalid,
                quoted(value),
                "not a valid selector operator".into(),
            ),
            SelectorValuesRequired { .. } => (
                K::Required,
                String::new(),
                "must be specified when `operator` is 'In' or 'NotIn'".into(),
            ),
            SelectorValuesForbidden { .. } => (
                K::Forbidden,
                String::new(),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
            ),
            Selector { source, .. } => {
                (K::Invalid, quoted(&source.selector), source.reason.clone())
            }
            TooManyPolicyTypes { value, .. } => (
                K::Invalid,
                serde_json::Value::from(value.clone()).to_string(),
                "may not specify more than two policyTypes".into(),
            ),
            PolicyType { value, .. } => (K::NotSupported, quoted(value), supported(POLICY_TYPES)),
        };
        FieldError {
            path: self.path().to_string(),
            kind,
            value,
            message,
        }
    }
}

/// `field.NotSupported`'s detail, in upstream's order.
fn supported(values: &[&str]) -> String {
    let list: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("supported values: {}", list.join(", "))
}

/// The API server's error types (`field.ErrorType`) a policy can earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorKind {
    Invalid,
    Required,
    NotSupported,
    Forbidden,
}

impl fmt::Display for FieldErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
        })
    }
}

/// One invalid field, as `kubectl apply` would show it:
/// `spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    /// The value as the API server prints it: strings quoted, numbers bare;
    /// empty for `Required` and `Forbidden`, which print none.
    pub value: String,
    /// The detail after the value (may be empty for `Required`).
    pub message: String,
}

impl FieldError {
    /// Everything after `path: `, as `field.Error.ErrorBody` renders it.
    pub fn body(&self) -> String {
        let mut s = match self.kind {
            FieldErrorKind::Required | FieldErrorKind::Forbidden => self.kind.to_string(),
            FieldErrorKind::Invalid | FieldErrorKind::NotSupported => {
                format!("{}: {}", self.kind, self.value)
            }
        };
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}
