//! The Secrets Store CSI provider for AWS: gRPC server, attributes, objects, auth, fetch, files.

pub mod attributes;
pub mod error;
pub mod files;
pub mod objects;
mod scalar;
pub mod secret;
