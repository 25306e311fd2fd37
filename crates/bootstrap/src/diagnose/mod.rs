//! Diagnosis, pure: facts in (a SecretProviderClass, an association, the CSIDriver, a pod's
//! events, doctor's [`facts::Snapshot`]), findings out (cause, evidence, fix). It sits beside
//! `plan` and `render`, below `resources`: the resource readers
//! (`resources::facts` and each resource's own) fill these facts, and `doctor` and the sample
//! pod's verification hand them to the rules. No AWS or Kubernetes call is made here.

pub mod checks;
pub mod facts;
pub mod iam;
pub mod spc;

/// What a failed verification looked at to name the likely cause. `None` means "could not
/// tell" (not readable, or no AWS access).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VerifyFacts {
    /// The SecretProviderClass's `usePodIdentity` parameter (`Some(None)`: not set).
    pub use_pod_identity: Option<Option<String>>,
    /// Whether a Pod Identity association exists for the service account.
    pub association: Option<bool>,
    /// The audiences the CSIDriver requests tokens for.
    pub audiences: Option<Vec<String>>,
    /// The pod's warning events, deduplicated, oldest first.
    pub warnings: Vec<String>,
}

/// The workload a verification was about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub cluster: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub spc: &'a str,
}

/// The likely cause (a statement of fact when one was observed) and what to do about it.
/// Checked in order: the SecretProviderClass, the association, the token audiences, then the
/// pod's warning events.
pub fn diagnose(o: &VerifyFacts, w: Subject<'_>) -> (String, String) {
    let (ns, sa, spc) = (w.namespace, w.service_account, w.spc);
    if let Some(value) = &o.use_pod_identity
        && value.as_deref().and_then(spc::parse_go_bool) != Some(true)
    {
        let is = value
            .as_deref()
            .map_or("not set".to_string(), |v| format!("{v:?}"));
        return (
            format!(
                "SecretProviderClass {ns}/{spc} does not use Pod Identity (usePodIdentity is {is}, must be \"true\"), so the provider fell back to IRSA"
            ),
            format!(
                "set parameters.usePodIdentity: \"true\" in SecretProviderClass {ns}/{spc}; it was not made by bootstrap, so bootstrap left it as is (delete it and re-run bootstrap up to have bootstrap create it)"
            ),
        );
    }
    if o.association == Some(false) {
        return (
            format!(
                "service account {ns}/{sa} has no Pod Identity association on cluster {}, so the Pod Identity agent refuses its token",
                w.cluster
            ),
            format!(
                "re-run bootstrap up (it creates the association), or check who deleted it: aws eks list-pod-identity-associations --cluster-name {} --namespace {ns} --service-account {sa}",
                w.cluster
            ),
        );
    }
    if let Some(audiences) = &o.audiences
        && !audiences.iter().any(|a| a == "pods.eks.amazonaws.com")
    {
        return (
            format!(
                "the CSIDriver {} does not request a token for audience pods.eks.amazonaws.com, so Pod Identity cannot work",
                crate::render::csi_driver::DRIVER_NAME
            ),
            "add pods.eks.amazonaws.com to the CSIDriver's tokenRequests (bootstrap up does, unless the driver was installed by someone else)".into(),
        );
    }
    (
        "the pod did not mount its secrets".into(),
        likely_cause(&o.warnings.join(" | ")),
    )
}

/// The latest warning, and how many there were: a retried mount repeats itself (with new
/// request ids), so one is enough to read.
pub fn summarize_warnings(warnings: &[String]) -> Option<String> {
    let latest = warnings.last()?;
    Some(match warnings.len() {
        1 => format!("its warning: {latest}"),
        n => format!("its latest warning (of {n}): {latest}"),
    })
}

/// What a failed mount's messages point at, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountCause {
    /// The driver found no `aws.sock`.
    ProviderNotFound,
    /// The CSIDriver did not request a token for an audience the provider needs.
    MissingAudience,
    /// `usePodIdentity` is not a Go boolean.
    InvalidUsePodIdentity,
    /// IRSA, and the service account has no role annotation.
    NoIrsaRole,
    /// The agent refused the token: no Pod Identity association.
    NoAssociation,
    /// The agent did not answer.
    AgentUnreachable,
    /// The role may not read an object.
    AccessDenied,
    /// The secret or parameter does not exist (name, version or region).
    SecretNotFound,
    /// Credentials failed some other way.
    Credentials,
    Unknown,
}

