//! SSM Parameter Store: GetParameters with decryption, in batches of ten.

use aws_sdk_ssm::Client;
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
    let names: Vec<String> = targets.iter().map(request_name).collect();
    let chunks: Vec<&[String]> = names.chunks(BATCH_SIZE).collect();
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

async fn get_batch(client: &Client, names: &[String], observer: &dyn CallObserver) -> Vec<Outcome> {
    let result = client
        .get_parameters()
        .set_names(Some(names.to_vec()))
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
            return names.iter().map(|_| Err(clone_cause(&cause))).collect();
        }
    };
    let mut params = out.parameters.take().unwrap_or_default();
    names
        .iter()
        .map(|requested| {
            let pos = params.iter().position(|p| {
                let selector = p.selector.as_deref().unwrap_or("");
                let by_name = p.name.as_deref().map(|n| format!("{n}{selector}"));
                let by_arn = p.arn.as_deref().map(|a| format!("{a}{selector}"));
                by_name.as_deref() == Some(requested) || by_arn.as_deref() == Some(requested)
            });
            match pos {
                Some(pos) => {
                    let mut p = params.swap_remove(pos);
                    Ok(Fetched {
                        value: SecretBytes::from_string(p.value.take().unwrap_or_default()),
                        version: p.version.to_string(),
                    })
                }
                None => Err(FetchCause::NotFound),
            }
        })
        .collect()
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
}
