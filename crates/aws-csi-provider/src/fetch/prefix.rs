//! Prefix objects (`matchPrefix: true`): every secret or parameter whose name starts with a
//! prefix, page by page — Secrets Manager `BatchGetSecretValue` with a `name` filter (20 values
//! a call), SSM `GetParametersByPath` (10 a call) — at most
//! [`MAX_PREFIX_MATCHES`](crate::objects::MAX_PREFIX_MATCHES) per object. Nothing is remembered
//! between mounts: a secret added under the prefix is in the next mount, a deleted one is not.

use aws_sdk_secretsmanager::types::{ApiErrorType, Filter, FilterNameStringType, SecretValueEntry};
use aws_sdk_ssm::types::Parameter;

use super::secrets_manager::secret_value;
use super::{ByteBudget, CallObserver, Fetched, classify_code, counted, over_budget};
use crate::error::FetchCause;
use crate::objects::MAX_PREFIX_MATCHES;
use bootstrap_common::secret::SecretBytes;

/// Values one BatchGetSecretValue page holds at most (its MaxResults limit).
pub const SM_PAGE: i32 = 20;
/// Parameters one GetParametersByPath page holds at most (its MaxResults limit).
pub const SSM_PAGE: i32 = 10;
/// Pages read at most for one prefix (AWS may answer empty pages with a next token).
pub const MAX_PAGES: usize = 200;
/// Matches counted at most past the limit, so that the error can say how many there are
/// without listing a whole account.
pub const COUNT_CAP: usize = 500;

/// One secret or parameter under a prefix.
#[derive(Debug)]
pub struct Match {
    /// Its full name.
    pub name: String,
    /// Its name after the prefix, without leading `/`: its file under the object's directory.
    pub file: String,
    pub fetched: Fetched,
}

/// Why a prefix object could not be mounted.
#[derive(Debug, Clone)]
pub enum PrefixFailure {
    /// A listing call failed as a whole.
    Call(FetchCause),
    /// One match could not be read (access denied, decryption, …): the mount fails naming it.
    Entry { name: String, cause: FetchCause },
    /// More matches than the limit; `capped` when counting stopped at [`COUNT_CAP`].
    TooMany { count: usize, capped: bool },
}

impl PrefixFailure {
    /// Whether the failover region should be tried.
    pub fn is_retryable(&self) -> bool {
        match self {
            PrefixFailure::Call(c) | PrefixFailure::Entry { cause: c, .. } => c.is_retryable(),
            PrefixFailure::TooMany { .. } => false,
        }
    }
}

/// A listing call that failed as a whole.
impl From<FetchCause> for PrefixFailure {
    fn from(cause: FetchCause) -> Self {
        PrefixFailure::Call(cause)
    }
}

/// The matches of a prefix (sorted by file), or why there are none to mount.
pub type PrefixOutcome = Result<Vec<Match>, PrefixFailure>;

/// One prefix object's listing: what to list and what the listing reports to and draws on.
#[derive(Clone, Copy)]
pub struct Listing<'a> {
    /// The name prefix (Secrets Manager) or path (SSM).
    pub prefix: &'a str,
    /// Whether names below a further `/` match too.
    pub recursive: bool,
    pub observer: &'a dyn CallObserver,
    pub budget: &'a ByteBudget,
}

impl Listing<'_> {
    /// Where `name` goes under the object's directory, if it is a match (see [`file_of`]).
    fn file_of<'n>(&self, name: &'n str) -> Option<&'n str> {
        file_of(self.prefix, self.recursive, name)
    }
}

/// The part of `name` after `prefix` that names its file, if `name` is under the prefix and
/// (unless `recursive`) a direct child of it.
pub fn file_of<'n>(prefix: &str, recursive: bool, name: &'n str) -> Option<&'n str> {
    let rest = name.strip_prefix(prefix)?.trim_start_matches('/');
    (recursive || !rest.contains('/')).then_some(rest)
}

