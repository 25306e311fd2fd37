//! The ceiling cannot be lifted by a more specific directive. (That a real SDK call logs
//! no body or token at `BOOTSTRAP_LOG=trace` is `tests/log_ceiling.rs`: it needs its own
//! process to set the SDK's `LOG_SIGNABLE_BODY`.)

use tracing_subscriber::layer::{Layer, SubscriberExt};

use super::filter;

#[test]
fn a_target_named_in_the_setting_cannot_lift_the_ceiling() {
    // More specific directives win inside an EnvFilter; the ceiling is a second filter.
    let asked = "aws_smithy_runtime::client::orchestrator=trace,aws_sigv4=trace";
    let filtered = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(filter(0, Some(asked))));
    tracing::subscriber::with_default(filtered, || {
        // `enabled!` asks the current subscriber with the callsite's target and level.
        assert!(
            !tracing::enabled!(target: "aws_smithy_runtime::client::orchestrator", tracing::Level::TRACE)
        );
        assert!(!tracing::enabled!(target: "aws_sigv4::http_request", tracing::Level::DEBUG));
        assert!(
            tracing::enabled!(target: "aws_smithy_runtime::client::orchestrator", tracing::Level::INFO)
        );
    });
}
