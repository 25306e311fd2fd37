//! The `onboard` file (`teams.yaml`): many teams, each a namespace, a service account and the
//! secrets it reads. The same types parse the file, validate it and generate its JSON Schema;
//! every error names the file, the line and column, and the team.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::render::names;
use crate::render::workload::{JmesEntry, alias_for, is_secret_key};
use crate::resources::secrets::{SecretKind, SecretRef};

/// The whole file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "bootstrap onboard teams file")]
pub struct TeamsFile {
    /// The EKS cluster (`--cluster` wins).
    #[serde(default)]
    pub cluster: Option<String>,
    /// The AWS region (`--region` wins).
    #[serde(default)]
    pub region: Option<String>,
    /// The teams to onboard.
    #[schemars(with = "Vec<Team>")]
    pub teams: Vec<Spanned<Team>>,
}

/// One team: its service account gets a role that reads exactly its secrets.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Team {
    /// A unique name for the team (reports, `down --team`); default: its namespace (two
    /// unnamed teams in one namespace need names).
    #[serde(default, rename = "name")]
    #[schemars(rename = "name")]
    given_name: Option<String>,
    /// The name as used: `name`, or the namespace (set by [`parse`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub name: String,
    pub namespace: String,
    pub service_account: ServiceAccountSpec,
    /// What the team's pods mount: a name as a string (`teams/payments/db`,
    /// `ssm:/teams/x/token`), or a mapping with options.
    #[schemars(with = "Vec<SecretEntrySchema>")]
    pub secrets: Vec<Spanned<SecretEntry>>,
    /// Cross-account: the role the association chains to (its trust must allow bootstrap's
    /// role; the output prints the statement with its `sts:ExternalId`).
    #[serde(default)]
    pub target_role_arn: Option<String>,
    /// Read the team's Secrets Manager secrets by tag (`kubernetes-namespace` and
    /// `eks-cluster-name` on the secret matching the pod's session tags) instead of by ARN.
    #[serde(default)]
    pub abac: bool,
    /// A region the provider reads from when the cluster's region fails (the SecretProviderClass's
    /// `failoverRegion`): the secrets must be replicated there; the role reads the replicas
    /// too, and decrypts with their customer keys.
    #[serde(default)]
    pub failover_region: Option<String>,
    /// Prove the mount with a sample pod of this team.
    #[serde(default)]
    pub verify: bool,
    /// The TeamSecrets object this team comes from (the controller's), labelled on its objects.
    #[serde(skip)]
    #[schemars(skip)]
    pub owner: Option<String>,
    /// The path and permissions boundary its role is made with (the controller's).
    #[serde(skip)]
    #[schemars(skip)]
    pub confinement: Option<crate::resources::role::Confinement>,
}

impl Team {
    /// The team's secrets as the file gives them.
    pub fn secret_specs(&self) -> impl Iterator<Item = &SecretSpec> {
        self.secrets.iter().map(|s| &s.value.0)
    }
}

/// A service account by name, or with `existing: true` when Helm or the team owns it (then it
/// is never created, labelled or deleted).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ServiceAccountSpec {
    Name(String),
    Detailed(ServiceAccountDetail),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccountDetail {
    pub name: String,
    #[serde(default)]
    pub existing: bool,
}

impl ServiceAccountSpec {
    pub fn name(&self) -> &str {
        match self {
            ServiceAccountSpec::Name(n) => n,
            ServiceAccountSpec::Detailed(d) => &d.name,
        }
    }

    pub fn existing(&self) -> bool {
        matches!(self, ServiceAccountSpec::Detailed(d) if d.existing)
    }
}

/// A secret: a Secrets Manager name or ARN, `ssm:NAME`, or an SSM parameter ARN; or a prefix.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// One secret: a Secrets Manager name or ARN, `ssm:NAME`, or an SSM parameter ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Instead of `name`: every secret whose name starts with this (`teams/payments/`), or
    /// every SSM parameter under a path (`ssm:/teams/payments/`), one file each named by the
    /// rest of its name. The role reads exactly this prefix's ARN pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// With `prefix`: `false` keeps only direct children (no further `/`). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// With `name`: every top-level key of the JSON secret as a file of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_keys: bool,
    /// A missing secret is skipped with a warning (access denied still fails the mount).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Sync into this Kubernetes Secret (of the team's namespace): the secret's file as one
    /// key named by the file, or with `allKeys` one key per JSON key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<String>,
    /// The file name in the mount (with `prefix`: the directory of its files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Four octal digits, e.g. "0400".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_permission: Option<String>,
    /// JSON keys of the secret written as files of their own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jmes_path: Vec<JmesEntry>,
    /// `name` or `prefix` as [`parse`] validated it (parsed once, here).
    #[serde(skip)]
    #[schemars(skip)]
    parsed: Option<SecretRef>,
}

