//! Thin typed wrappers over the AWS SDK clients, error classification and the EKS token.
