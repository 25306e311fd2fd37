//! Names both sides agree on: token audiences, ownership tags and labels, annotations; and the
//! EKS add-ons bootstrap installs and its checks look for.

/// The audience of the service-account token the Pod Identity agent accepts.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
/// The audience of the service-account token STS accepts for IRSA.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// Both audiences, in the order the CSIDriver's `tokenRequests` lists them.
pub const AWS_TOKEN_AUDIENCES: [&str; 2] = [IRSA_AUDIENCE, POD_IDENTITY_AUDIENCE];
/// The service principal a Pod Identity role trusts.
pub const POD_IDENTITY_PRINCIPAL: &str = POD_IDENTITY_AUDIENCE;

/// AWS tag marking what bootstrap created (value [`MANAGED_BY_VALUE`]).
pub const TAG_MANAGED_BY: &str = "bootstrap.podid/managed-by";
/// AWS tag naming the cluster a bootstrap-made resource belongs to.
pub const TAG_CLUSTER: &str = "bootstrap.podid/cluster";
/// AWS tag on a workload's IAM role naming the namespace it serves.
pub const TAG_NAMESPACE: &str = "bootstrap.podid/namespace";
/// AWS tag on a workload's IAM role naming the service account it serves.
pub const TAG_SERVICE_ACCOUNT: &str = "bootstrap.podid/service-account";
/// The value of [`TAG_MANAGED_BY`] and of the [`LABEL_MANAGED_BY`] label.
pub const MANAGED_BY_VALUE: &str = "bootstrap";
/// Kubernetes label marking objects bootstrap created.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Kubernetes label naming the cluster an object was made for.
pub const LABEL_CLUSTER: &str = "bootstrap.podid/cluster";

/// The service-account annotation IRSA reads the role ARN from.
pub const IRSA_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The EKS add-on of the Pod Identity agent.
pub const AGENT_ADDON: &str = "eks-pod-identity-agent";
/// The EKS add-on of the AWS provider for the Secrets Store CSI Driver.
pub const PROVIDER_ADDON: &str = "aws-secrets-store-csi-driver-provider";

/// `s` with every character IAM names and STS session names do not allow (outside
/// `[A-Za-z0-9+=,.@_-]`) replaced by `replacement`.
pub fn iam_name_chars(s: &str, replacement: char) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    s.chars()
        .map(|c| if allowed(c) { c } else { replacement })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_name_chars_replaces_what_iam_refuses() {
        assert_eq!(iam_name_chars("ns/pod_1+=,.@-x", '.'), "ns.pod_1+=,.@-x");
        assert_eq!(iam_name_chars("a b:é", '-'), "a-b--");
    }

    #[test]
    fn the_driver_is_asked_for_both_aws_audiences() {
        assert!(AWS_TOKEN_AUDIENCES.contains(&"sts.amazonaws.com"));
        assert!(AWS_TOKEN_AUDIENCES.contains(&"pods.eks.amazonaws.com"));
        assert_ne!(TAG_MANAGED_BY, TAG_CLUSTER);
    }
}