impl SecretSpec {
    /// The secret `name` (or prefix) names; `None` only for a spec that did not come through
    /// [`parse`].
    pub fn secret(&self) -> Option<&SecretRef> {
        self.parsed.as_ref()
    }

    /// What the file calls it: its name or its prefix.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .or(self.prefix.as_deref())
            .unwrap_or("(unnamed)")
    }

    /// The file a plain secret is mounted as (its alias, or as derived from the name), which
    /// `sync` uses as the key.
    fn file_name(&self, secret: &SecretRef) -> String {
        self.alias.clone().unwrap_or_else(|| alias_for(&secret.id))
    }
}

/// One entry of `secrets`: a mapping, or a bare string as shorthand for `{name: ...}`.
#[derive(Debug, Clone)]
pub struct SecretEntry(pub SecretSpec);

impl<'de> Deserialize<'de> for SecretEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = SecretEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a secret name, or a mapping with `name` or `prefix`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretEntry, E> {
                Ok(SecretEntry(SecretSpec {
                    name: Some(v.to_string()),
                    ..SecretSpec::default()
                }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretEntry, A::Error> {
                SecretSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SecretEntry)
            }
        }
        d.deserialize_any(Entry)
    }
}

/// The schema of one `secrets` entry (a name, or the mapping).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum SecretEntrySchema {
    Name(String),
    Detailed(SecretSpec),
}

/// A bad teams file: where, which team, and what.
#[derive(Debug, thiserror::Error)]
pub enum TeamsError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: team {team:?}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        team: String,
        problem: String,
    },
}

/// The JSON Schema of the file, from the same types that parse it.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TeamsFile)).unwrap_or_default()
}

/// Reads, parses and validates a teams file; nothing is returned unless every team is valid.
pub fn load(path: &Path) -> Result<TeamsFile, TeamsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TeamsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// The most secret entries one team (one role, one SecretProviderClass) may list.
pub const MAX_SECRETS: usize = 100;

