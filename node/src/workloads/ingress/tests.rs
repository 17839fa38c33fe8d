//! Tests of the ingress controller as a whole.
