//! The controller's two kinds: `TeamSecrets` (namespaced, a team's request — the same entries as
//! a team of `teams.yaml`) and `SecretAllowance` (cluster-scoped, an administrator's bound on
//! what namespaces may read), their status, and the conversions to and from a `teams.yaml` team.

use std::path::Path;

use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::teams::{SecretSpec, ServiceAccountSpec, Team};

/// The API group of both kinds.
pub const GROUP: &str = "bootstrap.podid";

/// What a team asks for in its own namespace: a role its service account alone can use, that
/// reads exactly these secrets, its association, and a SecretProviderClass `bootstrap-<sa>`.
#[derive(CustomResource, Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "bootstrap.podid",
    version = "v1alpha1",
    kind = "TeamSecrets",
    plural = "teamsecrets",
    shortname = "tsec",
    namespaced,
    status = "TeamSecretsStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".status.roleArn","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamSecretsSpec {
    /// The ServiceAccount the team's pods run as (in this object's namespace).
    pub service_account: String,
    /// The ServiceAccount exists already (Helm or the team owns it): never created or deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existing_service_account: bool,
    /// What the pods mount: the entries of a team in `teams.yaml` (`name`, `prefix`,
    /// `allKeys`, `optional`, `sync`, `alias`, `jmesPath`, …); at most 100.
    #[schemars(length(min = 1, max = 100))]
    pub secrets: Vec<SecretSpec>,
    /// Cross-account: the role the association chains to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_role_arn: Option<String>,
    /// Read Secrets Manager secrets by tag instead of by ARN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abac: bool,
    /// A region the provider reads replicas from when the cluster's region fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_region: Option<String>,
    /// Prove the mount with a sample pod on each change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
}

/// What the controller last did with a TeamSecrets object.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TeamSecretsStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and one per part: `RoleReady`, `AssociationReady`, `ObjectsReady`, `Verified`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The team's IAM role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// The SecretProviderClass the team's pods name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_provider_class: Option<String>,
    /// The last failure, and what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// What the last reconcile that wrote anything wrote (a resync that finds nothing to do
    /// leaves these and `lastChangeTime` as they were).
    #[serde(default)]
    pub created: u32,
    #[serde(default)]
    pub updated: u32,
    #[serde(default)]
    pub unchanged: u32,
    /// When that reconcile ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<String>,
}

/// A condition as Kubernetes conventions have it.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Which namespaces may read which secrets. Without any allowance nothing is allowed; a
/// request is allowed when each of its parts is allowed by one that names the namespace (they add
/// up). Only administrators can write these (cluster-scoped).
#[derive(CustomResource, Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "bootstrap.podid",
    version = "v1alpha1",
    kind = "SecretAllowance",
    plural = "secretallowances",
    shortname = "sallow",
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretAllowanceSpec {
    /// Namespaces it applies to: a name, or a prefix ending in `*` (`team-*`).
    pub namespaces: Vec<String>,
    /// Secrets Manager secrets: a name, a prefix ending in `*`, or a full ARN (pattern); the
    /// text `{namespace}` stands for the requesting namespace (`teams/{namespace}/*`).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// SSM parameters, the same way (`/teams/{namespace}/*`).
    #[serde(default)]
    pub ssm_parameters: Vec<String>,
    /// Cross-account roles a team may chain to (exact ARNs or `*`-ending prefixes).
    #[serde(default)]
    pub target_role_arns: Vec<String>,
    /// Allow `abac: true` (reading every secret tagged for the namespace and cluster).
    #[serde(default)]
    pub abac: bool,
    /// Allow `failoverRegion` to any of these regions.
    #[serde(default)]
    pub failover_regions: Vec<String>,
}

/// Both CustomResourceDefinitions, as `--print-crds` prints them and tests install them.
pub fn crds() -> Vec<serde_json::Value> {
    [TeamSecrets::crd(), SecretAllowance::crd()]
        .into_iter()
        .map(|crd| {
            let mut value = serde_json::to_value(crd).unwrap_or_default();
            let mut labels = serde_json::Map::new();
            labels.insert(
                bootstrap_common::names::LABEL_MANAGED_BY.into(),
                "bootstrap".into(),
            );
            value["metadata"]["labels"] = labels.into();
            value
        })
        .collect()
}

