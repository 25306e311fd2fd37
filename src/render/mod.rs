//! Typed template contexts rendered with tera into Kubernetes manifests.
