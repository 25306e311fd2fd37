//! What env tests make, one call each, failing with the name of what could not be made: a
//! namespace registered with the cleanup guard, Secrets Manager secrets and their versions,
//! SSM parameters, and the default CSI driver.

use aws_sdk_secretsmanager::operation::create_secret::CreateSecretOutput;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;

use super::cleanup::Cleanup;

/// A namespace named `unique(prefix)`, registered with `cleanup` (removed when the test ends,
/// pass or fail) before it is created; its name.
pub async fn namespace(kube: &kube::Client, cleanup: &mut Cleanup, prefix: &str) -> String {
    let ns = super::unique(prefix);
    cleanup.namespaces.push(ns.clone());
    super::namespace(kube, &ns).await;
    ns
}

/// Creates Secrets Manager secret `name` holding `value` (the caller registers it for
/// removal first).
pub async fn secret(
    sm: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: impl Into<String>,
) -> CreateSecretOutput {
    let created = sm.create_secret().name(name).secret_string(value);
    made(created.send().await, format_args!("CreateSecret {name}"))
}

/// Puts a new current version holding `value` into secret `id`.
pub async fn secret_version(
    sm: &aws_sdk_secretsmanager::Client,
    id: &str,
    value: impl Into<String>,
) -> PutSecretValueOutput {
    let put = sm.put_secret_value().secret_id(id).secret_string(value);
    made(put.send().await, format_args!("PutSecretValue {id}"))
}

/// Creates (or overwrites) SecureString parameter `name` holding `value`.
pub async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    let put = ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true);
    made(put.send().await, format_args!("PutParameter {name}"));
}

/// Applies the CSI driver bootstrap renders by default, with field manager `manager`.
pub async fn csi_driver(kube: &kube::Client, manager: &str) {
    let driver = bootstrap::render::csi_driver::render(
        &bootstrap::render::csi_driver::CsiDriverValues::default(),
    )
    .expect("render the CSI driver manifests");
    super::apply_all(kube, manager, &driver).await;
}

/// An IAM user named `unique(prefix)`, registered with `cleanup` before it is made, and an
/// access key of it.
pub async fn user_with_key(
    iam: &aws_sdk_iam::Client,
    cleanup: &mut Cleanup,
    prefix: &str,
) -> aws_sdk_iam::types::AccessKey {
    cleanup.user(iam, &super::unique(prefix)).await
}

/// The answer of the call that made `what`, or a panic naming `what` and the error.
fn made<T, E: std::fmt::Debug>(answer: Result<T, E>, what: std::fmt::Arguments) -> T {
    answer.unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// Writes `text` to file `name` in a new temporary directory: the directory (removed when
/// dropped) and the file's path.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    (dir, path)
}
