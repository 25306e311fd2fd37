//! Registry credentials, chosen per registry the way Docker does, plus ECR: a private ECR
//! registry gets a token from GetAuthorizationToken (any account the AWS identity may pull
//! from); otherwise the Docker config file (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): `credHelpers`, then `credsStore`, then `auths`; otherwise
//! anonymous, where oci-client follows the registry's `WWW-Authenticate: Bearer` challenge to
//! its token endpoint. Secrets stay inside `oci_client::secrets::RegistryAuth` (whose Debug
//! redacts them) and are never formatted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::error::ImageError;
use super::reference::{ImageRef, RegistryKind};

/// Where a registry's credentials came from (never the credentials themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSource {
    Anonymous,
    DockerConfig { path: PathBuf },
    CredentialHelper { helper: String },
    Ecr { account: String, region: String },
}

impl fmt::Display for AuthSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthSource::Anonymous => f.write_str("anonymous"),
            AuthSource::DockerConfig { path } => write!(f, "docker config {}", path.display()),
            AuthSource::CredentialHelper { helper } => write!(f, "docker-credential-{helper}"),
            AuthSource::Ecr { account, region } => {
                write!(f, "ECR authorization token ({account}, {region})")
            }
        }
    }
}

/// Where the Docker config file is looked for.
#[derive(Debug, Clone)]
enum DockerConfigSource {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    Default,
    File(PathBuf),
    None,
}

/// What the image functions may use to authenticate. `Credentials::default()` reads the
/// Docker config file and has no AWS configuration (so private ECR fails with a hint).
#[derive(Debug, Clone)]
pub struct Credentials {
    aws: Option<aws_config::SdkConfig>,
    ecr: Option<aws_sdk_ecr::Client>,
    docker_config: DockerConfigSource,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            aws: None,
            ecr: None,
            docker_config: DockerConfigSource::Default,
        }
    }
}

/// The credentials for one registry, and where they came from.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedAuth {
    pub auth: RegistryAuth,
    pub source: AuthSource,
}

impl ResolvedAuth {
    fn anonymous() -> Self {
        ResolvedAuth {
            auth: RegistryAuth::Anonymous,
            source: AuthSource::Anonymous,
        }
    }
}

impl Credentials {
    /// AWS configuration for ECR (tokens; repositories on push). The ECR client of each
    /// registry is made for that registry's region.
    pub fn with_aws(mut self, config: aws_config::SdkConfig) -> Self {
        self.aws = Some(config);
        self
    }

    /// One ECR client for every ECR registry (tests; callers with a configured client).
    pub fn with_ecr_client(mut self, client: aws_sdk_ecr::Client) -> Self {
        self.ecr = Some(client);
        self
    }

