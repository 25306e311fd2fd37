//! Where the Kubernetes API is and how to authenticate: in-cluster (service-account token and
//! CA) or a KUBECONFIG's current context (client certificate or bearer token). Exec plugins and
//! auth providers are refused with a message saying what to use instead.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use bootstrap_common::secret::SecretString;

/// The in-cluster service-account directory (token, ca.crt).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How requests are authenticated.
pub enum Auth {
    None,
    /// A fixed bearer token (kubeconfig `token`).
    Token(SecretString),
    /// A token re-read when the file changes (in-cluster bound tokens rotate; kubeconfig
    /// `tokenFile`).
    TokenFile(PathBuf),
}

/// A client certificate chain and its key (PEM).
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// Everything the client needs: the server URL (no trailing slash), the CA to trust (PEM
/// certificates; the system's when empty), a client certificate, the auth.
pub struct Config {
    pub server: String,
    pub roots: Vec<CertificateDer<'static>>,
    pub client_cert: Option<ClientCert>,
    pub auth: Auth,
}

impl Config {
    /// KUBECONFIG (its first file) when set, else the in-cluster config when
    /// KUBERNETES_SERVICE_HOST is set, else `~/.kube/config`.
    pub fn infer() -> Result<Self, String> {
        if let Some(paths) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
            let first = std::env::split_paths(&paths)
                .find(|p| !p.as_os_str().is_empty())
                .ok_or("KUBECONFIG names no file")?;
            return Self::from_kubeconfig(&first);
        }
        if let Ok(host) = std::env::var("KUBERNETES_SERVICE_HOST") {
            let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
            return Self::in_cluster(&host, &port, Path::new(SERVICE_ACCOUNT_DIR));
        }
        match std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")) {
            Some(p) if p.exists() => Self::from_kubeconfig(&p),
            _ => Err("neither KUBECONFIG nor KUBERNETES_SERVICE_HOST is set, and there is no ~/.kube/config".into()),
        }
    }

    /// The in-cluster config: `https://HOST:PORT`, the token and `ca.crt` of `dir`.
    pub fn in_cluster(host: &str, port: &str, dir: &Path) -> Result<Self, String> {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let ca = dir.join("ca.crt");
        let roots = certificates(&read(&ca)?, &ca.display().to_string())?;
        let token = dir.join("token");
        // Fails early (a clear error at first use) rather than on every request.
        read(&token)?;
        Ok(Self {
            server: format!("https://{host}:{port}"),
            roots,
            client_cert: None,
            auth: Auth::TokenFile(token),
        })
    }

    /// The current context of the kubeconfig at `path` (relative file names in it are relative
    /// to its directory, as kubectl reads them).
    pub fn from_kubeconfig(path: &Path) -> Result<Self, String> {
        let text = String::from_utf8(read(path)?)
            .map_err(|_| format!("kubeconfig {}: not UTF-8", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_kubeconfig_str(&text, base)
            .map_err(|e| format!("kubeconfig {}: {e}", path.display()))
    }

    /// Parses a kubeconfig's text; `base` resolves its relative file names.
    pub fn from_kubeconfig_str(text: &str, base: &Path) -> Result<Self, String> {
        let kc: Kubeconfig =
            serde_saphyr::from_str(text).map_err(|e| format!("not a kubeconfig: {e}"))?;
        let current = kc
            .current_context
            .filter(|c| !c.is_empty())
            .ok_or("no current-context")?;
        let context = &kc
            .contexts
            .iter()
            .find(|c| c.name == current)
            .ok_or_else(|| format!("current-context {current:?} is not among its contexts"))?
            .context;
        let cluster = &kc
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .ok_or_else(|| {
                format!(
                    "cluster {:?} (of context {current:?}) is not among its clusters",
                    context.cluster
                )
            })?
            .cluster;
        let empty = User::default();
        let user = match context.user.as_deref().filter(|u| !u.is_empty()) {
            None => &empty,
            Some(name) => {
                &kc.users
                    .iter()
                    .find(|u| u.name == name)
                    .ok_or_else(|| {
                        format!("user {name:?} (of context {current:?}) is not among its users")
                    })?
                    .user
            }
        };
        let user_name = context.user.as_deref().unwrap_or("");
        if user.exec.is_some() {
            return Err(format!(
                "kubeconfig user {user_name:?} uses an exec plugin, which the provider does not run; give it a token or client certificate"
            ));
        }
        if user.auth_provider.is_some() {
            return Err(format!(
                "kubeconfig user {user_name:?} uses an auth provider, which the provider does not run; give it a token or client certificate"
            ));
        }
        if user.username.is_some() || user.password.is_some() {
            return Err(format!(
                "kubeconfig user {user_name:?} uses basic auth, which the provider does not support; give it a token or client certificate"
            ));
        }
        if cluster.insecure_skip_tls_verify {
            return Err(format!(
                "cluster {:?} sets insecure-skip-tls-verify, which the provider does not support; give it certificate-authority(-data)",
                context.cluster
            ));
        }
        let server = cluster.server.trim_end_matches('/').to_string();
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(format!(
                "cluster {:?}: server {server:?} is not an http(s) URL",
                context.cluster
            ));
        }
        let roots = match pem_of(
            &cluster.ca_data,
            &cluster.ca_file,
            base,
            "certificate-authority",
        )? {
            Some((pem, what)) => certificates(&pem, &what)?,
            None => Vec::new(),
        };
        let cert = pem_of(&user.cert_data, &user.cert_file, base, "client-certificate")?;
        let key = pem_of(&user.key_data, &user.key_file, base, "client-key")?;
        let client_cert = match (cert, key) {
            (None, None) => None,
            (Some((cert, what)), Some((key, key_what))) => Some(ClientCert {
                chain: certificates(&cert, &what)?,
                key: PrivateKeyDer::from_pem_slice(&key)
                    .map_err(|e| format!("{key_what}: no PEM private key ({e})"))?,
            }),
            _ => {
                return Err(format!(
                    "user {user_name:?} has a client certificate without a key, or a key without a certificate"
                ));
            }
        };
        let auth = match (&user.token, &user.token_file) {
            (Some(t), _) if !t.is_empty() => Auth::Token(SecretString::new(t.clone())),
            (_, Some(f)) if !f.is_empty() => {
                let path = base.join(f);
                read(&path)?;
                Auth::TokenFile(path)
            }
            _ => Auth::None,
        };
        Ok(Self {
            server,
            roots,
            client_cert,
            auth,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// The PEM bytes of a `*-data` field (base64) or a file field, with a name for errors.
fn pem_of(
    data: &Option<String>,
    file: &Option<String>,
    base: &Path,
    field: &str,
) -> Result<Option<(Vec<u8>, String)>, String> {
    if let Some(d) = data.as_deref().filter(|d| !d.is_empty()) {
        let bytes = STANDARD
            .decode(d.trim())
            .map_err(|e| format!("{field}-data: not base64 ({e})"))?;
        return Ok(Some((bytes, format!("{field}-data"))));
    }
    match file.as_deref().filter(|f| !f.is_empty()) {
        Some(f) => {
            let path = base.join(f);
            Ok(Some((read(&path)?, format!("{field} {}", path.display()))))
        }
        None => Ok(None),
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: bad PEM ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate"));
    }
    Ok(certs)
}

/// The parts of a kubeconfig read here; other keys are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    context: T,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: User,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    #[serde(default, rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(default, rename = "certificate-authority")]
    ca_file: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default, rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(default, rename = "client-certificate")]
    cert_file: Option<String>,
    #[serde(default, rename = "client-key-data")]
    key_data: Option<String>,
    #[serde(default, rename = "client-key")]
    key_file: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(default)]
    exec: Option<serde_json::Value>,
    #[serde(default)]
    auth_provider: Option<serde_json::Value>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
