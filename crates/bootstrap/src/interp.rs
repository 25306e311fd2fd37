//! The interpreters of [`Op`]: AWS calls through the SDK clients and Kubernetes calls through
//! the cluster client. Each operation maps to exactly one call (or one wait); deletes of what
//! is already gone succeed, so re-running a plan converges.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sdk_eks::types::AddonStatus;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use futures::future::BoxFuture;

use crate::aws::{Clients, ErrorKind, classify};
use crate::error::StepError;
use crate::plan::{AddonGoal, Interpreter, Op};
use bootstrap_common::names::{
    MANAGED_BY_VALUE, TAG_CLUSTER, TAG_MANAGED_BY, TAG_NAMESPACE, TAG_SERVICE_ACCOUNT,
};

/// The backends of one run and the ownership tags it writes.
pub struct Backends {
    pub aws: Clients,
    pub kube: Option<kube::Client>,
    /// The cluster every created resource is tagged with.
    pub cluster: String,
}

impl Backends {
    /// The backends of a preflighted target (an offline one has none).
    pub fn of(t: &crate::target::Target) -> Result<Self, StepError> {
        let Some(crate::target::Live { aws, kube }) = t.live() else {
            return Err(StepError::problem(format!(
                "no AWS access to run a plan for cluster {}",
                t.name()
            )));
        };
        Ok(Self {
            aws: aws.clone(),
            kube: Some(kube.clone()),
            cluster: t.name().to_string(),
        })
    }

    /// A create that conflicts because another run (a concurrent `up`) created the same thing
    /// for this cluster meanwhile (add-on, demo secret, role, association) is done; any other error, or a conflict with something that
    /// is not bootstrap's for this cluster (or differs), stays an error.
    async fn created_meanwhile(
        &self,
        err: crate::aws::AwsError,
        ours: impl Future<Output = bool>,
    ) -> Result<(), StepError> {
        if err.is(ErrorKind::Conflict) && ours.await {
            tracing::info!("{err}: created meanwhile by another run, as planned; continuing");
            return Ok(());
        }
        Err(err.into())
    }

    /// One create call: a conflict with what another run made meanwhile (`ours`) is done.
    async fn create<T, E>(
        &self,
        resource: String,
        sent: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        ours: impl Future<Output = bool>,
    ) -> Result<(), StepError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match sent.await {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = classify("create", resource, e);
                self.created_meanwhile(err, ours).await
            }
        }
    }

    fn tags(&self) -> [(&'static str, &str); 2] {
        [
            (TAG_MANAGED_BY, MANAGED_BY_VALUE),
            (TAG_CLUSTER, self.cluster.as_str()),
        ]
    }

    fn kube(&self, op: &Op) -> Result<&kube::Client, StepError> {
        self.kube.as_ref().ok_or_else(|| {
            StepError::problem(format!("no Kubernetes access to run: {op}"))
                .with_hint("check the kubeconfig, or that the caller may reach the cluster")
        })
    }
}

impl Interpreter for Backends {
    fn execute<'a>(
        &'a self,
        op: &'a Op,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            match op {
                Op::Apply { object } => {
                    Ok(crate::kube::apply::apply(self.kube(op)?, object).await?)
                }
                Op::Delete { object } => {
                    Ok(crate::kube::apply::delete_ref(self.kube(op)?, object).await?)
                }
                Op::MergePatch { object, patch } => {
                    Ok(crate::kube::apply::merge_patch(self.kube(op)?, object, patch).await?)
                }
                Op::WaitGone { object } => {
                    Ok(
                        crate::kube::apply::wait_gone(self.kube(op)?, object, left(deadline))
                            .await?,
                    )
                }
                Op::WaitCrdEstablished { name } => {
                    Ok(
                        crate::kube::wait::crd_established(self.kube(op)?, name, left(deadline))
                            .await?,
                    )
                }
                Op::WaitDaemonSet { namespace, name } => {
                    let kube = self.kube(op)?;
                    crate::kube::wait::daemonset_ready(kube, namespace, name, left(deadline))
                        .await
                        .map(drop)
                        .map_err(Into::into)
                }
                Op::WaitDeployment { namespace, name } => {
                    let kube = self.kube(op)?;
                    Ok(
                        crate::kube::wait::deployment_ready(kube, namespace, name, left(deadline))
                            .await?,
                    )
                }
                _ => self.aws_call(op, deadline).await,
            }
        })
    }

    fn progressed_since(&self, t: Instant) -> bool {
        self.aws.progress.since(t)
    }
}

fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1))
}

/// `Ok` for a NotFound answer (the thing is already gone).
fn gone_is_fine(err: crate::aws::AwsError) -> Result<(), StepError> {
    if err.is(ErrorKind::NotFound) {
        Ok(())
    } else {
        Err(err.into())
    }
}

/// One SDK call; its error names the action and the resource.
async fn send<T, E>(
    action: &'static str,
    resource: String,
    sent: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<(), StepError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    sent.await
        .map(drop)
        .map_err(|e| classify(action, resource, e).into())
}

/// One delete call: what is already gone is fine.
async fn delete<T, E>(
    action: &'static str,
    resource: String,
    sent: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<(), StepError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent.await {
        Ok(_) => Ok(()),
        Err(e) => gone_is_fine(classify(action, resource, e)),
    }
}

/// How errors name a role.
fn iam_role(role: &str) -> String {
    format!("IAM role {role}")
}

/// IAM tags from key/value pairs.
fn iam_tags<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<aws_sdk_iam::types::Tag>, StepError> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| StepError::caused_by("failed to build an IAM tag", e))
        })
        .collect()
}

impl Backends {
    async fn aws_call(&self, op: &Op, deadline: Instant) -> Result<(), StepError> {
        let aws = &self.aws;
        match op {
            Op::CreateRole {
                name,
                description,
                trust,
                namespace,
                service_account,
                confinement,
            } => {
                let workload = [
                    (TAG_NAMESPACE, namespace.as_str()),
                    (TAG_SERVICE_ACCOUNT, service_account.as_str()),
                ];
                let call = aws
                    .iam
                    .create_role()
                    .role_name(name)
                    .description(description)
                    .assume_role_policy_document(trust.to_string())
                    .set_tags(Some(iam_tags(self.tags().into_iter().chain(workload))?))
                    .set_path(confinement.as_ref().map(|c| c.path.clone()))
                    .set_permissions_boundary(confinement.as_ref().map(|c| c.boundary.clone()));
                let ours = async {
                    crate::resources::role::observe(aws, name, &self.cluster, false)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|r| {
                            r.owned
                                && r.tagged_for
                                    .as_ref()
                                    .is_some_and(|t| t.is(namespace, service_account))
                        })
                };
                self.create(iam_role(name), call.send(), ours).await?;
            }
            Op::TagRole {
                role,
                namespace,
                service_account,
            } => {
                let tags = iam_tags([
                    (TAG_NAMESPACE, namespace.as_str()),
                    (TAG_SERVICE_ACCOUNT, service_account.as_str()),
                ])?;
                let call = aws.iam.tag_role().role_name(role).set_tags(Some(tags));
                send("tag", iam_role(role), call.send()).await?;
            }
            Op::PutRolePermissionsBoundary { role, boundary } => {
                let call = aws.iam.put_role_permissions_boundary().role_name(role);
                let call = call.permissions_boundary(boundary).send();
                send("set the permissions boundary of", iam_role(role), call).await?;
            }
            Op::UpdateAssumeRolePolicy { role, trust } => {
                let call = aws.iam.update_assume_role_policy().role_name(role);
                let call = call.policy_document(trust.to_string()).send();
                send("update the trust policy of", iam_role(role), call).await?;
            }
            Op::UpdateRoleDescription { role, description } => {
                let call = aws.iam.update_role_description().role_name(role);
                let call = call.description(description).send();
                send("update the description of", iam_role(role), call).await?;
            }
            Op::PutRolePolicy {
                role,
                policy,
                document,
            } => {
                let call = aws
                    .iam
                    .put_role_policy()
                    .role_name(role)
                    .policy_name(policy);
                let call = call.policy_document(document.to_string()).send();
                send("put the inline policy on", iam_role(role), call).await?;
            }
            Op::DeleteRolePolicy { role, policy } => {
                let call = aws.iam.delete_role_policy().role_name(role);
                let call = call.policy_name(policy).send();
                delete("delete the inline policy of", iam_role(role), call).await?;
            }
            Op::DetachRolePolicy { role, policy_arn } => {
                let call = aws.iam.detach_role_policy().role_name(role);
                let call = call.policy_arn(policy_arn).send();
                delete("detach a managed policy from", iam_role(role), call).await?;
            }
            Op::DeleteRole { role } => {
                let call = aws.iam.delete_role().role_name(role).send();
                delete("delete", iam_role(role), call).await?;
            }
            Op::CreatePolicy {
                name,
                arn,
                description,
                document,
            } => {
                let call = aws
                    .iam
                    .create_policy()
                    .policy_name(name)
                    .description(description)
                    .policy_document(document.to_string())
                    .set_tags(Some(iam_tags(self.tags())?));
                let ours = async {
                    matches!(
                        crate::resources::boundary::observe(aws, arn, &self.cluster).await,
                        Ok(Some(live)) if live.owned
                    )
                };
                self.create(format!("IAM policy {name}"), call.send(), ours)
                    .await?;
            }
            Op::CreatePolicyVersion {
                policy_arn,
                document,
            } => {
                let call = aws.iam.create_policy_version().policy_arn(policy_arn);
                let call = call
                    .policy_document(document.to_string())
                    .set_as_default(true);
                send(
                    "add a version to",
                    format!("IAM policy {policy_arn}"),
                    call.send(),
                )
                .await?;
            }
            Op::DeletePolicyVersion {
                policy_arn,
                version,
            } => {
                let call = aws.iam.delete_policy_version().policy_arn(policy_arn);
                let call = call.version_id(version).send();
                delete(
                    "delete an old version of",
                    format!("IAM policy {policy_arn}"),
                    call,
                )
                .await?;
            }
            Op::DeletePolicy { policy_arn } => {
                let call = aws.iam.delete_policy().policy_arn(policy_arn).send();
                delete("delete", format!("IAM policy {policy_arn}"), call).await?;
            }
            Op::CreateEcrRepository { .. } | Op::PushImage { .. } => {
                return Err(StepError::problem(format!(
                    "{op}: an image registry operation, run by `bootstrap image push`"
                )));
            }
            Op::DeleteEcrRepository { repository } => {
                let call = aws.ecr.delete_repository().repository_name(repository);
                let call = call.force(true).send();
                delete("delete", format!("ECR repository {repository}"), call).await?;
            }
            Op::CreateAddon {
                cluster,
                addon,
                version,
            } => {
                let mut call = aws
                    .eks
                    .create_addon()
                    .cluster_name(cluster)
                    .addon_name(addon);
                if !version.starts_with('<') {
                    call = call.addon_version(version);
                }
                for (k, v) in self.tags() {
                    call = call.tags(k, v);
                }
                let ours = async {
                    matches!(
                        crate::resources::addon::describe(aws, cluster, addon).await,
                        Ok(Some(crate::resources::addon::AddonState::Present {
                            owned: true,
                            ..
                        }))
                    )
                };
                self.create(format!("EKS add-on {addon}"), call.send(), ours)
                    .await?;
            }
            Op::DeleteAddon { cluster, addon } => {
                let call = aws.eks.delete_addon().cluster_name(cluster);
                let call = call.addon_name(addon).send();
                delete("delete", format!("EKS add-on {addon}"), call).await?;
            }
            Op::CreatePodIdentityAssociation(new) => {
                let (namespace, service_account) = (&new.namespace, &new.service_account);
                let mut call = aws
                    .eks
                    .create_pod_identity_association()
                    .cluster_name(&new.cluster)
                    .namespace(namespace)
                    .service_account(service_account)
                    .role_arn(&new.role_arn)
                    .set_target_role_arn(new.target_role_arn.clone());
                for (k, v) in self.tags() {
                    call = call.tags(k, v);
                }
                let ours = async {
                    let found = crate::resources::association::observe(
                        aws,
                        &new.cluster,
                        namespace,
                        service_account,
                    );
                    found.await.ok().flatten().is_some_and(|a| {
                        a.owned
                            && a.role_arn == new.role_arn
                            && a.target_role_arn == new.target_role_arn
                    })
                };
                let what = format!("Pod Identity association {namespace}/{service_account}");
                self.create(what, call.send(), ours).await?;
            }
            Op::UpdatePodIdentityAssociation {
                cluster,
                id,
                role_arn,
                target_role_arn,
            } => {
                let call = aws.eks.update_pod_identity_association();
                let call = call
                    .cluster_name(cluster)
                    .association_id(id)
                    .role_arn(role_arn);
                let call = call.set_target_role_arn(target_role_arn.clone()).send();
                send("update", format!("Pod Identity association {id}"), call).await?;
            }
            Op::DeletePodIdentityAssociation {
                cluster,
                id,
                namespace,
                service_account,
            } => {
                let call = aws.eks.delete_pod_identity_association();
                let call = call.cluster_name(cluster).association_id(id).send();
                let what = format!("Pod Identity association {namespace}/{service_account} ({id})");
                delete("delete", what, call).await?;
            }
            Op::CreateDemoSecret { name } => {
                let tags = self.tags().map(|(k, v)| {
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                });
                let call = aws
                    .secrets
                    .create_secret()
                    .name(name)
                    .description("Demo secret created by bootstrap up; safe to delete")
                    .secret_string(demo_value())
                    .set_tags(Some(tags.to_vec()));
                let ours = async {
                    matches!(
                        crate::resources::secrets::observe_demo(Some(aws), &self.cluster).await,
                        Ok(crate::resources::secrets::DemoState::Present { owned: true })
                    )
                };
                self.create(format!("secret {name}"), call.send(), ours)
                    .await?;
            }
            Op::DeleteSecret { name } => {
                let call = aws.secrets.delete_secret().secret_id(name);
                let call = call.force_delete_without_recovery(true).send();
                delete("delete", format!("secret {name}"), call).await?;
            }
            Op::WaitAddon {
                cluster,
                addon,
                until,
            } => wait_addon(aws, cluster, addon, *until, deadline).await?,
            Op::Apply { .. }
            | Op::Delete { .. }
            | Op::MergePatch { .. }
            | Op::WaitGone { .. }
            | Op::WaitCrdEstablished { .. }
            | Op::WaitDaemonSet { .. }
            | Op::WaitDeployment { .. } => {
                return Err(StepError::problem(format!("not an AWS operation: {op}")));
            }
        }
        Ok(())
    }
}