    /// Reads this Docker config file instead of the default one.
    pub fn with_docker_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.docker_config = DockerConfigSource::File(path.into());
        self
    }

    /// Reads no Docker config file.
    pub fn without_docker_config(mut self) -> Self {
        self.docker_config = DockerConfigSource::None;
        self
    }

    /// The ECR client for a region, if AWS is configured.
    pub(crate) fn ecr_client(&self, region: &str) -> Option<aws_sdk_ecr::Client> {
        if let Some(client) = &self.ecr {
            return Some(client.clone());
        }
        let config = self.aws.as_ref()?;
        let ecr = aws_sdk_ecr::config::Builder::from(config)
            .region(aws_config::Region::new(region.to_string()))
            .build();
        Some(aws_sdk_ecr::Client::from_conf(ecr))
    }

    /// The credentials for the reference's registry.
    pub(crate) async fn resolve(&self, image: &ImageRef) -> Result<ResolvedAuth, ImageError> {
        if let RegistryKind::Ecr { account, region } = image.kind() {
            return self.ecr_auth(image.registry(), &account, &region).await;
        }
        let Some(path) = self.docker_config_path() else {
            return Ok(ResolvedAuth::anonymous());
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ResolvedAuth::anonymous());
            }
            Err(e) => {
                return Err(ImageError::Credentials {
                    registry: image.registry().into(),
                    from: path.display().to_string(),
                    reason: format!("cannot read it: {e}"),
                });
            }
        };
        let config = DockerConfig::parse(&text).map_err(|reason| ImageError::Credentials {
            registry: image.registry().into(),
            from: path.display().to_string(),
            reason,
        })?;
        match config.lookup(image.registry()) {
            Lookup::Helper(helper) => run_helper(&helper, image.registry()).await,
            Lookup::Basic(user, password) => Ok(ResolvedAuth {
                auth: RegistryAuth::Basic(user, password),
                source: AuthSource::DockerConfig { path },
            }),
            Lookup::Unsupported(reason) => Err(ImageError::Credentials {
                registry: image.registry().into(),
                from: path.display().to_string(),
                reason,
            }),
            Lookup::None => Ok(ResolvedAuth::anonymous()),
        }
    }

    fn docker_config_path(&self) -> Option<PathBuf> {
        match &self.docker_config {
            DockerConfigSource::None => None,
            DockerConfigSource::File(path) => Some(path.clone()),
            DockerConfigSource::Default => {
                if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
                    return Some(Path::new(&dir).join("config.json"));
                }
                std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
            }
        }
    }

    async fn ecr_auth(
        &self,
        registry: &str,
        account: &str,
        region: &str,
    ) -> Result<ResolvedAuth, ImageError> {
        let source = AuthSource::Ecr {
            account: account.into(),
            region: region.into(),
        };
        let Some(ecr) = self.ecr_client(region) else {
            return Err(ImageError::Credentials {
                registry: registry.into(),
                from: source.to_string(),
                reason: "no AWS configuration was given to the image check".into(),
            });
        };
        let out =
            ecr.get_authorization_token()
                .send()
                .await
                .map_err(|e| ImageError::Credentials {
                    registry: registry.into(),
                    from: source.to_string(),
                    reason: format!(
                        "GetAuthorizationToken failed: {}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    ),
                })?;
        let token = out
            .authorization_data()
            .first()
            .and_then(|d| d.authorization_token())
            .ok_or_else(|| ImageError::Credentials {
                registry: registry.into(),
                from: source.to_string(),
                reason: "GetAuthorizationToken returned no token".into(),
            })?;
        let (user, password) = decode_basic(token).ok_or_else(|| ImageError::Credentials {
            registry: registry.into(),
            from: source.to_string(),
            reason: "the ECR token is not base64 of USER:PASSWORD".into(),
        })?;
        Ok(ResolvedAuth {
            auth: RegistryAuth::Basic(user, password),
            source,
        })
    }
}

/// `base64(user:password)`, as in the `auth` field and ECR tokens.
pub(crate) fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_string(), password.to_string()))
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    Helper(String),
    Basic(String, String),
    Unsupported(String),
    None,
}

impl DockerConfig {
    fn parse(text: &str) -> Result<Self, String> {
        // serde_json's message has a line and column, never the file's content.
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))
    }

    /// Docker's order: a registry's credHelper, then the credsStore, then `auths`.
    fn lookup(&self, registry: &str) -> Lookup {
        let want = normalize_key(registry);
        if let Some((_, helper)) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == want)
        {
            return Lookup::Helper(helper.clone());
        }
        if let Some(store) = self.creds_store.as_ref().filter(|s| !s.is_empty()) {
            return Lookup::Helper(store.clone());
        }
        let Some((_, entry)) = self.auths.iter().find(|(k, _)| normalize_key(k) == want) else {
            return Lookup::None;
        };
        if entry.identity_token.as_ref().is_some_and(|t| !t.is_empty()) {
            return Lookup::Unsupported(format!(
                "the entry for {registry} holds an identity token, which bootstrap cannot exchange"
            ));
        }
        if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
            return Lookup::Basic(user.clone(), password.clone());
        }
        match entry.auth.as_deref().filter(|a| !a.is_empty()) {
            Some(auth) => match decode_basic(auth) {
                Some((user, password)) => Lookup::Basic(user, password),
                None => Lookup::Unsupported(format!(
                    "the `auth` of {registry} is not base64 of USER:PASSWORD"
                )),
            },
            None => Lookup::None,
        }
    }
}

