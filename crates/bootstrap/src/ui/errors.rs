//! Errors as the user sees them: `error:` line, `Caused by:` chain, `hint:` lines.

use std::fmt::Write;

/// Renders an error and its causes, then the hint.
pub fn render_error(err: &(dyn std::error::Error + 'static), hint: Option<&str>) -> String {
    let mut out = format!("error: {err}\n");
    let mut causes = Vec::new();
    let mut source = err.source();
    while let Some(cause) = source {
        // kube's own text for an API answer carries the whole Status in Debug form, and its
        // source repeats the message: one line instead.
        if let Some(kube::Error::Api(status)) = cause.downcast_ref::<kube::Error>() {
            causes.push(format!(
                "the Kubernetes API answered {} {}: {}",
                status.code, status.reason, status.message
            ));
            break;
        }
        let text = cause.to_string();
        if !causes.contains(&text) && !err.to_string().ends_with(&text) {
            causes.push(text);
        }
        source = cause.source();
    }
    if !causes.is_empty() {
        out.push_str("\nCaused by:\n");
        for (i, cause) in causes.iter().enumerate() {
            let _ = writeln!(out, "  {i}: {cause}");
        }
    }
    if let Some(hint) = hint {
        let _ = write!(out, "\nhint: {hint}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to describe EKS cluster demo")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("ResourceNotFoundException: No cluster found")]
    struct Inner;

    #[test]
    fn renders_error_causes_and_hint() {
        let text = render_error(&Outer(Inner), Some("check --region"));
        assert_eq!(
            text,
            "error: failed to describe EKS cluster demo\n\nCaused by:\n  0: ResourceNotFoundException: No cluster found\n\nhint: check --region\n"
        );
        assert_eq!(
            render_error(&Inner, None),
            "error: ResourceNotFoundException: No cluster found\n"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("failed to apply ServiceAccount/team/app")]
    struct Apply(#[source] kube::Error);

    #[test]
    fn a_kubernetes_api_answer_is_one_line() {
        let status = kube::core::Status::failure("etcdserver: leader changed", "InternalError")
            .with_code(500);
        let text = render_error(&Apply(kube::Error::Api(status.into())), None);
        assert_eq!(
            text,
            "error: failed to apply ServiceAccount/team/app\n\nCaused by:\n  0: the Kubernetes API answered 500 InternalError: etcdserver: leader changed\n"
        );
    }
}
