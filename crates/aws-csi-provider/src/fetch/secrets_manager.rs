//! Secrets Manager: BatchGetSecretValue for unpinned secrets, bounded GetSecretValue for the rest.

use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_secretsmanager::Client;
use futures::stream::{self, StreamExt};

use super::{CallObserver, Charge, Fetched, Outcome, Target, classify_code, counted, over_budget};
use crate::error::FetchCause;
use bootstrap_common::secret::SecretBytes;

/// BatchGetSecretValue accepts at most this many ids per call.
pub const BATCH_SIZE: usize = 20;
const SERVICE: &str = "secretsmanager";

/// Fetches every target; the outcomes are in the order of `targets`. With `use_batch`, unpinned
/// secrets go through BatchGetSecretValue; `batch_denied` is set when the caller may not use it
/// (the role lacks `secretsmanager:BatchGetSecretValue`), so the caller can stop trying. Each
/// value is charged to `charge` as it arrives; once over budget, no further call starts.
pub async fn fetch_all(
    client: &Client,
    targets: &[Target<'_>],
    concurrency: usize,
    observer: &dyn CallObserver,
    use_batch: bool,
    batch_denied: &AtomicBool,
    charge: &Charge<'_>,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    let unpinned: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].version.is_none() && targets[i].label.is_none())
        .collect();
    if use_batch && unpinned.len() >= 2 {
        let chunks: Vec<&[usize]> = unpinned.chunks(BATCH_SIZE).collect();
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|chunk| async move {
                if !charge.open() {
                    return chunk
                        .iter()
                        .map(|&i| (i, Some(Err(over_budget()))))
                        .collect::<Vec<(usize, Option<Outcome>)>>();
                }
                batch(client, targets, chunk, observer, batch_denied)
                    .await
                    .into_iter()
                    .map(|(i, o)| (i, o.map(|o| charge.take(i, o))))
                    .collect::<Vec<(usize, Option<Outcome>)>>()
            })
            .collect();
        let results: Vec<Vec<(usize, Option<Outcome>)>> = stream::iter(calls)
            .buffered(concurrency.max(1))
            .collect()
            .await;
        for (i, outcome) in results.into_iter().flatten() {
            outcomes[i] = outcome;
        }
    }
    // Pinned secrets, single unpinned ones, and anything the batch did not settle.
    let rest: Vec<usize> = (0..targets.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    let calls: Vec<_> = rest
        .into_iter()
        .map(|i| async move {
            if !charge.open() {
                return (i, Err(over_budget()));
            }
            (
                i,
                charge.take(i, get_one(client, &targets[i], observer).await),
            )
        })
        .collect();
    let singles: Vec<(usize, Outcome)> = stream::iter(calls)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    for (i, outcome) in singles {
        outcomes[i] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Err(FetchCause::Transient {
                message: "not fetched".into(),
            }))
        })
        .collect()
}

/// One GetSecretValue.
pub async fn get_one(client: &Client, target: &Target<'_>, observer: &dyn CallObserver) -> Outcome {
    let result = client
        .get_secret_value()
        .secret_id(target.name)
        .set_version_id(target.version.map(str::to_string))
        .set_version_stage(target.label.map(str::to_string))
        .send()
        .await;
    counted(observer, SERVICE, "GetSecretValue", result).map(|mut out| {
        let value = secret_value(out.secret_string.take(), out.secret_binary.take());
        Fetched {
            value,
            version: out.version_id.take().unwrap_or_default(),
        }
    })
}

/// A secret's value as Secrets Manager returns it: the string, else the binary, else empty.
pub(super) fn secret_value(
    string: Option<String>,
    binary: Option<aws_smithy_types::Blob>,
) -> SecretBytes {
    match (string, binary) {
        (Some(s), _) => SecretBytes::from_string(s),
        (None, Some(b)) => SecretBytes::new(b.into_inner()),
        (None, None) => SecretBytes::new(Vec::new()),
    }
}

/// One BatchGetSecretValue for the targets at `indices`. `None` outcomes are left for
/// GetSecretValue (e.g. the role may lack secretsmanager:BatchGetSecretValue).
async fn batch(
    client: &Client,
    targets: &[Target<'_>],
    indices: &[usize],
    observer: &dyn CallObserver,
    batch_denied: &AtomicBool,
) -> Vec<(usize, Option<Outcome>)> {
    let ids: Vec<String> = indices
        .iter()
        .map(|&i| targets[i].name.to_string())
        .collect();
    let result = client
        .batch_get_secret_value()
        .set_secret_id_list(Some(ids))
        .send()
        .await;
    let mut out = match counted(observer, SERVICE, "BatchGetSecretValue", result) {
        Ok(out) => out,
        Err(cause) => {
            if matches!(cause, FetchCause::AccessDenied { .. }) {
                batch_denied.store(true, Ordering::Relaxed);
            }
            tracing::debug!(
                %cause,
                "BatchGetSecretValue failed; falling back to GetSecretValue"
            );
            return indices.iter().map(|&i| (i, None)).collect();
        }
    };
    let mut values = out.secret_values.take().unwrap_or_default();
    let errors = out.errors.take().unwrap_or_default();
    indices
        .iter()
        .map(|&i| {
            let name = targets[i].name;
            let found = values
                .iter()
                .position(|v| v.name.as_deref() == Some(name) || v.arn.as_deref() == Some(name));
            if let Some(pos) = found {
                let mut v = values.swap_remove(pos);
                let value = secret_value(v.secret_string.take(), v.secret_binary.take());
                let version = v.version_id.take().unwrap_or_default();
                return (i, Some(Ok(Fetched { value, version })));
            }
            let error = errors.iter().find(|e| e.secret_id.as_deref() == Some(name));
            match error {
                Some(e) => {
                    let cause = classify_code(
                        e.error_code.as_deref().unwrap_or(""),
                        e.message.as_deref().unwrap_or(""),
                        None,
                    );
                    (i, Some(Err(cause)))
                }
                // Asked by a partial ARN or otherwise unmatched: ask for it alone.
                None => (i, None),
            }
        })
        .collect()
}
