//! The Secrets Store CSI provider for AWS: gRPC server, attributes, objects, auth, fetch, files.
//!
//! Layers, from pure to networked: [`attributes`], [`objects`], [`files`], [`jmes`] and
//! [`output`] are pure parsing/layout; [`auth`], [`fetch`], [`cluster`] and [`clients`] talk to
//! the Pod Identity agent, AWS and Kubernetes; [`mount`] composes one mount; [`server`] serves
//! the driver's gRPC API on a unix socket; [`daemon`] wires the binary.

pub mod all_keys;
pub mod attributes;
pub mod auth;
pub mod authority;
mod capped;
pub mod clients;
pub mod cluster;
pub mod daemon;
pub mod error;
pub mod fetch;
pub mod files;
mod gather;
mod gokeys;
pub mod jmes;
pub mod metrics;
pub mod mount;
pub mod objects;
pub mod output;
pub mod runtime;
mod scalar;
pub use bootstrap_common::secret;
pub mod server;
#[cfg(test)]
mod test_server;

/// Code generated from `proto/provider.proto` (package `v1alpha1`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
}