/// A config key (`https://index.docker.io/v1/`, `registry:5000`, `https://host/v2/`) as a
/// registry host; Docker Hub's names all become docker.io.
fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// The server URL a credential helper is asked about (Docker Hub's legacy one for docker.io).
fn helper_server_url(registry: &str) -> String {
    if normalize_key(registry) == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-HELPER get` with the server URL on stdin (the helper protocol).
async fn run_helper(helper: &str, registry: &str) -> Result<ResolvedAuth, ImageError> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| ImageError::Credentials {
        registry: registry.into(),
        from: program.clone(),
        reason,
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e} (is it on PATH?)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(helper_server_url(registry).as_bytes())
            .await
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(format!("it did not finish: {e}")))?;
    if !out.status.success() {
        // "credentials not found": the registry is simply not logged in.
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.contains("credentials not found") {
            return Ok(ResolvedAuth::anonymous());
        }
        return Err(fail(format!("it exited with {}", out.status)));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("its answer is not the JSON of the helper protocol".into()))?;
    if reply.username == "<token>" {
        return Err(fail(
            "it holds an identity token, which bootstrap cannot exchange".into(),
        ));
    }
    Ok(ResolvedAuth {
        auth: RegistryAuth::Basic(reply.username, reply.secret),
        source: AuthSource::CredentialHelper {
            helper: helper.into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn auth_entries_match_by_host_and_docker_hub_aliases() {
        let config = DockerConfig::parse(&format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "registry.example:5000": {{"username": "u2", "password": "p2"}},
                "https://ghcr.io/v2/": {{"auth": "{}"}}
            }}}}"#,
            b64("hubuser:hubpass"),
            b64("gh:tok:en")
        ))
        .unwrap();
        assert_eq!(
            config.lookup("docker.io"),
            Lookup::Basic("hubuser".into(), "hubpass".into())
        );
        assert_eq!(
            config.lookup("registry.example:5000"),
            Lookup::Basic("u2".into(), "p2".into())
        );
        // Only the first colon separates the user from the password.
        assert_eq!(
            config.lookup("ghcr.io"),
            Lookup::Basic("gh".into(), "tok:en".into())
        );
        assert_eq!(config.lookup("quay.io"), Lookup::None);
    }

    #[test]
    fn helpers_take_precedence_like_docker() {
        let config = DockerConfig::parse(&format!(
            r#"{{"auths": {{"ghcr.io": {{"auth": "{}"}}, "quay.io": {{}}}},
                "credsStore": "desktop",
                "credHelpers": {{"ghcr.io": "gh"}}}}"#,
            b64("a:b")
        ))
        .unwrap();
        assert_eq!(config.lookup("ghcr.io"), Lookup::Helper("gh".into()));
        assert_eq!(config.lookup("quay.io"), Lookup::Helper("desktop".into()));
    }

    #[test]
    fn unusable_entries_say_why_without_the_secret() {
        let config = DockerConfig::parse(
            r#"{"auths": {"a.example": {"auth": "bm9jb2xvbg=="}, "b.example": {"identitytoken": "s3cr3t-token"}}}"#,
        )
        .unwrap();
        let Lookup::Unsupported(reason) = config.lookup("a.example") else {
            panic!("a.example")
        };
        assert!(reason.contains("not base64 of USER:PASSWORD"), "{reason}");
        let Lookup::Unsupported(reason) = config.lookup("b.example") else {
            panic!("b.example")
        };
        assert!(!reason.contains("s3cr3t"), "{reason}");
        let err = DockerConfig::parse("{\"auths\": {\"x\": {\"auth\": \"s3cr3t\"").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn basic_tokens_decode() {
        assert_eq!(
            decode_basic(&b64("AWS:eyJwYXlsb2FkIjoi")),
            Some(("AWS".into(), "eyJwYXlsb2FkIjoi".into()))
        );
        assert_eq!(decode_basic("not base64!"), None);
        assert_eq!(decode_basic(&b64("no-colon")), None);
        assert_eq!(decode_basic(&b64(":password-only")), None);
    }

    #[test]
    fn helper_urls() {
        assert_eq!(
            helper_server_url("docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(helper_server_url("ghcr.io"), "ghcr.io");
    }

    #[tokio::test]
    async fn missing_config_file_means_anonymous_and_config_is_read_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let image = ImageRef::parse("registry.example/team/app:1").unwrap();
        let creds = Credentials::default().with_docker_config(&path);
        let resolved = creds.resolve(&image).await.unwrap();
        assert_eq!(resolved.source, AuthSource::Anonymous);

        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"registry.example": {{"auth": "{}"}}}}}}"#,
                b64("me:pw")
            ),
        )
        .unwrap();
        let resolved = creds.resolve(&image).await.unwrap();
        assert_eq!(
            resolved.source,
            AuthSource::DockerConfig { path: path.clone() }
        );
        assert_eq!(resolved.auth, RegistryAuth::Basic("me".into(), "pw".into()));
        // Neither the source nor the auth's Debug shows the password.
        assert!(!format!("{resolved:?} {}", resolved.source).contains("pw\""));
    }

    #[tokio::test]
    async fn private_ecr_without_aws_configuration_is_a_clear_error() {
        let image =
            ImageRef::parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/aws-csi-provider:1")
                .unwrap();
        let err = Credentials::default()
            .without_docker_config()
            .resolve(&image)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            "{text}"
        );
        assert!(
            text.contains("ECR authorization token (123456789012, eu-west-1)"),
            "{text}"
        );
    }
}
