//! The `onboard` file (`teams.yaml`): many teams, each a namespace, a service account and the
//! secrets it reads. The same types parse the file, validate it and generate its JSON Schema;
//! every error names the file, the line and column, and the team.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::render::names;
use crate::render::workload::JmesEntry;
use crate::resources::secrets::SecretRef;

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
    /// A unique name for the team (reports, `down --team`).
    pub name: String,
    pub namespace: String,
    pub service_account: ServiceAccountSpec,
    /// What the team's pods mount.
    pub secrets: Vec<SecretSpec>,
    /// Cross-account: the role the association chains to (its trust must allow bootstrap's
    /// role; the output prints the statement with its `sts:ExternalId`).
    #[serde(default)]
    pub target_role_arn: Option<String>,
    /// Read the team's Secrets Manager secrets by tag (`kubernetes-namespace` and
    /// `eks-cluster-name` on the secret matching the pod's session tags) instead of by ARN.
    #[serde(default)]
    pub abac: bool,
    /// Prove the mount with a sample pod of this team.
    #[serde(default)]
    pub verify: bool,
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

/// A secret: a Secrets Manager name or ARN, `ssm:NAME`, or an SSM parameter ARN.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    pub name: String,
    /// The file name in the mount.
    #[serde(default)]
    pub alias: Option<String>,
    /// Four octal digits, e.g. "0400".
    #[serde(default)]
    pub file_permission: Option<String>,
    /// JSON keys of the secret written as files of their own.
    #[serde(default)]
    pub jmes_path: Vec<JmesEntry>,
    /// `name` as [`parse`] validated it (parsed once, here).
    #[serde(skip)]
    #[schemars(skip)]
    parsed: Option<SecretRef>,
}

impl SecretSpec {
    /// The secret `name` names; `None` only for a spec that did not come through [`parse`].
    pub fn secret(&self) -> Option<&SecretRef> {
        self.parsed.as_ref()
    }
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

pub fn parse(path: &Path, text: &str) -> Result<TeamsFile, TeamsError> {
    let mut file: TeamsFile = serde_saphyr::from_str(text).map_err(|e| TeamsError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let parsed = validate(path, &file)?;
    for (team, secrets) in file.teams.iter_mut().zip(parsed) {
        for (spec, secret) in team.value.secrets.iter_mut().zip(secrets) {
            spec.parsed = Some(secret);
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

/// Every team's own rules, then the ones across teams (unique names and service accounts).
/// Returns each team's secrets, parsed.
fn validate(path: &Path, file: &TeamsFile) -> Result<Vec<Vec<SecretRef>>, TeamsError> {
    let mut parsed = Vec::new();
    let mut names = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    for spanned in &file.teams {
        let team = &spanned.value;
        let invalid = |problem: String| TeamsError::Invalid {
            path: path.to_path_buf(),
            line: spanned.referenced.line() as usize,
            column: spanned.referenced.column() as usize,
            team: team.name.clone(),
            problem,
        };
        if team.name.is_empty() {
            return Err(invalid("name must not be empty".into()));
        }
        if !names.insert(team.name.clone()) {
            return Err(invalid("another team has the same name".into()));
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
        let mut files = BTreeSet::new();
        let mut secrets = Vec::new();
        for secret in &team.secrets {
            secrets.push(
                SecretRef::parse(&secret.name).map_err(|p| invalid(format!("secrets: {p}")))?,
            );
            if let Some(mode) = &secret.file_permission
                && !octal_mode(mode)
            {
                return Err(invalid(format!(
                    "secret {}: filePermission {mode:?} must be four octal digits, e.g. \"0400\"",
                    secret.name
                )));
            }
            if let Some(alias) = &secret.alias {
                if let Some(p) = file_name_problem("alias", alias) {
                    return Err(invalid(format!("secret {}: {p}", secret.name)));
                }
                if !files.insert(alias.clone()) {
                    return Err(invalid(format!("alias {alias:?} is used twice")));
                }
            }
            for j in &secret.jmes_path {
                if let Some(p) = file_name_problem("objectAlias", &j.object_alias) {
                    return Err(invalid(format!("secret {}: jmesPath: {p}", secret.name)));
                }
                if !files.insert(j.object_alias.clone()) {
                    return Err(invalid(format!("file {:?} is used twice", j.object_alias)));
                }
                if let Some(mode) = &j.file_permission
                    && !octal_mode(mode)
                {
                    return Err(invalid(format!(
                        "secret {}: jmesPath {}: filePermission {mode:?} must be four octal digits",
                        secret.name, j.path
                    )));
                }
            }
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
            f.teams[0].value.secrets[0].jmes_path[0].object_alias,
            "db-password"
        );
        // Each secret is parsed once, here, and kept.
        let key = search.secrets[0].secret().expect("parsed");
        assert_eq!(
            (&key.kind, key.id.as_str()),
            (&SecretKind::SsmParameter, "/search/key")
        );
        let db = f.teams[0].value.secrets[0].secret().expect("parsed");
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
        ] {
            assert!(text.contains(field), "schema lacks {field}");
        }
        assert_eq!(schema["additionalProperties"], false);
    }
}
