//! The one rule for tests that need the local environment (tests/env): when it is absent they
//! say they were skipped, and with `BOOTSTRAP_REQUIRE_ENV` set (as `tests/run.sh` does) they
//! fail instead, so CI can never pass a test that did not run.

/// Reports a skipped environment test, or panics when the environment is required.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("BOOTSTRAP_REQUIRE_ENV").is_none(),
        "BOOTSTRAP_REQUIRE_ENV is set, but {reason}: run tests/env/up.sh and source tests/env/state/env.sh"
    );
    eprintln!("skipped: {reason} (run tests/env/up.sh and source tests/env/state/env.sh)");
}