/// Polls the add-on until it is ACTIVE (failing fast on a failed state) or gone.
async fn wait_addon(
    aws: &Clients,
    cluster: &str,
    addon: &str,
    until: AddonGoal,
    deadline: Instant,
) -> Result<(), StepError> {
    let mut delay = Duration::from_millis(500);
    let started = Instant::now();
    loop {
        let status = match crate::resources::addon::read(aws, cluster, addon).await? {
            Some(found) => found.status().cloned(),
            None if until == AddonGoal::Gone => return Ok(()),
            None => {
                return Err(StepError::problem(format!(
                    "EKS add-on {addon} disappeared while bootstrap waited for it to be ACTIVE"
                ))
                .with_hint("something else deleted it: check the cluster's add-ons, then re-run"));
            }
        };
        if until == AddonGoal::Active {
            crate::resources::addon::check_status(addon, status.as_ref())?;
            if status == Some(AddonStatus::Active) {
                return Ok(());
            }
        }
        if Instant::now() + delay > deadline {
            let goal = if until == AddonGoal::Active {
                "ACTIVE"
            } else {
                "deleted"
            };
            return Err(StepError::problem(format!(
                "timed out after {}s waiting for EKS add-on {addon} to be {goal} (still {})",
                started.elapsed().as_secs(),
                status.as_ref().map(|s| s.as_str()).unwrap_or("?")
            ))
            .with_hint("raise --timeout, or check the add-on in the EKS console"));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// A random-enough demo value (not a credential of anything).
fn demo_value() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!(
        "{{\"username\":\"demo\",\"password\":\"{:016x}\"}}",
        h.finish()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_values_are_json_and_differ() {
        let a: serde_json::Value = serde_json::from_str(&demo_value()).expect("json");
        assert_eq!(a["username"], "demo");
        assert_ne!(demo_value(), demo_value());
    }
}
