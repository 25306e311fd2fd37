//! Validation of the Kubernetes names bootstrap renders (RFC 1123 labels and subdomains).

/// An RFC 1123 label: 1–63 lowercase alphanumerics or `-`, starting and ending alphanumeric.
/// Namespaces, ServiceAccounts' namespaces and most label-like names must be one.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// An RFC 1123 subdomain: dot-separated labels, at most 253 characters in all.
/// ServiceAccount, SecretProviderClass and pod names must be one.
pub fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && !name.is_empty() && name.split('.').all(is_dns_label)
}

/// Why `name` is not a valid `what` name, or `None` when it is.
pub fn subdomain_problem(what: &str, name: &str) -> Option<String> {
    if is_dns_subdomain(name) {
        None
    } else {
        Some(format!(
            "{what} name {name:?} is not a valid Kubernetes name: use at most 253 lowercase \
             letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// Why `name` is not a valid `what` label-style name, or `None` when it is.
pub fn label_problem(what: &str, name: &str) -> Option<String> {
    if is_dns_label(name) {
        None
    } else {
        Some(format!(
            "{what} name {name:?} is not a valid Kubernetes name: use 1-63 lowercase letters, \
             digits and '-', starting and ending with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_labels() {
        for ok in ["a", "demo", "team-a", "x1", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_invalid_labels() {
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn subdomains_allow_dots_but_not_empty_parts() {
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(".a"));
        assert!(subdomain_problem("ServiceAccount", "Bad_Name").is_some());
        assert!(label_problem("namespace", "ok").is_none());
    }
}