pub fn parse(path: &Path, text: &str) -> Result<TeamsFile, TeamsError> {
    let mut file: TeamsFile = serde_saphyr::from_str(text).map_err(|e| TeamsError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    for team in &mut file.teams {
        let team = &mut team.value;
        team.name = team
            .given_name
            .clone()
            .unwrap_or_else(|| team.namespace.clone());
    }
    let parsed = validate(path, &file)?;
    for (team, secrets) in file.teams.iter_mut().zip(parsed) {
        for (spec, secret) in team.value.secrets.iter_mut().zip(secrets) {
            spec.value.0.parsed = Some(secret);
        }
    }
    Ok(file)
}

fn octal_mode(mode: &str) -> bool {
    mode.len() == 4 && mode.chars().all(|c| ('0'..='7').contains(&c))
}

fn file_name_problem(what: &str, name: &str) -> Option<String> {
    (name.is_empty() || name.contains('/') || name == "." || name == ".." || name.starts_with(".."))
        .then(|| format!("{what} {name:?} is not a file name (no '/', not '.' or '..')"))
}

/// An AWS region name: `xx-word-N` (`us-west-2`, `ap-southeast-1`, `us-gov-west-1`).
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Why a team's `failoverRegion` is wrong for a cluster in `region`, or `None`.
pub fn failover_problem(failover: &str, region: Option<&str>) -> Option<String> {
    if !is_region(failover) {
        return Some(format!(
            "failoverRegion {failover:?} is not an AWS region name (e.g. \"us-west-2\")"
        ));
    }
    (region == Some(failover)).then(|| {
        format!(
            "failoverRegion {failover:?} is the cluster's region; name another region the secrets are replicated to"
        )
    })
}

/// One secret's own rules (`abac`: the team reads Secrets Manager secrets by tag).
fn secret_problem(spec: &SecretSpec, abac: bool) -> Result<SecretRef, String> {
    let label = spec.label();
    let parsed = match (&spec.name, &spec.prefix) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "secret {label}: `name` and `prefix` exclude each other; list them as two secrets"
            ));
        }
        (None, None) => return Err("a secret needs `name` or `prefix`".into()),
        (Some(name), None) => SecretRef::parse(name).map_err(|p| format!("secrets: {p}"))?,
        (None, Some(prefix)) => {
            SecretRef::parse_prefix(prefix).map_err(|p| format!("secrets: {p}"))?
        }
    };
    let is_prefix = spec.prefix.is_some();
    let refuse = |what: &str| Err(format!("secret {label}: {what}"));
    if spec.recursive.is_some() && !is_prefix {
        return refuse("`recursive` applies to a `prefix` only");
    }
    if is_prefix && spec.all_keys {
        return refuse("`allKeys` applies to one secret (`name`), not a `prefix`");
    }
    if is_prefix && !spec.jmes_path.is_empty() {
        return refuse("`jmesPath` applies to one secret (`name`), not a `prefix`");
    }
    if spec.all_keys && !spec.jmes_path.is_empty() {
        return refuse(
            "`allKeys` and `jmesPath` exclude each other (allKeys already writes every key)",
        );
    }
    if is_prefix && abac && parsed.kind == SecretKind::SecretsManager {
        return refuse(
            "a Secrets Manager `prefix` is not for an `abac` team (abac reads by tag; a prefix \
             grants by name): drop `abac`, or tag the secrets and list them by name",
        );
    }
    if let Some(sync) = &spec.sync {
        if let Some(p) = names::subdomain_problem("sync", sync) {
            return refuse(&p);
        }
        if is_prefix {
            return refuse(
                "`sync` needs known file names; a prefix's files vary (sync named secrets instead)",
            );
        }
        if spec.optional {
            return refuse(
                "`sync` of an `optional` secret: the Secret could not be made while it is missing",
            );
        }
        if !spec.all_keys {
            let key = spec.file_name(&parsed);
            if !is_secret_key(&key) {
                return refuse(&format!(
                    "`sync` uses the file name {key:?} as the Secret's key, which is not a valid \
                     key (letters, digits, '-', '.', '_'); set an `alias`"
                ));
            }
        }
    }
    if let Some(mode) = &spec.file_permission
        && !octal_mode(mode)
    {
        return refuse(&format!(
            "filePermission {mode:?} must be four octal digits, e.g. \"0400\""
        ));
    }
    if let Some(alias) = &spec.alias
        && let Some(p) = file_name_problem("alias", alias)
    {
        return refuse(&p);
    }
    for j in &spec.jmes_path {
        if let Some(p) = file_name_problem("objectAlias", &j.object_alias) {
            return refuse(&format!("jmesPath: {p}"));
        }
        if let Some(mode) = &j.file_permission
            && !octal_mode(mode)
        {
            return refuse(&format!(
                "jmesPath {}: filePermission {mode:?} must be four octal digits",
                j.path
            ));
        }
    }
    Ok(parsed)
}

