//! v1 Secret: what the API server does before storing one — `stringData`
//! merged into `data` (the v1 conversion), `type` defaulted to `Opaque`
//! (`SetDefaults_Secret`) — and the checks of `ValidateSecret`: config-key
//! names, the 1 MiB limit, and the keys each well-known type requires.
//!
//! Podnet uses only `kubernetes.io/tls` Secrets, as the certificates of
//! Ingress TLS; other types are valid Kubernetes, stored and warned about.
//! Deliberately not here: parsing the certificate and key (upstream does
//! not either; the ingress proxy reports a bad pair when it loads one).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};

use super::field::{Errors, FieldPath};

/// `MaxSecretSize`: the values of `data` together.
const MAX_SECRET_BYTES: usize = 1024 * 1024;
const KEY_MAX: usize = 253;
const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

/// The type podnet acts on, and the keys it must hold.
const TYPE_TLS: &str = "kubernetes.io/tls";
const TYPE_OPAQUE: &str = "Opaque";
const TLS_CERT_KEY: &str = "tls.crt";
const TLS_PRIVATE_KEY_KEY: &str = "tls.key";

/// `Convert_v1_Secret_To_core_Secret` and `SetDefaults_Secret`:
/// `stringData` is a write-only convenience; its values replace those of
/// `data` under the same keys and it is never stored.
pub(super) fn default_secret(secret: &mut Secret) {
    if let Some(strings) = secret.string_data.take().filter(|s| !s.is_empty()) {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    if secret.type_.as_deref().is_none_or(str::is_empty) {
        secret.type_ = Some(TYPE_OPAQUE.to_string());
    }
}

/// `ValidateSecret`.
pub(super) fn validate_secret(secret: &Secret, errs: &mut Errors) {
    let data_path = FieldPath::new("data");
    let mut total = 0;
    for (key, value) in secret.data.iter().flatten() {
        errs.invalid_each(&data_path.key(key), key, config_key(key));
        total += value.0.len();
    }
    if total > MAX_SECRET_BYTES {
        errs.too_long(&data_path, MAX_SECRET_BYTES);
    }

    let ty = secret.type_.as_deref().unwrap_or_default();
    validate_type_keys(secret, ty, &data_path, errs);
    if ty != TYPE_TLS {
        errs.warn(
            &FieldPath::new("type"),
            &format!(
                "podnet uses only {TYPE_TLS:?} Secrets (for Ingress TLS): this {ty:?} Secret is stored but not used"
            ),
        );
    }
}

/// The keys each well-known type must hold (`ValidateSecret`'s switch);
/// other types hold anything.
fn validate_type_keys(secret: &Secret, ty: &str, data_path: &FieldPath, errs: &mut Errors) {
    let value = |key: &str| secret.data.as_ref().and_then(|d| d.get(key));
    let require = |errs: &mut Errors, key: &str| {
        if value(key).is_none() {
            errs.required(&data_path.key(key), "");
        }
    };
    match ty {
        TYPE_TLS => {
            require(errs, TLS_CERT_KEY);
            require(errs, TLS_PRIVATE_KEY_KEY);
        }
        // Either may be empty, but one must be there.
        "kubernetes.io/basic-auth"
            if value("username").is_none() && value("password").is_none() =>
        {
            require(errs, "username");
            require(errs, "password");
        }
        "kubernetes.io/ssh-auth" if value("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errs.required(&data_path.key("ssh-privatekey"), "");
        }
        "kubernetes.io/dockercfg" => docker_config(secret, ".dockercfg", data_path, errs),
        "kubernetes.io/dockerconfigjson" => {
            docker_config(secret, ".dockerconfigjson", data_path, errs)
        }
        "kubernetes.io/service-account-token" => {
            let key = "kubernetes.io/service-account.name";
            let named = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .is_some_and(|name| !name.is_empty());
            if !named {
                errs.required(
                    &FieldPath::new("metadata").child("annotations").key(key),
                    "",
                );
            }
        }
        _ => {}
    }
}

/// A registry credential: present, and a JSON object (or `null`, which Go
/// decodes into a map without complaint).
fn docker_config(secret: &Secret, key: &str, data_path: &FieldPath, errs: &mut Errors) {
    let path = data_path.key(key);
    let Some(value) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        return errs.required(&path, "");
    };
    if let Err(e) = serde_json::from_slice::<Option<Map<String, Value>>>(&value.0) {
        // Never echo a credential back.
        errs.invalid(&path, "<secret contents redacted>", &e.to_string());
    }
}

/// `IsConfigMapKey`: a file name when the Secret is mounted, so no path
/// separators and no `.`/`..`.
fn config_key(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if key.len() > KEY_MAX {
        problems.push(format!("must be no more than {KEY_MAX} characters"));
    }
    let key_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
    if key.is_empty() || !key.bytes().all(key_char) {
        problems.push(KEY_MSG.to_string());
    }
    match key {
        "." => problems.push("must not be '.'".to_string()),
        ".." => problems.push("must not be '..'".to_string()),
        k if k.starts_with("..") => problems.push("must not start with '..'".to_string()),
        _ => {}
    }
    problems
}