/// The team a TeamSecrets object asks for, validated as `teams.yaml` validates a team (every
/// error the file would give, located in the object). The namespace is the object's own.
pub fn team_of(obj: &TeamSecrets) -> Result<Team, String> {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let mut spec = serde_json::to_value(&obj.spec).map_err(|e| e.to_string())?;
    let fields = spec.as_object_mut().ok_or("spec is not a mapping")?;
    let sa = fields.remove("serviceAccount").unwrap_or_default();
    let existing = fields
        .remove("existingServiceAccount")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    fields.insert(
        "serviceAccount".into(),
        serde_json::json!({"name": sa, "existing": existing}),
    );
    fields.insert("name".into(), name.clone().into());
    fields.insert("namespace".into(), namespace.clone().into());
    // JSON is YAML: the file's parser checks the team exactly as it checks a file's.
    let text = serde_json::to_string_pretty(&serde_json::json!({ "teams": [spec] }))
        .map_err(|e| e.to_string())?;
    let label = format!("TeamSecrets {namespace}/{name}");
    let file = crate::teams::parse(Path::new(&label), &text).map_err(|e| e.to_string())?;
    let mut team = file
        .teams
        .into_iter()
        .next()
        .map(|t| t.value)
        .ok_or("no team")?;
    team.owner = Some(name);
    Ok(team)
}