/// Every team's own rules, then the ones across teams (unique names and service accounts).
/// Errors about one secret point at that secret. Returns each team's secrets, parsed.
fn validate(path: &Path, file: &TeamsFile) -> Result<Vec<Vec<SecretRef>>, TeamsError> {
    let mut parsed = Vec::new();
    let mut names = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    for spanned in &file.teams {
        let team = &spanned.value;
        let at = |span: &serde_saphyr::Location, problem: String| TeamsError::Invalid {
            path: path.to_path_buf(),
            line: span.line() as usize,
            column: span.column() as usize,
            team: team.name.clone(),
            problem,
        };
        let invalid = |problem: String| at(&spanned.referenced, problem);
        if team.name.is_empty() {
            return Err(invalid("name must not be empty".into()));
        }
        if !names.insert(team.name.clone()) {
            return Err(invalid(if team.given_name.is_none() {
                format!(
                    "this team has no `name`, so it is named after its namespace {}, which another \
                     team's name already is; give each team of namespace {} a `name`",
                    team.namespace, team.namespace
                )
            } else {
                "another team has the same name".into()
            }));
        }
        if let Some(p) = names::label_problem("namespace", &team.namespace) {
            return Err(invalid(p));
        }
        let sa = team.service_account.name();
        if let Some(p) = names::subdomain_problem("serviceAccount", sa) {
            return Err(invalid(p));
        }
        if !accounts.insert((team.namespace.clone(), sa.to_string())) {
            return Err(invalid(format!(
                "service account {}/{sa} belongs to another team already (one role per service account)",
                team.namespace
            )));
        }
        if team.secrets.is_empty() {
            return Err(invalid("secrets must list at least one secret".into()));
        }
        if team.secrets.len() > MAX_SECRETS {
            return Err(invalid(format!(
                "secrets lists {} entries, more than {MAX_SECRETS}: one role's read policy would not fit IAM's inline-policy limit; split the team over service accounts, or read many with a prefix",
                team.secrets.len()
            )));
        }
        if let Some(failover) = &team.failover_region
            && let Some(p) = failover_problem(failover, file.region.as_deref())
        {
            return Err(invalid(p));
        }
        let mut files = BTreeSet::new();
        // (Secret, key) -> the secret that syncs it.
        let mut synced: std::collections::BTreeMap<(String, String), String> = Default::default();
        let mut secrets = Vec::new();
        for entry in &team.secrets {
            let spec = &entry.value.0;
            let here = |problem: String| at(&entry.referenced, problem);
            let secret = secret_problem(spec, team.abac).map_err(here)?;
            if let Some(alias) = &spec.alias
                && !files.insert(alias.clone())
            {
                return Err(here(format!("alias {alias:?} is used twice")));
            }
            for j in &spec.jmes_path {
                if !files.insert(j.object_alias.clone()) {
                    return Err(here(format!("file {:?} is used twice", j.object_alias)));
                }
            }
            if let Some(sync) = &spec.sync
                && !spec.all_keys
            {
                let key = spec.file_name(&secret);
                if let Some(other) = synced.insert((sync.clone(), key.clone()), spec.label().into())
                {
                    return Err(here(format!(
                        "secrets {other} and {} both sync key {key:?} into Secret {sync}; set an \
                         `alias` on one, or sync it into another Secret",
                        spec.label()
                    )));
                }
            }
            secrets.push(secret);
        }
        if let Some(arn) = &team.target_role_arn
            && !(arn.starts_with("arn:aws:iam::") && arn.contains(":role/"))
        {
            return Err(invalid(format!(
                "targetRoleArn {arn:?} is not an IAM role ARN"
            )));
        }
        parsed.push(secrets);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::secrets::SecretKind;

    const GOOD: &str = "\
cluster: demo
teams:
  - name: payments
    namespace: payments
    serviceAccount: api
    secrets:
      - name: prod/payments/db
        alias: db.json
        jmesPath:
          - path: password
            objectAlias: db-password
            filePermission: \"0400\"
  - name: search
    namespace: search
    serviceAccount: {name: indexer, existing: true}
    secrets: [{name: \"ssm:/search/key\"}]
    abac: true
    verify: true
";

    #[test]
    fn a_good_file_parses_with_every_option() {
        let f = parse(Path::new("teams.yaml"), GOOD).expect("valid");
        assert_eq!(f.cluster.as_deref(), Some("demo"));
        assert_eq!(f.teams.len(), 2);
        let search = &f.teams[1].value;
        assert!(search.service_account.existing());
        assert_eq!(search.service_account.name(), "indexer");
        assert!(search.abac && search.verify);
        assert_eq!(
            f.teams[0].value.secrets[0].value.0.jmes_path[0].object_alias,
            "db-password"
        );
        // Each secret is parsed once, here, and kept.
        let key = search.secrets[0].value.0.secret().expect("parsed");
        assert_eq!(
            (&key.kind, key.id.as_str()),
            (&SecretKind::SsmParameter, "/search/key")
        );
        let db = f.teams[0].value.secrets[0]
            .value
            .0
            .secret()
            .expect("parsed");
        assert_eq!(db.id, "prod/payments/db");
    }

    #[test]
    fn unknown_fields_name_the_line_and_column() {
        let bad = GOOD.replace("    abac: true", "    abca: true");
        let err = parse(Path::new("teams.yaml"), &bad).expect_err("unknown field");
        let text = err.to_string();
        assert!(text.contains("teams.yaml"), "{text}");
        assert!(text.contains("abca"), "{text}");
        assert!(text.contains("line 17 column 5"), "{text}");
    }

    #[test]
    fn invalid_teams_are_named_with_their_location() {
        let bad = GOOD.replace("namespace: search", "namespace: Search_Team");
        let err = parse(Path::new("t.yaml"), &bad).expect_err("invalid namespace");
        let text = err.to_string();
        assert!(text.starts_with("t.yaml:13:"), "{text}");
        assert!(text.contains("team \"search\""), "{text}");
        let dup = GOOD.replace(
            "namespace: search\n    serviceAccount: {name: indexer",
            "namespace: payments\n    serviceAccount: {name: api",
        );
        let err = parse(Path::new("t.yaml"), &dup).expect_err("same SA twice");
        assert!(err.to_string().contains("belongs to another team"), "{err}");
        let mode = GOOD.replace("\"0400\"", "\"400\"");
        assert!(parse(Path::new("t.yaml"), &mode).is_err());
        let traversal = GOOD.replace("alias: db.json", "alias: ../db.json");
        assert!(parse(Path::new("t.yaml"), &traversal).is_err());
    }

    #[test]
    fn the_schema_comes_from_the_same_types() {
        let schema = schema();
        let text = schema.to_string();
        for field in [
            "serviceAccount",
            "targetRoleArn",
            "abac",
            "jmesPath",
            "filePermission",
            "existing",
            "prefix",
            "recursive",
            "allKeys",
            "optional",
            "sync",
            "failoverRegion",
        ] {
            assert!(text.contains(field), "schema lacks {field}");
        }
        assert_eq!(schema["additionalProperties"], false);
    }

    /// A team using every option of issue 19, at known lines.
    const NEW: &str = "\
region: eu-west-1
teams:
  - namespace: payments
    serviceAccount: api
    failoverRegion: us-west-2
    secrets:
      - teams/payments/db
      - \"ssm:/teams/payments/token\"
      - {prefix: teams/payments/shared/, recursive: false}
      - name: teams/payments/cfg
        allKeys: true
        sync: payments-cfg
      - name: teams/payments/later
        optional: true
      - name: teams/payments/tls
        alias: tls.pem
        sync: payments-tls
";

    fn err(text: &str) -> String {
        parse(Path::new("t.yaml"), text)
            .expect_err("invalid")
            .to_string()
    }

    /// `NEW` with the secret entry at `line` (1-based) replaced by `entry`.
    fn with_entry(line: usize, entry: &str) -> String {
        let mut lines: Vec<&str> = NEW.lines().collect();
        lines[line - 1] = entry;
        lines.join("\n") + "\n"
    }

    #[test]
    fn bare_names_unnamed_teams_and_the_new_fields_parse() {
        let f = parse(Path::new("t.yaml"), NEW).expect("valid");
        let team = &f.teams[0].value;
        assert_eq!(team.name, "payments", "named after its namespace");
        assert_eq!(team.failover_region.as_deref(), Some("us-west-2"));
        let specs: Vec<&SecretSpec> = team.secret_specs().collect();
        assert_eq!(specs[0].name.as_deref(), Some("teams/payments/db"));
        let token = specs[1].secret().expect("parsed");
        assert_eq!(
            (&token.kind, token.id.as_str()),
            (&SecretKind::SsmParameter, "/teams/payments/token")
        );
        assert_eq!(specs[2].prefix.as_deref(), Some("teams/payments/shared/"));
        assert_eq!(specs[2].recursive, Some(false));
        assert_eq!(
            specs[2].secret().map(|s| s.id.as_str()),
            Some("teams/payments/shared/")
        );
        assert!(specs[3].all_keys);
        assert_eq!(specs[3].sync.as_deref(), Some("payments-cfg"));
        assert!(specs[4].optional);
        // An explicit name still wins, and the old file keeps its names.
        let named = NEW.replace(
            "  - namespace: payments",
            "  - name: pay\n    namespace: payments",
        );
        let f = parse(Path::new("t.yaml"), &named).expect("valid");
        assert_eq!(f.teams[0].value.name, "pay");
        let old = parse(Path::new("t.yaml"), GOOD).expect("valid");
        assert_eq!(old.teams[1].value.name, "search");
    }

    #[test]
    fn two_unnamed_teams_of_one_namespace_are_asked_for_names() {
        let two = format!(
            "{NEW}  - namespace: payments\n    serviceAccount: worker\n    secrets: [teams/payments/db]\n"
        );
        let e = err(&two);
        assert!(e.starts_with("t.yaml:18:5: team \"payments\""), "{e}");
        assert!(
            e.contains("give each team of namespace payments a `name`"),
            "{e}"
        );
    }

    #[test]
    fn every_new_field_is_refused_with_the_secret_s_location() {
        // (line of the entry, replacement, what the error says)
        let cases: &[(usize, &str, &str)] = &[
            (
                9,
                "      - {prefix: teams/payments/, allKeys: true}",
                "`allKeys` applies to one secret",
            ),
            (
                9,
                "      - {name: teams/payments/x, recursive: false}",
                "`recursive` applies to a `prefix` only",
            ),
            (9, "      - {name: x, prefix: teams/}", "exclude each other"),
            (9, "      - {alias: x}", "needs `name` or `prefix`"),
            (9, "      - {prefix: \"\"}", "must not be empty"),
            (9, "      - {prefix: /}", "every secret of the account"),
            (
                9,
                "      - {prefix: \"ssm:///\"}",
                "every secret of the account",
            ),
            (9, "      - {prefix: \"teams/*/db\"}", "wildcard"),
            (9, "      - {prefix: \"teams/pay?\"}", "wildcard"),
            (
                9,
                "      - {prefix: \"ssm:teams/x\"}",
                "must be a path starting with '/'",
            ),
            (
                9,
                "      - {prefix: \"arn:aws:secretsmanager:eu-west-1:1:secret:teams/\"}",
                "is an ARN",
            ),
            (
                9,
                "      - {name: x, allKeys: true, jmesPath: [{path: a, objectAlias: a}]}",
                "`allKeys` and `jmesPath` exclude each other",
            ),
            (
                9,
                "      - {prefix: teams/, jmesPath: [{path: a, objectAlias: a}]}",
                "`jmesPath` applies to one secret",
            ),
            (
                9,
                "      - {name: x, sync: Not_A_Secret}",
                "sync name \"Not_A_Secret\" is not a valid Kubernetes name",
            ),
            (
                9,
                "      - {prefix: teams/, sync: s}",
                "a prefix's files vary",
            ),
            (
                9,
                "      - {name: x, optional: true, sync: s}",
                "`sync` of an `optional` secret",
            ),
            (
                9,
                "      - {name: x, alias: \"a:b\", sync: s}",
                "not a valid key",
            ),
            (
                9,
                "      - {name: teams/other/tls, alias: tls2, sync: payments-tls, filePermission: \"999\"}",
                "filePermission",
            ),
        ];
        for (line, entry, says) in cases {
            let e = err(&with_entry(*line, entry));
            assert!(
                e.starts_with(&format!("t.yaml:{line}:")) && e.contains("team \"payments\""),
                "{entry}: {e}"
            );
            assert!(e.contains(says), "{entry}: {e}");
        }
    }

    #[test]
    fn two_secrets_syncing_one_key_into_one_secret_are_refused() {
        let text = with_entry(9, "      - {name: teams/other/tls.pem, sync: payments-tls}")
            .replace("alias: tls.pem", "alias: teams_other_tls.pem");
        let e = err(&text);
        assert!(e.starts_with("t.yaml:15:"), "{e}");
        assert!(
            e.contains("both sync key \"teams_other_tls.pem\" into Secret payments-tls"),
            "{e}"
        );
        // The same key into another Secret is fine.
        let fine = text.replace("sync: payments-tls\n", "sync: payments-tls-2\n");
        parse(Path::new("t.yaml"), &fine).expect("another Secret");
    }

    #[test]
    fn failover_region_must_be_a_region_other_than_the_cluster_s() {
        for (bad, says) in [
            ("eu-west-1", "is the cluster's region"),
            ("uswest2", "not an AWS region name"),
            ("us-west-", "not an AWS region name"),
            ("US-WEST-2", "not an AWS region name"),
        ] {
            let e = err(&NEW.replace(
                "failoverRegion: us-west-2",
                &format!("failoverRegion: {bad}"),
            ));
            assert!(e.starts_with("t.yaml:3:5: team \"payments\""), "{bad}: {e}");
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(failover_problem("us-gov-west-1", Some("us-east-1")).is_none());
        assert!(failover_problem("us-west-2", Some("us-west-2")).is_some());
    }

    #[test]
    fn an_abac_team_takes_no_secrets_manager_prefix() {
        let abac = NEW.replace("    failoverRegion: us-west-2\n", "    abac: true\n");
        let e = err(&abac);
        assert!(e.starts_with("t.yaml:9:"), "{e}");
        assert!(e.contains("not for an `abac` team"), "{e}");
        // An SSM path is granted by ARN as for any team.
        let ssm = abac.replace(
            "prefix: teams/payments/shared/",
            "prefix: \"ssm:/teams/payments/\"",
        );
        parse(Path::new("t.yaml"), &ssm).expect("abac with an SSM path");
    }

    #[test]
    fn a_bad_entry_in_the_mapping_form_keeps_its_location() {
        let e = err(&with_entry(9, "      - {name: x, recursve: false}"));
        assert!(e.contains("recursve"), "{e}");
        assert!(e.contains("line 9"), "{e}");
        let e = err(&with_entry(9, "      - 42"));
        assert!(e.contains("line 9"), "{e}");
    }
}
