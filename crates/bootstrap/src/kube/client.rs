//! Builds a Kubernetes client: from the kubeconfig context that points at the cluster, or from
//! DescribeCluster's endpoint and CA plus an EKS token signed here.

use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KubeError;
use super::retry::Transient;

/// What DescribeCluster told us about the API server.
#[derive(Debug, Clone, Default)]
pub struct ClusterEndpoint {
    pub name: String,
    pub arn: String,
    pub endpoint: String,
    /// Base64 of the PEM CA bundle, as EKS returns it.
    pub certificate_authority: String,
}

/// How the client was made (reported by preflight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Kubeconfig { context: String },
    EksToken,
}

/// Picks the kubeconfig context for the cluster: one whose server is the cluster's endpoint,
/// or whose context or cluster name is the cluster's name or ARN (or ends in `/<name>`).
pub fn matching_context(config: &Kubeconfig, cluster: &ClusterEndpoint) -> Option<String> {
    let endpoint = cluster.endpoint.trim_end_matches('/');
    let names_match = |n: &str| {
        n == cluster.name
            || (!cluster.arn.is_empty() && n == cluster.arn)
            || n.ends_with(&format!("/{}", cluster.name))
    };
    config.contexts.iter().find_map(|named| {
        let ctx = named.context.as_ref()?;
        let server = config
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.as_deref())
            .map(|s| s.trim_end_matches('/'));
        let by_server = !endpoint.is_empty() && server == Some(endpoint);
        (by_server || names_match(&named.name) || names_match(&ctx.cluster))
            .then(|| named.name.clone())
    })
}

/// A client from the kubeconfig context for the cluster, if there is one.
pub async fn from_kubeconfig(
    cluster: &ClusterEndpoint,
) -> Result<Option<(kube::Client, Source)>, KubeError> {
    let config = match Kubeconfig::read() {
        Ok(c) => c,
        Err(_) => return Ok(None),
    };
    let Some(context) = matching_context(&config, cluster) else {
        return Ok(None);
    };
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..Default::default()
    };
    let client_config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .map_err(|source| KubeError::Kubeconfig { source })?;
    let client = build(client_config).map_err(|source| KubeError::Client {
        cluster: cluster.name.clone(),
        source,
    })?;
    Ok(Some((client, Source::Kubeconfig { context })))
}

/// A client from the cluster's endpoint and CA, authenticating with `token`.
pub fn from_endpoint(cluster: &ClusterEndpoint, token: String) -> Result<kube::Client, KubeError> {
    let bad = |problem: String| KubeError::Client {
        cluster: cluster.name.clone(),
        source: kube::Error::Service(problem.into()),
    };
    let url = cluster
        .endpoint
        .parse()
        .map_err(|e| bad(format!("endpoint {:?} is not a URL: {e}", cluster.endpoint)))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(pem_to_der(&cluster.certificate_authority).map_err(bad)?);
    config.auth_info.token = Some(token.into());
    config.default_namespace = "default".into();
    build(config).map_err(|source| KubeError::Client {
        cluster: cluster.name.clone(),
        source,
    })
}

/// The client for `config`, with bootstrap's bounded retries of transient answers
/// ([`Transient`]) in place of kube's own (up to 15 retries over minutes).
fn build(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(Transient::default()))
        .build())
}

/// Decodes EKS's base64 PEM bundle into DER certificates.
pub fn pem_to_der(base64_pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let pem = engine
        .decode(base64_pem.trim())
        .map_err(|e| format!("the cluster CA is not base64: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|_| "the cluster CA is not PEM text".to_string())?;
    let mut certs = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines().map(str::trim) {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END CERTIFICATE") {
            inside = false;
            certs.push(
                engine
                    .decode(&body)
                    .map_err(|e| format!("a CA certificate is not base64: {e}"))?,
            );
        } else if inside {
            body.push_str(line);
        }
    }
    if certs.is_empty() {
        return Err("the cluster CA holds no certificate".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_pem_bundle() {
        let engine = base64::engine::general_purpose::STANDARD;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            engine.encode(b"der-bytes")
        );
        let certs = pem_to_der(&engine.encode(pem)).expect("decodes");
        assert_eq!(certs, vec![b"der-bytes".to_vec()]);
        assert!(pem_to_der("not base64!").is_err());
        assert!(pem_to_der(&engine.encode("no certs")).is_err());
    }

    #[test]
    fn matches_contexts_by_server_or_name() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443/"}
- name: arn:aws:eks:us-east-1:1:cluster/prod
  cluster: {server: "https://prod.example"}
contexts:
- name: kind
  context: {cluster: local, user: u}
- name: prod-ctx
  context: {cluster: "arn:aws:eks:us-east-1:1:cluster/prod", user: u}
users: []
"#;
        let config = Kubeconfig::from_yaml(yaml).expect("kubeconfig");
        let by_server = ClusterEndpoint {
            name: "demo".into(),
            endpoint: "https://127.0.0.1:6443".into(),
            ..Default::default()
        };
        assert_eq!(
            matching_context(&config, &by_server).as_deref(),
            Some("kind")
        );
        let by_name = ClusterEndpoint {
            name: "prod".into(),
            ..Default::default()
        };
        assert_eq!(
            matching_context(&config, &by_name).as_deref(),
            Some("prod-ctx")
        );
        let none = ClusterEndpoint {
            name: "other".into(),
            endpoint: "https://x".into(),
            ..Default::default()
        };
        assert_eq!(matching_context(&config, &none), None);
    }
}
