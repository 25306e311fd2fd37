//! The one table of AWS error codes: what kind of failure a code (or status) means, for both
//! the CLI (retry, adopt, fail with a hint) and the provider (fatal vs fail over).

/// What kind of failure an AWS call had, for deciding what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    AccessDenied,
    Throttled,
    /// Another 4xx: the request is wrong; retrying will not help.
    Client,
    /// 5xx, timeouts, connection failures: may succeed later.
    Transient,
    /// No usable credentials.
    Credentials,
}

impl ErrorKind {
    /// Whether trying again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "NoSuchEntity",
    "NoSuchEntityException",
    "NotFoundException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ParameterVersionLabelNotFound",
    "RepositoryNotFoundException",
];
const CONFLICT: &[&str] = &[
    "ResourceInUseException",
    "EntityAlreadyExists",
    "ResourceExistsException",
    "ConflictException",
    "DeleteConflict",
];
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "KMSAccessDeniedException",
    "DecryptionFailure",
];
const THROTTLED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];
const TRANSIENT: &[&str] = &[
    "InternalServiceError",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceFailure",
];

/// Classifies an error by its AWS code, then by its HTTP status. `None` for both means a
/// transport failure (transient).
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    if let Some(code) = code {
        let is = |table: &[&str]| table.contains(&code);
        if is(NOT_FOUND) {
            return ErrorKind::NotFound;
        }
        if is(CONFLICT) {
            return ErrorKind::Conflict;
        }
        if is(DENIED) {
            return ErrorKind::AccessDenied;
        }
        if is(THROTTLED) {
            return ErrorKind::Throttled;
        }
        if is(TRANSIENT) {
            return ErrorKind::Transient;
        }
    }
    match status {
        Some(404) => ErrorKind::NotFound,
        Some(409) => ErrorKind::Conflict,
        Some(401 | 403) => ErrorKind::AccessDenied,
        Some(429) => ErrorKind::Throttled,
        Some(s) if (400..500).contains(&s) => ErrorKind::Client,
        _ => ErrorKind::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_win_over_statuses() {
        for (code, status, kind) in [
            ("ResourceNotFoundException", 400, ErrorKind::NotFound),
            ("ParameterVersionNotFound", 400, ErrorKind::NotFound),
            ("ResourceInUseException", 409, ErrorKind::Conflict),
            ("AccessDeniedException", 400, ErrorKind::AccessDenied),
            ("KMSAccessDeniedException", 400, ErrorKind::AccessDenied),
            ("ThrottlingException", 400, ErrorKind::Throttled),
            ("InternalServiceError", 400, ErrorKind::Transient),
            ("ValidationException", 400, ErrorKind::Client),
        ] {
            assert_eq!(kind_of(Some(code), Some(status)), kind, "{code} ({status})");
        }
    }

    #[test]
    fn statuses_classify_what_has_no_known_code() {
        assert_eq!(kind_of(None, Some(404)), ErrorKind::NotFound);
        assert_eq!(kind_of(Some("Whatever"), Some(503)), ErrorKind::Transient);
        assert_eq!(kind_of(None, Some(429)), ErrorKind::Throttled);
        assert_eq!(kind_of(None, None), ErrorKind::Transient);
        assert!(kind_of(None, Some(500)).is_retryable());
        assert!(!kind_of(None, Some(400)).is_retryable());
    }
}
