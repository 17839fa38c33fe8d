//! v1 Secret.

use k8s_openapi::api::core::v1::Secret;

use super::field::Errors;

pub(super) fn default_secret(_secret: &mut Secret) {}

pub(super) fn validate_secret(_secret: &Secret, _errs: &mut Errors) {}