/// A `teams.yaml` team as the TeamSecrets object that asks for the same
/// (`onboard --emit-manifests`): a team file and a GitOps repository are two forms of one thing.
pub fn from_team(team: &Team) -> TeamSecrets {
    let (sa, existing) = match &team.service_account {
        ServiceAccountSpec::Name(n) => (n.clone(), false),
        ServiceAccountSpec::Detailed(d) => (d.name.clone(), d.existing),
    };
    let mut obj = TeamSecrets::new(
        &team.name,
        TeamSecretsSpec {
            service_account: sa,
            existing_service_account: existing,
            secrets: team.secret_specs().cloned().collect(),
            target_role_arn: team.target_role_arn.clone(),
            abac: team.abac,
            failover_region: team.failover_region.clone(),
            verify: team.verify,
        },
    );
    obj.metadata.namespace = Some(team.namespace.clone());
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(ns: &str, name: &str, spec: serde_json::Value) -> TeamSecrets {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
            "metadata": {"name": name, "namespace": ns}, "spec": spec,
        }))
        .expect("a TeamSecrets object")
    }

    #[test]
    fn huge_long_and_nested_requests_are_refused_with_a_reason() {
        // More entries than one role's policy can hold (the apiserver's maxItems refuses them
        // too; the controller does not rely on it).
        let many: Vec<_> = (0..101)
            .map(|i| serde_json::json!({"name": format!("teams/payments/s{i}")}))
            .collect();
        let obj = object(
            "payments",
            "api",
            serde_json::json!({"serviceAccount": "api", "secrets": many}),
        );
        let e = team_of(&obj).unwrap_err();
        assert!(e.contains("more than 100"), "{e}");
        // A megabyte-long name: refused as no secret name, and not echoed back whole.
        let long = "a".repeat(1 << 20);
        let obj = object(
            "payments",
            "api",
            serde_json::json!({"serviceAccount": "api", "secrets": [{"name": long}]}),
        );
        let e = team_of(&obj).unwrap_err();
        assert!(e.len() < 4096, "the error quotes {} bytes", e.len());
        // Deep nesting where the schema has none: not a TeamSecrets at all.
        let mut nested = serde_json::json!("x");
        for _ in 0..64 {
            nested = serde_json::json!({ "a": nested });
        }
        let parsed: Result<TeamSecrets, _> = serde_json::from_value(serde_json::json!({
            "apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
            "metadata": {"name": "api", "namespace": "payments"},
            "spec": {"serviceAccount": "api", "secrets": [{"name": "x", "jmesPath": nested}]},
        }));
        assert!(parsed.is_err(), "nested input must not parse");
        let max = crds()[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"]["secrets"]["maxItems"]
            .clone();
        assert_eq!(max, 100);
    }

    #[test]
    fn an_object_is_a_team_of_its_own_namespace_validated_like_the_file() {
        let obj = object(
            "payments",
            "api",
            serde_json::json!({"serviceAccount": "api", "secrets": [
                {"name": "teams/payments/db", "alias": "db"}, {"prefix": "teams/payments/"}]}),
        );
        let team = team_of(&obj).expect("valid");
        assert_eq!(
            (team.name.as_str(), team.namespace.as_str()),
            ("api", "payments")
        );
        assert_eq!(team.owner.as_deref(), Some("api"));
        assert_eq!(team.secret_specs().count(), 2);
        assert!(
            team.secret_specs().all(|s| s.secret().is_some()),
            "parsed once"
        );

        let bad = object(
            "payments",
            "api",
            serde_json::json!({"serviceAccount": "api", "secrets": [{"alias": "x"}]}),
        );
        let err = team_of(&bad).expect_err("no name nor prefix");
        assert!(err.contains("TeamSecrets payments/api"), "{err}");
        let unsafe_alias = object(
            "payments",
            "api",
            serde_json::json!({"serviceAccount": "api", "secrets": [{"name": "a", "alias": "../../etc/passwd"}]}),
        );
        assert!(team_of(&unsafe_alias).is_err());
    }

    #[test]
    fn the_spec_cannot_name_another_namespace() {
        // `namespace` is not a field of the spec: a team only ever gets its own namespace.
        let parsed: Result<TeamSecrets, _> = serde_json::from_value(serde_json::json!({
            "apiVersion": "bootstrap.podid/v1alpha1", "kind": "TeamSecrets",
            "metadata": {"name": "x", "namespace": "mine"},
            "spec": {"serviceAccount": "a", "namespace": "theirs", "secrets": []},
        }));
        assert!(parsed.is_err());
        let crd = &crds()[0];
        let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"];
        assert!(props.get("namespace").is_none() && props.get("serviceAccount").is_some());
    }

    #[test]
    fn a_team_file_entry_round_trips_through_its_object() {
        let text = "teams:\n  - name: api\n    namespace: payments\n    serviceAccount: {name: api, existing: true}\n    secrets:\n      - teams/payments/db\n      - {prefix: 'ssm:/teams/payments/', recursive: false}\n    verify: true\n";
        let file = crate::teams::parse(Path::new("teams.yaml"), text).expect("file");
        let team = &file.teams[0].value;
        let obj = from_team(team);
        assert_eq!(obj.namespace().as_deref(), Some("payments"));
        assert!(obj.spec.existing_service_account && obj.spec.verify);
        let back = team_of(&obj).expect("the object is valid");
        assert_eq!(back.namespace, team.namespace);
        let labels = |t: &Team| {
            t.secret_specs()
                .map(|s| s.label().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(&back), labels(team));
        assert_eq!(
            back.secret_specs().nth(1).and_then(|s| s.recursive),
            Some(false)
        );
    }

    #[test]
    fn both_crds_are_structural_and_labelled() {
        let crds = crds();
        assert_eq!(crds.len(), 2);
        assert_eq!(crds[0]["spec"]["scope"], "Namespaced");
        assert_eq!(crds[1]["spec"]["scope"], "Cluster");
        for crd in &crds {
            assert_eq!(
                crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "bootstrap"
            );
            let text = crd.to_string();
            assert!(!text.contains("additionalProperties\":false"), "{text}");
            assert!(!text.contains("anyOf"), "not structural: {text}");
        }
    }

    #[test]
    fn the_gitops_examples_parse_and_the_example_team_fits_the_example_allowance() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gitops");
        let allowance: SecretAllowance = serde_saphyr::from_str(
            &std::fs::read_to_string(format!("{dir}/teams/allowance.yaml")).expect("read"),
        )
        .expect("the example allowance");
        let team: TeamSecrets = serde_saphyr::from_str(
            &std::fs::read_to_string(format!("{dir}/teams/team-payments.yaml")).expect("read"),
        )
        .expect("the example team");
        let parsed = team_of(&team).expect("the example team validates");
        assert_eq!(parsed.namespace, "team-payments");
        assert!(
            super::super::allowance::check(
                std::slice::from_ref(&allowance.spec),
                "team-payments",
                &parsed
            )
            .is_ok()
        );
        assert!(super::super::allowance::check(&[allowance.spec], "payments", &parsed).is_err());
        for file in ["argocd-applicationset.yaml", "flux-kustomization.yaml"] {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("read");
            let docs: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!docs.is_empty());
            for d in docs {
                assert!(
                    d["apiVersion"].is_string() && d["kind"].is_string(),
                    "{file}: {d}"
                );
                assert!(d["metadata"]["name"].is_string(), "{file}: {d}");
            }
        }
    }
}
