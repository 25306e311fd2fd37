//! The Secrets Store CSI provider for AWS: gRPC server, attributes, objects, auth, fetch, files.
