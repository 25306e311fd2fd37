//! What the `bootstrap` CLI and `aws-csi-provider` share: names and constants, one duration
//! grammar, one retry schedule, one table of AWS error codes, and secret types that never print.

pub mod aws_error;
pub mod backoff;
pub mod duration;
pub mod names;
pub mod secret;
pub mod testenv;

pub use aws_error::ErrorKind;
pub use backoff::Backoff;
pub use duration::parse_duration;
pub use secret::{SecretBytes, SecretString};
