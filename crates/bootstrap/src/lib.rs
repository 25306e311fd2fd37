//! bootstrap: EKS Pod Identity + Secrets Store CSI in one command, and a Rust AWS provider for the driver.

pub mod aws;
pub mod cli;
pub mod config;
pub mod kube;
pub mod plan;
pub mod render;
pub mod steps;
pub mod ui;
