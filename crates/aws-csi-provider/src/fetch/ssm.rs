//! SSM Parameter Store: GetParameters with decryption, in batches of ten.

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::Parameter;
use futures::stream::{self, StreamExt};

use super::{CallObserver, Charge, Fetched, Outcome, Target, counted, over_budget};
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

/// Fetches every target; the outcomes are in the order of `targets`. Each value is charged
/// to `charge` as it arrives; once over budget, no further call starts.
pub async fn fetch_all(
    client: &Client,
    targets: &[Target<'_>],
    concurrency: usize,
    observer: &dyn CallObserver,
    charge: &Charge<'_>,
) -> Vec<Outcome> {
    let chunks: Vec<(usize, &[Target<'_>])> = targets
        .chunks(BATCH_SIZE)
        .enumerate()
        .map(|(n, chunk)| (n * BATCH_SIZE, chunk))
        .collect();
    let calls: Vec<_> = chunks
        .into_iter()
        .map(|(first, chunk)| async move {
            if !charge.open() {
                return chunk
                    .iter()
                    .map(|_| Err(over_budget()))
                    .collect::<Vec<Outcome>>();
            }
            get_batch(client, chunk, observer)
                .await
                .into_iter()
                .enumerate()
                .map(|(k, o)| charge.take(first + k, o))
                .collect::<Vec<Outcome>>()
        })
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
    let mut out = match counted(observer, SERVICE, "GetParameters", result) {
        Ok(out) => out,
        Err(cause) => {
            return targets.iter().map(|_| Err(clone_cause(&cause))).collect();
        }
    };
    let params = out.parameters.take().unwrap_or_default();
    assign(params, targets)
        .into_iter()
        .map(|found| match found {
            Some(mut p) => Ok(Fetched {
                value: SecretBytes::from_string(p.value.take().unwrap_or_default()),
                version: p.version.to_string(),
            }),
            None => Err(FetchCause::NotFound),
        })
        .collect()
}

/// Pairs each target with its answer, whatever order the reply lists them in: pinned
/// targets (a version or label) take their exact answers first, then each unpinned target
/// takes the newest remaining parameter of its name.
fn assign(mut params: Vec<Parameter>, targets: &[Target<'_>]) -> Vec<Option<Parameter>> {
    let mut found: Vec<Option<Parameter>> = targets.iter().map(|_| None).collect();
    let pinned = |t: &Target<'_>| t.version.is_some() || t.label.is_some();
    for (i, t) in targets.iter().enumerate().filter(|(_, t)| pinned(t)) {
        if let Some(pos) = params.iter().position(|p| answers(p, t)) {
            found[i] = Some(params.swap_remove(pos));
        }
    }
    for (i, t) in targets.iter().enumerate().filter(|(_, t)| !pinned(t)) {
        let newest = params
            .iter()
            .enumerate()
            .filter(|(_, p)| answers(p, t))
            .max_by_key(|(_, p)| p.version)
            .map(|(pos, _)| pos);
        if let Some(pos) = newest {
            found[i] = Some(params.swap_remove(pos));
        }
    }
    found
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

    fn target<'a>(name: &'a str, version: Option<&'a str>, label: Option<&'a str>) -> Target<'a> {
        Target {
            name,
            version,
            label,
        }
    }

    #[test]
    fn selectors() {
        let t = target("/a", Some("3"), None);
        assert_eq!(request_name(&t), "/a:3");
        let t = target("/a", None, Some("prod"));
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
    fn pinned_and_unpinned_pair_is_order_independent() {
        let pinned = target("/p", Some("1"), None);
        let latest = target("/p", None, None);
        for reply in [
            vec![param("/p", 1, None), param("/p", 2, None)],
            vec![param("/p", 2, None), param("/p", 1, None)],
        ] {
            let got = assign(reply, &[latest, pinned]);
            let versions: Vec<Option<i64>> =
                got.iter().map(|p| p.as_ref().map(|p| p.version)).collect();
            assert_eq!(versions, vec![Some(2), Some(1)]);
        }
        let got = assign(vec![param("/p", 2, None)], &[pinned]);
        assert!(got[0].is_none(), "a pinned version never takes another one");
    }

    #[test]
    fn pinned_versions_match_with_or_without_selector() {
        let pinned = target("/a", Some("2"), None);
        let latest = target("/a", None, None);
        let labelled = target("/a", None, Some("prod"));
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
