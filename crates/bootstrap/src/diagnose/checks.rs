//! Doctor's rules: pure functions from a [`Snapshot`] to checks that pass, warn or fail, each
//! saying what it saw and, where one exists, the fix as a command. [`platform`] covers the
//! agent, the driver, the provider and the nodes; [`workloads`] the SecretProviderClasses,
//! the service accounts they serve and their roles; [`pod`] the pod of `--pod`.

pub mod platform;
pub mod pod;
pub mod rotation;
#[cfg(test)]
mod test_support;
pub mod workloads;

use serde::Serialize;

use super::facts::Snapshot;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One finding: which check, about what, what it saw, and how to fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub subject: String,
    pub saw: String,
    pub fix: Option<String>,
}

impl Check {
    fn new(
        check: &'static str,
        status: Status,
        subject: impl Into<String>,
        saw: impl Into<String>,
    ) -> Self {
        Self {
            check,
            status,
            subject: subject.into(),
            saw: saw.into(),
            fix: None,
        }
    }

    pub fn pass(check: &'static str, subject: impl Into<String>, saw: impl Into<String>) -> Self {
        Self::new(check, Status::Pass, subject, saw)
    }

    pub fn warn(check: &'static str, subject: impl Into<String>, saw: impl Into<String>) -> Self {
        Self::new(check, Status::Warn, subject, saw)
    }

    pub fn fail(check: &'static str, subject: impl Into<String>, saw: impl Into<String>) -> Self {
        Self::new(check, Status::Fail, subject, saw)
    }

    /// A warning that something could not be read, so the check could not be made.
    pub fn unread(check: &'static str, subject: impl Into<String>, why: &str) -> Self {
        Self::warn(check, subject, format!("could not be checked: {why}"))
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
}

impl Summary {
    pub fn of(checks: &[Check]) -> Self {
        let mut s = Self::default();
        for c in checks {
            match c.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
            }
        }
        s
    }
}

/// Every rule, in report order: agent, driver, provider, nodes, classes, service accounts,
/// then the pod.
pub fn run(s: &Snapshot) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.extend(platform::agent(s));
    checks.extend(platform::driver(s));
    checks.extend(platform::provider(s));
    checks.extend(platform::nodes(s));
    checks.extend(workloads::classes(s));
    checks.extend(workloads::service_accounts(s));
    checks.extend(pod::pod(s));
    checks
}

/// A JSON document as a shell argument in single quotes (documents here hold no `'`).
pub(crate) fn shell_json(v: &serde_json::Value) -> String {
    format!("'{}'", v.to_string().replace('\'', "'\\''"))
}

/// `a, b and c`-style list for prose.
pub(crate) fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_each_status() {
        let checks = vec![
            Check::pass("a", "x", "ok"),
            Check::warn("b", "x", "hm"),
            Check::fail("c", "x", "no").fix("do"),
            Check::fail("d", "x", "no"),
        ];
        assert_eq!(
            Summary::of(&checks),
            Summary {
                pass: 1,
                warn: 1,
                fail: 2
            }
        );
        let json = serde_json::to_value(&checks[2]).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"check": "c", "status": "fail", "subject": "x", "saw": "no", "fix": "do"})
        );
        assert!(
            Check::unread("e", "x", "403")
                .saw
                .contains("could not be checked: 403")
        );
    }

    #[test]
    fn lists_read_like_prose() {
        assert_eq!(list(&[]), "");
        assert_eq!(list(&["a".into()]), "a");
        assert_eq!(list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        assert_eq!(shell_json(&serde_json::json!({"a": "b"})), r#"'{"a":"b"}'"#);
    }
}
