//! Helpers for the unit tests of doctor's checks: pick a check by name and assert on it.

use super::{Check, Status};

/// Every check named `name`.
pub fn find<'a>(checks: &'a [Check], name: &str) -> Vec<&'a Check> {
    checks.iter().filter(|c| c.check == name).collect()
}

/// The one check named `name`; fails the test when there is none or more than one.
pub fn only<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    let found = find(checks, name);
    assert_eq!(found.len(), 1, "one {name} check in {checks:#?}");
    found[0]
}

/// The one check named `name`, asserted to have `status`.
pub fn expect<'a>(checks: &'a [Check], name: &str, status: Status) -> &'a Check {
    let check = only(checks, name);
    assert_eq!(check.status, status, "{name}: {}", check.saw);
    check
}

/// Asserts that what `check` saw contains each of `parts`.
pub fn assert_saw(check: &Check, parts: &[&str]) {
    assert_has(check, "saw", &check.saw, parts);
}

/// Asserts that the fix `check` suggests contains each of `parts`.
pub fn assert_fix(check: &Check, parts: &[&str]) {
    assert_has(check, "fix", fix(check), parts);
}

fn assert_has(check: &Check, field: &str, text: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            text.contains(part),
            "{} {field}: {part:?} not in {text}",
            check.check
        );
    }
}

/// The fix a check suggests, or "" when it has none.
pub fn fix(check: &Check) -> &str {
    check.fix.as_deref().unwrap_or_default()
}

/// Asserts that every check passed and that each of `names` came out exactly once.
pub fn all_pass_once(checks: &[Check], names: &[&str]) {
    let bad: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Pass).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for name in names {
        only(checks, name);
    }
}