/// Classifies the provider's (ours or upstream's) and the driver's mount messages.
pub fn mount_cause(events: &str) -> MountCause {
    let e = events.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| e.contains(w));
    if has(&["provider not found", "aws.sock"]) {
        MountCause::ProviderNotFound
    } else if has(&["tokenrequests", "no service account token for audience"])
        || e.contains("token") && e.contains("audience")
    {
        MountCause::MissingAudience
    } else if has(&["usepodidentity", "parsebool"]) {
        MountCause::InvalidUsePodIdentity
    } else if has(&["an iam role must be associated"]) {
        MountCause::NoIrsaRole
    } else if has(&["refused the token", "association"]) {
        MountCause::NoAssociation
    } else if has(&[
        "did not answer",
        "pod identity agent",
        "169.254.170.23",
        "fd00:ec2::23",
        "connection refused",
    ]) {
        MountCause::AgentUnreachable
    } else if has(&["accessdenied", "access denied", "not authorized"]) {
        MountCause::AccessDenied
    } else if has(&[
        "resourcenotfound",
        "parameternotfound",
        "can't find the specified secret",
        "not found",
    ]) {
        MountCause::SecretNotFound
    } else if has(&["assumerole", "credentials"]) {
        MountCause::Credentials
    } else {
        MountCause::Unknown
    }
}

/// The object an access-denied message names: `on resource: X` (AWS's words), else the first
/// Secrets Manager or SSM ARN, else the provider's quoted `object "X"`.
pub fn denied_resource(events: &str) -> Option<String> {
    let word = |s: &str| {
        s.split(|c: char| c.is_whitespace() || matches!(c, '"' | ',' | ';' | ')'))
            .next()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_string()
    };
    if let Some((_, rest)) = events.split_once("on resource: ") {
        return Some(word(rest)).filter(|w| !w.is_empty());
    }
    for marker in ["arn:aws:secretsmanager:", "arn:aws:ssm:"] {
        if let Some(at) = events.find(marker) {
            return Some(word(&events[at..]));
        }
    }
    let (_, rest) = events.split_once("object \"")?;
    rest.split_once('"').map(|(name, _)| name.to_string())
}