/// The matches kept so far and how many there were.
struct Matches<'a> {
    listing: Listing<'a>,
    kept: Vec<Match>,
    count: usize,
}

impl<'a> Matches<'a> {
    fn new(listing: Listing<'a>) -> Self {
        Self {
            listing,
            kept: Vec::new(),
            count: 0,
        }
    }

    /// Takes one listed value: ignored when not under the prefix (a filter broader than the
    /// prefix) or seen already; counted; kept (and charged) while within the limit.
    fn offer(&mut self, name: String, fetched: Fetched) -> Result<(), PrefixFailure> {
        let Some(file) = self.listing.file_of(&name) else {
            return Ok(());
        };
        if self.kept.iter().any(|m| m.name == name) {
            return Ok(());
        }
        self.count += 1;
        if self.count > MAX_PREFIX_MATCHES {
            // Counted only: the value is dropped (and wiped) here.
            return if self.count >= COUNT_CAP {
                Err(PrefixFailure::TooMany {
                    count: self.count,
                    capped: true,
                })
            } else {
                Ok(())
            };
        }
        if !self.listing.budget.charge(fetched.value.len()) {
            return Err(PrefixFailure::Call(over_budget()));
        }
        let file = file.to_string();
        self.kept.push(Match {
            name,
            file,
            fetched,
        });
        Ok(())
    }

    fn finish(mut self) -> PrefixOutcome {
        if self.count > MAX_PREFIX_MATCHES {
            return Err(PrefixFailure::TooMany {
                count: self.count,
                capped: false,
            });
        }
        self.kept.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(self.kept)
    }
}

fn endless() -> PrefixFailure {
    PrefixFailure::Call(FetchCause::Transient {
        message: format!("the listing did not end after {MAX_PAGES} pages"),
    })
}

/// The secret name in a `SecretId` of a batch error: as given, or from an ARN (`…:secret:NAME-AbCdEf`).
fn name_of_id(id: &str) -> &str {
    let Some((_, tail)) = id.split_once(":secret:").filter(|_| id.starts_with("arn:")) else {
        return id;
    };
    match tail.rsplit_once('-') {
        Some((name, suffix))
            if suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            name
        }
        _ => tail,
    }
}

/// One listing page: the values on it, an entry error to fail with once they are offered, and
/// the next page's token.
struct Page {
    values: Vec<(String, Fetched)>,
    failed: Option<PrefixFailure>,
    next: Option<String>,
}

/// Reads the pages `page` lists (the first without a token, then each after the previous
/// one's next token) into the matches of the listing's prefix: at most [`MAX_PAGES`], within
/// its budget.
async fn paginate<F, Fut>(listing: Listing<'_>, mut page: F) -> PrefixOutcome
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page, PrefixFailure>>,
{
    let mut matches = Matches::new(listing);
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        if listing.budget.exhausted() {
            return Err(PrefixFailure::Call(over_budget()));
        }
        let listed = page(token.take()).await?;
        for (name, fetched) in listed.values {
            matches.offer(name, fetched)?;
        }
        if let Some(failed) = listed.failed {
            return Err(failed);
        }
        token = listed.next.filter(|t| !t.is_empty());
        if token.is_none() {
            return matches.finish();
        }
    }
    Err(endless())
}

/// Every Secrets Manager secret whose name starts with `prefix` (BatchGetSecretValue with the
/// `name` filter, paginated). Errors listed for secrets under the prefix fail the object
/// (access denied never looks like absence), except not found (deleted while listed).
pub async fn secrets_manager(
    client: &aws_sdk_secretsmanager::Client,
    listing: Listing<'_>,
) -> PrefixOutcome {
    const SERVICE: &str = "secretsmanager";
    paginate(listing, |token| async move {
        let by_name = Filter::builder().key(FilterNameStringType::Name);
        let result = client
            .batch_get_secret_value()
            .filters(by_name.values(listing.prefix).build())
            .max_results(SM_PAGE)
            .set_next_token(token)
            .send()
            .await;
        let mut out = counted(listing.observer, SERVICE, "BatchGetSecretValue", result)?;
        let failed =
            (out.errors.take().unwrap_or_default().iter()).find_map(|e| entry_failure(listing, e));
        Ok(Page {
            values: listed(out.secret_values.take(), secret_entry),
            failed,
            next: out.next_token.take(),
        })
    })
    .await
}

