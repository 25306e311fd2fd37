//! SSM Parameter Store: GetParameters with decryption, in batches of ten.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::Parameter;
use futures::stream::{self, StreamExt};

use super::{CallObserver, Fetched, Outcome, Target, classify};
use crate::error::FetchCause;
use bootstrap_common::secret::SecretBytes;

/// GetParameters accepts at most this many names per call.
pub const BATCH_SIZE: usize = 10;
const SERVICE: &str = "ssm";

/// The name GetParameters is asked for: `name`, `name:version` or `name:label`.
pub fn request_name(t: &Target<'_>) -> String {
    match (t.version, t.label) {
        (Some(v), _) => format!("{}:{v}", t.name),
        (None, Some(l)) => format!("{}:{l}", t.name),
        (None, None) => t.name.to_string(),
    }
}

/// Fetches every target; the outcomes are in the order of `targets`.
pub async fn fetch_all(
    client: &Client,
    targets: &[Target<'_>],
    concurrency: usize,
    observer: &dyn CallObserver,
) -> Vec<Outcome> {
    let chunks: Vec<&[Target<'_>]> = targets.chunks(BATCH_SIZE).collect();
    let calls: Vec<_> = chunks
        .into_iter()
        .map(|chunk| get_batch(client, chunk, observer))
        .collect();
    let results: Vec<Vec<Outcome>> = stream::iter(calls)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    results.into_iter().flatten().collect()
}

async fn get_batch(
    client: &Client,
    targets: &[Target<'_>],
    observer: &dyn CallObserver,
) -> Vec<Outcome> {
    let names: Vec<String> = targets.iter().map(request_name).collect();
    let result = client
        .get_parameters()
        .set_names(Some(names))
        .with_decryption(true)
        .send()
        .await;
    let mut out = match result {
        Ok(out) => {
            observer.aws_call(SERVICE, "GetParameters", "ok");
            out
        }
        Err(e) => {
            observer.aws_call(SERVICE, "GetParameters", "error");
            let cause = classify(&e);
            return targets.iter().map(|_| Err(clone_cause(&cause))).collect();
        }
    };
    let mut params = out.parameters.take().unwrap_or_default();
    targets
        .iter()
        .map(|t| match params.iter().position(|p| answers(p, t)) {
            Some(pos) => {
                let mut p = params.swap_remove(pos);
                Ok(Fetched {
                    value: SecretBytes::from_string(p.value.take().unwrap_or_default()),
                    version: p.version.to_string(),
                })
            }
            None => Err(FetchCause::NotFound),
        })
        .collect()
}

/// Whether `p` is the answer to `t`. AWS echoes a `name:version` / `name:label` request in
/// `Selector`; without one (some implementations omit it) a pinned version must equal the
/// parameter's, and a label is taken on the name alone.
pub fn answers(p: &Parameter, t: &Target<'_>) -> bool {
    let named = p.name.as_deref() == Some(t.name) || p.arn.as_deref() == Some(t.name);
    if !named {
        return false;
    }
    let wanted = t.version.or(t.label);
    match (p.selector.as_deref().filter(|s| !s.is_empty()), wanted) {
        (Some(sel), Some(w)) => sel.strip_prefix(':') == Some(w),
        (Some(_), None) => false,
        (None, None) => true,
        (None, Some(_)) => match t.version {
            Some(v) => v.parse::<i64>().ok() == Some(p.version),
            None => true,
        },
    }
}

fn clone_cause(c: &FetchCause) -> FetchCause {
    match c {
        FetchCause::NotFound => FetchCause::NotFound,
        FetchCause::AccessDenied { message } => FetchCause::AccessDenied {
            message: message.clone(),
        },
        FetchCause::Client { message } => FetchCause::Client {
            message: message.clone(),
        },
        FetchCause::Transient { message } => FetchCause::Transient {
            message: message.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let t = Target {
            name: "/a",
            version: Some("3"),
            label: None,
        };
        assert_eq!(request_name(&t), "/a:3");
        let t = Target {
            name: "/a",
            version: None,
            label: Some("prod"),
        };
        assert_eq!(request_name(&t), "/a:prod");
    }

    fn param(name: &str, version: i64, selector: Option<&str>) -> Parameter {
        Parameter::builder()
            .name(name)
            .version(version)
            .set_selector(selector.map(str::to_string))
            .build()
    }

    #[test]
    fn pinned_versions_match_with_or_without_selector() {
        let pinned = Target {
            name: "/a",
            version: Some("2"),
            label: None,
        };
        let latest = Target {
            name: "/a",
            version: None,
            label: None,
        };
        let labelled = Target {
            name: "/a",
            version: None,
            label: Some("prod"),
        };
        // AWS: the selector echoes the request.
        assert!(answers(&param("/a", 2, Some(":2")), &pinned));
        assert!(!answers(&param("/a", 3, Some(":3")), &pinned));
        assert!(!answers(&param("/a", 2, Some(":2")), &latest));
        assert!(answers(&param("/a", 5, Some(":prod")), &labelled));
        // No selector (moto): the version decides; a pinned request never takes another one.
        assert!(answers(&param("/a", 2, None), &pinned));
        assert!(!answers(&param("/a", 3, None), &pinned));
        assert!(answers(&param("/a", 3, None), &latest));
        assert!(answers(&param("/a", 3, None), &labelled));
        assert!(!answers(&param("/b", 2, Some(":2")), &pinned));
    }
}
