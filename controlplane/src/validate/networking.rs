//! networking.k8s.io/v1 Ingress and IngressClass.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use super::field::Errors;

pub(super) fn default_ingress(_ingress: &mut Ingress) {}

pub(super) fn validate_ingress(_ingress: &Ingress, _errs: &mut Errors) {}

pub(super) fn validate_ingress_class(_class: &IngressClass, _errs: &mut Errors) {}