/// The named values of a listing page (entries without a name are skipped).
fn listed<T>(
    entries: Option<Vec<T>>,
    entry: fn(T) -> Option<(String, Fetched)>,
) -> Vec<(String, Fetched)> {
    entries
        .unwrap_or_default()
        .into_iter()
        .filter_map(entry)
        .collect()
}

/// A secret BatchGetSecretValue returned: its name, value and version id.
fn secret_entry(mut v: SecretValueEntry) -> Option<(String, Fetched)> {
    let name = v.name.take()?;
    let value = secret_value(v.secret_string.take(), v.secret_binary.take());
    let version = v.version_id.take().unwrap_or_default();
    Some((name, Fetched { value, version }))
}

/// A parameter GetParametersByPath returned: its name, (decrypted) value and version.
fn parameter_entry(mut p: Parameter) -> Option<(String, Fetched)> {
    let name = p.name.take()?;
    let value = SecretBytes::from_string(p.value.take().unwrap_or_default());
    let version = p.version.to_string();
    Some((name, Fetched { value, version }))
}

/// Why an error BatchGetSecretValue listed fails the prefix: one of a secret under it, other
/// than not found (deleted while listed).
fn entry_failure(listing: Listing<'_>, e: &ApiErrorType) -> Option<PrefixFailure> {
    let id = e.secret_id.as_deref().unwrap_or("");
    listing.file_of(name_of_id(id))?;
    let cause = classify_code(
        e.error_code.as_deref().unwrap_or(""),
        e.message.as_deref().unwrap_or(""),
        None,
    );
    (!matches!(cause, FetchCause::NotFound)).then(|| PrefixFailure::Entry {
        name: name_of_id(id).to_string(),
        cause,
    })
}

/// Every SSM parameter under the path `prefix` (GetParametersByPath with decryption,
/// paginated; `recursive` as given).
pub async fn ssm(client: &aws_sdk_ssm::Client, listing: Listing<'_>) -> PrefixOutcome {
    const SERVICE: &str = "ssm";
    paginate(listing, |token| async move {
        let result = client
            .get_parameters_by_path()
            .path(listing.prefix)
            .recursive(listing.recursive)
            .with_decryption(true)
            .max_results(SSM_PAGE)
            .set_next_token(token)
            .send()
            .await;
        let mut out = counted(listing.observer, SERVICE, "GetParametersByPath", result)?;
        Ok(Page {
            values: listed(out.parameters.take(), parameter_entry),
            failed: None,
            next: out.next_token.take(),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_under_a_prefix() {
        assert_eq!(
            file_of("teams/p/", true, "teams/p/db/main"),
            Some("db/main")
        );
        assert_eq!(file_of("teams/p/", false, "teams/p/db/main"), None);
        assert_eq!(file_of("teams/p/", false, "teams/p/db"), Some("db"));
        assert_eq!(file_of("/teams/p", true, "/teams/p/db"), Some("db"));
        assert_eq!(file_of("teams/p/", true, "teams/q/db"), None);
        assert_eq!(
            file_of("teams/p/", true, "Teams/p/db"),
            None,
            "case-sensitive"
        );
    }

    #[test]
    fn names_of_batch_error_ids() {
        assert_eq!(
            name_of_id("arn:aws:secretsmanager:us-east-1:1:secret:teams/p/db-AbCdEf"),
            "teams/p/db"
        );
        assert_eq!(name_of_id("teams/p/db"), "teams/p/db");
        assert_eq!(
            name_of_id("arn:aws:secretsmanager:us-east-1:1:secret:x-y"),
            "x-y"
        );
    }
}