/// A likely cause from the pod's warning events.
pub fn likely_cause(events: &str) -> String {
    match mount_cause(events) {
        MountCause::ProviderNotFound => "the driver cannot reach the AWS provider's socket: check that the provider DaemonSet runs and uses the driver's providers directory".into(),
        MountCause::MissingAudience => "no token for the audience the provider needs (pods.eks.amazonaws.com for Pod Identity, sts.amazonaws.com for IRSA) reached the provider: the CSIDriver's tokenRequests must list it".into(),
        MountCause::InvalidUsePodIdentity => "the SecretProviderClass's usePodIdentity parameter is invalid: it must be \"true\"".into(),
        MountCause::NoIrsaRole => "the SecretProviderClass uses IRSA (usePodIdentity is not \"true\") and the service account has no eks.amazonaws.com/role-arn annotation".into(),
        MountCause::NoAssociation => "the Pod Identity agent refused the token: check the Pod Identity association for the service account".into(),
        MountCause::AgentUnreachable => "the Pod Identity agent did not answer: check the eks-pod-identity-agent pod on the pod's node".into(),
        MountCause::AccessDenied => match denied_resource(events) {
            Some(what) => format!("the role cannot read {what}: allow secretsmanager:GetSecretValue (ssm:GetParameters for a parameter) on it in the role's policy"),
            None => "the role cannot read the secret: check its inline policy".into(),
        },
        MountCause::SecretNotFound => "the secret or parameter was not found: check its name, version and the region of the SecretProviderClass".into(),
        MountCause::Credentials => "the Pod Identity association or the agent is not working: check the association for the service account and the eks-pod-identity-agent pods".into(),
        MountCause::Unknown => "describe the pod (kubectl describe pod) and read the CSI driver and provider logs".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: Subject<'static> = Subject {
        cluster: "demo",
        namespace: "ns",
        service_account: "app",
        spc: "bootstrap-app",
    };

    #[test]
    fn observed_misconfigurations_come_before_events() {
        let healthy = VerifyFacts {
            use_pod_identity: Some(Some("true".into())),
            association: Some(true),
            audiences: Some(vec![
                "sts.amazonaws.com".into(),
                "pods.eks.amazonaws.com".into(),
            ]),
            warnings: vec!["MountVolume.SetUp failed: provider not found".into()],
        };
        let (cause, hint) = diagnose(&healthy, SUBJECT);
        assert_eq!(cause, "the pod did not mount its secrets");
        assert!(hint.contains("socket"), "{hint}");

        let no_spc_flag = VerifyFacts {
            use_pod_identity: Some(None),
            association: Some(false),
            ..healthy.clone()
        };
        let (cause, hint) = diagnose(&no_spc_flag, SUBJECT);
        assert!(
            cause.starts_with("SecretProviderClass ns/bootstrap-app does not use Pod Identity (usePodIdentity is not set"),
            "{cause}"
        );
        assert!(hint.contains("usePodIdentity: \"true\""), "{hint}");
        let wrong = VerifyFacts {
            use_pod_identity: Some(Some("false".into())),
            ..healthy.clone()
        };
        assert!(
            diagnose(&wrong, SUBJECT)
                .0
                .contains("usePodIdentity is \"false\"")
        );

        let no_association = VerifyFacts {
            association: Some(false),
            ..healthy.clone()
        };
        let (cause, hint) = diagnose(&no_association, SUBJECT);
        assert_eq!(
            cause,
            "service account ns/app has no Pod Identity association on cluster demo, so the Pod Identity agent refuses its token"
        );
        assert!(hint.contains("bootstrap up"), "{hint}");

        let no_audience = VerifyFacts {
            audiences: Some(vec!["sts.amazonaws.com".into()]),
            ..healthy.clone()
        };
        assert!(
            diagnose(&no_audience, SUBJECT)
                .0
                .contains("pods.eks.amazonaws.com")
        );

        // Nothing could be read: fall back to the events.
        let unknown = VerifyFacts {
            warnings: vec!["failed to assume role: credentials".into()],
            ..VerifyFacts::default()
        };
        assert!(diagnose(&unknown, SUBJECT).1.contains("association"));
    }

    #[test]
    fn only_the_latest_warning_is_quoted() {
        assert_eq!(summarize_warnings(&[]), None);
        assert_eq!(
            summarize_warnings(&["a".into()]).as_deref(),
            Some("its warning: a")
        );
        assert_eq!(
            summarize_warnings(&["a".into(), "b".into()]).as_deref(),
            Some("its latest warning (of 2): b")
        );
    }

    #[test]
    fn causes_from_events() {
        assert!(likely_cause("provider not found").contains("socket"));
        assert!(likely_cause("failed to assume role: credentials").contains("association"));
        assert!(likely_cause("").contains("describe the pod"));
    }

    #[test]
    fn mount_messages_of_both_providers_map_to_their_cause() {
        use MountCause::*;
        let cases = [
            (
                "rpc error: code = Unknown desc = failed to mount secrets store objects for pod ns/p, err: error connecting to provider \"aws\": provider not found: provider \"aws\"",
                ProviderNotFound,
            ),
            (
                "no service account token for audience \"pods.eks.amazonaws.com\"; hint: add {audience: pods.eks.amazonaws.com} to spec.tokenRequests",
                MissingAudience,
            ),
            (
                "token for audience \"sts.amazonaws.com\" not found - ensure tokenRequests includes this audience in CSIDriver",
                MissingAudience,
            ),
            (
                "failed to parse usePodIdentity value, error: strconv.ParseBool: parsing \"yes\": invalid syntax",
                InvalidUsePodIdentity,
            ),
            (
                "usePodIdentity \"yes\" is not a boolean; accepted values: 1, t",
                InvalidUsePodIdentity,
            ),
            (
                "An IAM role must be associated with service account app (namespace: ns)",
                NoIrsaRole,
            ),
            (
                "credentials for pod identity ns/app: the Pod Identity agent refused the token (400 Bad Request): ...; hint: create a Pod Identity association for this service account",
                NoAssociation,
            ),
            (
                "credentials for pod identity ns/app: the Pod Identity agent did not answer after 3 attempts: GET http://169.254.170.23/v1/credentials: timed out",
                AgentUnreachable,
            ),
            (
                "fetching secretsmanager object \"db\" in us-west-2: access denied: User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-west-2:1:secret:db-AbCdEf because no identity-based policy allows it",
                AccessDenied,
            ),
            (
                "fetching secretsmanager object \"db\" in us-west-2: not found (ResourceNotFound/ParameterNotFound); hint: check the name",
                SecretNotFound,
            ),
            (
                "Failed fetching secret db: ResourceNotFoundException: Secrets Manager can't find the specified secret.",
                SecretNotFound,
            ),
            ("failed to assume role: credentials", Credentials),
            ("something else", Unknown),
        ];
        for (message, want) in cases {
            assert_eq!(mount_cause(message), want, "{message}");
        }
    }

    #[test]
    fn access_denied_names_the_object() {
        let aws = "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-west-2:1:secret:db-AbCdEf because no identity-based policy allows it";
        assert_eq!(
            denied_resource(aws).as_deref(),
            Some("arn:aws:secretsmanager:us-west-2:1:secret:db-AbCdEf")
        );
        assert!(
            likely_cause(aws)
                .contains("cannot read arn:aws:secretsmanager:us-west-2:1:secret:db-AbCdEf")
        );
        assert_eq!(
            denied_resource("fetching ssmparameter object \"arn:aws:ssm:r:1:parameter/p\" in r: access denied: x").as_deref(),
            Some("arn:aws:ssm:r:1:parameter/p")
        );
        assert_eq!(
            denied_resource(
                "fetching secretsmanager object \"db\" in r: access denied: AccessDeniedException"
            )
            .as_deref(),
            Some("db")
        );
        assert_eq!(denied_resource("AccessDenied"), None);
    }

    #[test]
    fn go_true_spellings_are_pod_identity() {
        let o = VerifyFacts {
            use_pod_identity: Some(Some("True".into())),
            association: Some(false),
            ..VerifyFacts::default()
        };
        assert!(
            diagnose(&o, SUBJECT)
                .0
                .contains("no Pod Identity association")
        );
    }
}
