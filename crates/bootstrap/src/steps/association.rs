//! The Pod Identity association of the workload's service account with its role. Another role
//! already associated is a conflict (with a hint) unless `--force`, which updates it.

use std::time::{Duration, Instant};

use super::{Env, StepError};
use crate::aws::{AwsError, ErrorKind, classify};
use crate::plan::{Action, Change, StepOutcome};

pub async fn run(env: &Env) -> Result<StepOutcome, StepError> {
    let s = &env.settings;
    let (cluster, ns, sa) = (&s.cluster, &s.namespace, &s.service_account);
    let role_arn = env.facts.role_arn.get().cloned().unwrap_or_default();
    let resource = format!("Pod Identity association {ns}/{sa}");
    let create = Change::new(Action::Create, resource.clone()).call(format!(
        "eks:CreatePodIdentityAssociation clusterName={cluster} namespace={ns} serviceAccount={sa} roleArn={role_arn} tags=bootstrap.podid/*"
    ));
    let Some(aws) = &env.aws else {
        return Ok(StepOutcome::with(vec![create]));
    };
    let listed = aws
        .eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(ns)
        .service_account(sa)
        .send()
        .await
        .map_err(|e| {
            classify(
                "list the Pod Identity associations of",
                format!("{ns}/{sa}"),
                e,
            )
        })?;
    let Some(existing) = listed.associations().first() else {
        if !env.dry_run() {
            create_with_retry(env, &role_arn).await?;
        }
        return Ok(StepOutcome::with(vec![create]));
    };
    let id = existing.association_id().unwrap_or_default().to_string();
    let described = aws
        .eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(&id)
        .send()
        .await
        .map_err(|e| classify("describe", resource.clone(), e))?;
    let current = described
        .association()
        .and_then(|a| a.role_arn())
        .unwrap_or_default()
        .to_string();
    if current == role_arn {
        return Ok(StepOutcome::with(vec![
            Change::new(Action::Unchanged, resource).note(format!("id {id}")),
        ]));
    }
    if !s.force {
        return Err(conflict(ns, sa, &current));
    }
    let change = Change::new(Action::Replace, resource.clone())
        .call(format!(
            "eks:UpdatePodIdentityAssociation associationId={id} roleArn={role_arn}"
        ))
        .note(format!("replaces role {current} (--force)"));
    if !env.dry_run() {
        aws.eks
            .update_pod_identity_association()
            .cluster_name(cluster)
            .association_id(&id)
            .role_arn(&role_arn)
            .send()
            .await
            .map_err(|e| classify("update", resource, e))?;
    }
    Ok(StepOutcome::with(vec![change]))
}

pub(crate) fn conflict(ns: &str, sa: &str, other_role: &str) -> StepError {
    StepError::problem(format!(
        "service account {ns}/{sa} is already associated with another role: {other_role}"
    ))
    .with_hint("pass --force to point the association at bootstrap's role, or use another --service-account")
}

/// Creates the association, retrying while a just-created role is not yet visible to EKS
/// (IAM is eventually consistent); bounded by the run's timeout and 60 s.
async fn create_with_retry(env: &Env, role_arn: &str) -> Result<(), StepError> {
    let Some(aws) = &env.aws else { return Ok(()) };
    let s = &env.settings;
    let resource = format!(
        "Pod Identity association {}/{}",
        s.namespace, s.service_account
    );
    let deadline = Instant::now() + s.timeout.min(Duration::from_secs(60));
    let mut delay = Duration::from_millis(500);
    loop {
        let mut create = aws
            .eks
            .create_pod_identity_association()
            .cluster_name(&s.cluster)
            .namespace(&s.namespace)
            .service_account(&s.service_account)
            .role_arn(role_arn);
        for (k, v) in env.tags() {
            create = create.tags(k, v);
        }
        let err: AwsError = match create.send().await {
            Ok(_) => return Ok(()),
            Err(e) => classify("create", resource.clone(), e),
        };
        if err.is(ErrorKind::Conflict) {
            return Err(conflict(
                &s.namespace,
                &s.service_account,
                "(created concurrently)",
            ));
        }
        let role_not_ready = err.code.as_deref() == Some("InvalidParameterException")
            || err.is(ErrorKind::NotFound)
            || err.is(ErrorKind::Throttled)
            || err.is(ErrorKind::Transient);
        if !role_not_ready || Instant::now() + delay > deadline {
            return Err(err.into());
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(8));
    }
}
