//! Diagnosis: rules that turn observations (a SecretProviderClass, an association, the
//! CSIDriver, a pod's events) into a likely cause and a fix. Pure: `doctor` and `up`'s failed
//! verification share them; [`observe`] gathers the observations.

pub mod observe;

/// What a failed verification looked at to name the likely cause. `None` means "could not
/// tell" (not readable, or no AWS access).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Observed {
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
pub fn diagnose(o: &Observed, w: Subject<'_>) -> (String, String) {
    let (ns, sa, spc) = (w.namespace, w.service_account, w.spc);
    if let Some(value) = &o.use_pod_identity
        && value.as_deref() != Some("true")
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

/// A likely cause from the pod's warning events.
pub fn likely_cause(events: &str) -> String {
    let e = events.to_ascii_lowercase();
    if e.contains("provider not found") || e.contains("aws.sock") {
        "the driver cannot reach the AWS provider's socket: check that the provider DaemonSet runs and uses the driver's providers directory".into()
    } else if e.contains("pods.eks.amazonaws.com") || e.contains("token") && e.contains("audience")
    {
        "no token for audience pods.eks.amazonaws.com reached the provider: the CSIDriver's tokenRequests must list it".into()
    } else if e.contains("usepodidentity") {
        "the SecretProviderClass's usePodIdentity parameter is invalid: it must be \"true\"".into()
    } else if e.contains("association") || e.contains("assumerole") || e.contains("credentials") {
        "the Pod Identity association or the agent is not working: check the association for the service account and the eks-pod-identity-agent pods".into()
    } else if e.contains("accessdenied") || e.contains("not authorized") {
        "the role cannot read the secret: check its inline policy".into()
    } else {
        "describe the pod (kubectl describe pod) and read the CSI driver and provider logs".into()
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
        let healthy = Observed {
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

        let no_spc_flag = Observed {
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
        let wrong = Observed {
            use_pod_identity: Some(Some("false".into())),
            ..healthy.clone()
        };
        assert!(
            diagnose(&wrong, SUBJECT)
                .0
                .contains("usePodIdentity is \"false\"")
        );

        let no_association = Observed {
            association: Some(false),
            ..healthy.clone()
        };
        let (cause, hint) = diagnose(&no_association, SUBJECT);
        assert_eq!(
            cause,
            "service account ns/app has no Pod Identity association on cluster demo, so the Pod Identity agent refuses its token"
        );
        assert!(hint.contains("bootstrap up"), "{hint}");

        let no_audience = Observed {
            audiences: Some(vec!["sts.amazonaws.com".into()]),
            ..healthy.clone()
        };
        assert!(
            diagnose(&no_audience, SUBJECT)
                .0
                .contains("pods.eks.amazonaws.com")
        );

        // Nothing could be read: fall back to the events.
        let unknown = Observed {
            warnings: vec!["failed to assume role: credentials".into()],
            ..Observed::default()
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
}
