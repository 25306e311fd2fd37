//! The pod of `--pod`: its FailedMount events, mapped by the shared diagnosis rules to the
//! likely cause, and that cause to the fix as a command.

use serde_json::json;

use super::workloads::{aws_classes, patch_spc, region_of, role_name};
use super::{Check, Status, shell_json};
use crate::diagnose::facts::{Snapshot, SpcFacts, WorkloadPod};
use crate::diagnose::{self as rules, MountCause, Subject, VerifyFacts};
use crate::render::csi_driver::{AWS_TOKEN_AUDIENCES, DRIVER_NAME};

/// `--pod`: the pod's FailedMount events, mapped to the cause and its fix.
pub fn pod(s: &Snapshot) -> Vec<Check> {
    let Some(facts) = &s.pod else {
        return Vec::new();
    };
    let ns = s.namespace.clone().unwrap_or_default();
    let Some(pod) = &facts.pod else {
        return vec![
            Check::fail(
                "pod.mount",
                format!("pod {ns}/{}", facts.name),
                format!("no pod {} in namespace {ns}", facts.name),
            )
            .fix(format!("kubectl -n {ns} get pods")),
        ];
    };
    let subject = format!("pod {}/{}", pod.namespace, pod.name);
    let phase = facts.phase.clone().unwrap_or_else(|| "unknown".into());
    if pod.spcs.is_empty() {
        return vec![Check::pass(
            "pod.mount",
            subject,
            format!("mounts no SecretProviderClass (phase {phase})"),
        )];
    }
    let Some(summary) = rules::summarize_warnings(&facts.failed_mounts) else {
        let status = if phase == "Running" || phase == "Succeeded" {
            Status::Pass
        } else {
            Status::Warn
        };
        let mut c = Check::pass(
            "pod.mount",
            subject,
            format!("no FailedMount events; phase {phase}"),
        );
        c.status = status;
        return vec![c];
    };
    let spc_name = pod.spcs[0].clone();
    let class = aws_classes(s)
        .into_iter()
        .find(|c| c.namespace == pod.namespace && c.name == spc_name);
    let key = (pod.namespace.clone(), pod.service_account.clone());
    let association = match s.associations.get(&key) {
        Some(Ok(a)) => Some(a.is_some()),
        _ => None,
    };
    let observed = VerifyFacts {
        use_pod_identity: class.map(|c| c.parameter("usePodIdentity").map(str::to_string)),
        association,
        audiences: s
            .csidriver
            .as_ref()
            .ok()
            .and_then(|d| d.as_ref().map(|d| d.audiences.clone())),
        warnings: facts.failed_mounts.clone(),
    };
    let latest = facts.failed_mounts.last().cloned().unwrap_or_default();
    let cause = rules::mount_cause(&latest);
    let (cause_text, hint) = match cause {
        MountCause::Unknown => rules::diagnose(
            &observed,
            Subject {
                cluster: &s.cluster,
                namespace: &pod.namespace,
                service_account: &pod.service_account,
                spc: &spc_name,
            },
        ),
        _ => (rules::likely_cause(&latest), String::new()),
    };
    let fix = pod_fix(s, cause, &latest, pod, class).unwrap_or(hint);
    vec![
        Check::fail(
            "pod.mount",
            subject,
            format!("{summary}; likely cause: {cause_text}"),
        )
        .fix(fix),
    ]
}

fn pod_fix(
    s: &Snapshot,
    cause: MountCause,
    latest: &str,
    pod: &WorkloadPod,
    class: Option<&SpcFacts>,
) -> Option<String> {
    let (ns, sa) = (&pod.namespace, &pod.service_account);
    Some(match cause {
        MountCause::ProviderNotFound => format!(
            "kubectl get pods -A -o wide --field-selector spec.nodeName={} (is an AWS provider pod running there, with the driver's socket directory? see check provider.nodes)",
            pod.node.as_deref().unwrap_or("<node>")
        ),
        MountCause::MissingAudience => {
            let patch = json!({"spec": {"tokenRequests": AWS_TOKEN_AUDIENCES.iter().map(|a| json!({"audience": a})).collect::<Vec<_>>()}});
            format!(
                "kubectl patch csidriver {DRIVER_NAME} --type=merge -p {}",
                shell_json(&patch)
            )
        }
        MountCause::InvalidUsePodIdentity => patch_spc(class?, "usePodIdentity", "true"),
        MountCause::NoIrsaRole => {
            format!("bootstrap migrate --cluster {} --namespace {ns}", s.cluster)
        }
        MountCause::NoAssociation => format!(
            "aws eks create-pod-identity-association --cluster-name {} --namespace {ns} --service-account {sa} --role-arn <ROLE_ARN>",
            s.cluster
        ),
        MountCause::AgentUnreachable => format!(
            "kubectl -n kube-system get pods -l app.kubernetes.io/name=eks-pod-identity-agent -o wide --field-selector spec.nodeName={}",
            pod.node.as_deref().unwrap_or("<node>")
        ),
        MountCause::AccessDenied => {
            let what = rules::denied_resource(latest).unwrap_or_else(|| "<SECRET_ARN>".into());
            let action = if what.starts_with("arn:aws:ssm:") {
                "ssm:GetParameters"
            } else {
                "secretsmanager:GetSecretValue"
            };
            let document = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": what}]});
            let role = match s.associations.get(&(ns.clone(), sa.clone())) {
                Some(Ok(Some(a))) => {
                    role_name(a.target_role_arn.as_deref().unwrap_or(&a.role_arn)).to_string()
                }
                _ => "<ROLE_NAME>".into(),
            };
            format!(
                "aws iam put-role-policy --role-name {role} --policy-name doctor-read-secrets --policy-document {}",
                shell_json(&document)
            )
        }
        MountCause::SecretNotFound => {
            let region = class
                .map(|c| region_of(s, c))
                .unwrap_or_else(|| s.region.clone());
            format!(
                "aws secretsmanager list-secrets --region {region} (compare the names with the class's objects)"
            )
        }
        MountCause::Credentials | MountCause::Unknown => return None,
    })
}
