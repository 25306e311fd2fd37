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

/// A kubeconfig context that names the cluster but points at another server: dialling it
/// would act on a different cluster (same name in another account or region, or a stale
/// entry for a re-created cluster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMismatch {
    pub context: String,
    pub server: String,
    pub endpoint: String,
}

/// Picks the kubeconfig context for the cluster by its server: the first context whose
/// cluster's server is DescribeCluster's endpoint (preferring one that also carries the
/// cluster's name or ARN). A context that matches only by name — the cluster's name or ARN,
/// or a name ending in `/<name>` — while pointing at another server is refused: the AWS side
/// and the Kubernetes side would be two different clusters. `Ok(None)`: no context names or
/// serves the cluster (the EKS token path is used).
pub fn matching_context(
    config: &Kubeconfig,
    cluster: &ClusterEndpoint,
) -> Result<Option<String>, ServerMismatch> {
    Ok(matching_index(config, cluster)?.map(|i| config.contexts[i].name.clone()))
}

/// [`matching_context`]'s choice as an index: context names may repeat (merged files), so
/// the client is built from that one context, not looked up again by its name.
fn matching_index(
    config: &Kubeconfig,
    cluster: &ClusterEndpoint,
) -> Result<Option<usize>, ServerMismatch> {
    let endpoint = normalize_server(&cluster.endpoint);
    let names_match = |n: &str| {
        n == cluster.name
            || (!cluster.arn.is_empty() && n == cluster.arn)
            || n.ends_with(&format!("/{}", cluster.name))
    };
    let contexts: Vec<(usize, &str, bool, Option<&str>)> = config
        .contexts
        .iter()
        .enumerate()
        .filter_map(|(i, named)| {
            let ctx = named.context.as_ref()?;
            let server = config
                .clusters
                .iter()
                .find(|c| c.name == ctx.cluster)
                .and_then(|c| c.cluster.as_ref())
                .and_then(|c| c.server.as_deref());
            let by_name = names_match(&named.name) || names_match(&ctx.cluster);
            Some((i, named.name.as_str(), by_name, server))
        })
        .collect();
    let serves = |server: Option<&str>| {
        !endpoint.is_empty() && server.map(normalize_server).as_deref() == Some(endpoint.as_str())
    };
    // The first context serving the endpoint, preferring one that also carries the name.
    let by_server = contexts
        .iter()
        .filter(|(_, _, _, server)| serves(*server))
        .min_by_key(|(i, _, by_name, _)| (!*by_name, *i));
    if let Some((i, _, _, _)) = by_server {
        return Ok(Some(*i));
    }
    match contexts.iter().find(|(_, _, by_name, _)| *by_name) {
        Some((_, name, _, server)) => Err(ServerMismatch {
            context: (*name).to_string(),
            server: server.unwrap_or("<none>").to_string(),
            endpoint: cluster.endpoint.clone(),
        }),
        None => Ok(None),
    }
}

/// The kubeconfig reduced to the context at `index`, the first cluster and user of the names
/// it refers to (what kubectl would resolve): nothing else left to be chosen by name.
fn only_context(config: Kubeconfig, index: usize) -> Kubeconfig {
    let named = config.contexts[index].clone();
    let ctx = named.context.as_ref();
    let cluster = ctx.and_then(|c| config.clusters.iter().find(|x| x.name == c.cluster));
    let user = ctx
        .and_then(|c| c.user.as_deref())
        .and_then(|u| config.auth_infos.iter().find(|a| a.name == u));
    Kubeconfig {
        clusters: cluster.cloned().into_iter().collect(),
        auth_infos: user.cloned().into_iter().collect(),
        current_context: Some(named.name.clone()),
        contexts: vec![named],
        ..config
    }
}

/// A server URL in a comparable form: lower-case scheme and host, no default port, no
/// trailing slash.
fn normalize_server(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    let (scheme, rest) = server.split_once("://").unwrap_or(("https", server));
    let scheme = scheme.to_ascii_lowercase();
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let mut host = host.to_ascii_lowercase();
    let default_port = if scheme == "http" { ":80" } else { ":443" };
    if let Some(stripped) = host.strip_suffix(default_port) {
        host = stripped.to_string();
    }
    if path.is_empty() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{path}")
    }
}

/// A client from the kubeconfig context for the cluster, if there is one.
pub async fn from_kubeconfig(
    cluster: &ClusterEndpoint,
) -> Result<Option<(kube::Client, Source)>, KubeError> {
    let config = match Kubeconfig::read() {
        Ok(c) => c,
        Err(_) => return Ok(None),
    };
    let index = match matching_index(&config, cluster) {
        Ok(Some(index)) => index,
        Ok(None) => return Ok(None),
        Err(m) => {
            return Err(KubeError::ContextServerMismatch {
                cluster: cluster.name.clone(),
                context: m.context,
                server: m.server,
                endpoint: m.endpoint,
            });
        }
    };
    let config = only_context(config, index);
    let context = config.contexts[0].name.clone();
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

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:6443/"}
- name: arn:aws:eks:us-east-1:111111111111:cluster/demo
  cluster: {server: "https://AAAA.gr7.us-east-1.eks.amazonaws.com"}
- name: arn:aws:eks:eu-west-1:222222222222:cluster/demo
  cluster: {server: "https://BBBB.gr7.eu-west-1.eks.amazonaws.com:443/"}
contexts:
- name: kind
  context: {cluster: local, user: u}
- name: demo-us
  context: {cluster: "arn:aws:eks:us-east-1:111111111111:cluster/demo", user: u}
- name: demo-eu
  context: {cluster: "arn:aws:eks:eu-west-1:222222222222:cluster/demo", user: u}
users: []
"#;

    fn endpoint(name: &str, arn: &str, endpoint: &str) -> ClusterEndpoint {
        ClusterEndpoint {
            name: name.into(),
            arn: arn.into(),
            endpoint: endpoint.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_context_is_chosen_by_its_server() {
        let config = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let local = endpoint("demo-local", "", "https://127.0.0.1:6443");
        assert_eq!(matching_context(&config, &local), Ok(Some("kind".into())));
        // Two clusters called `demo`: the one DescribeCluster answered for is the one whose
        // server is dialled, even though another `demo` context comes first.
        let eu = endpoint(
            "demo",
            "arn:aws:eks:eu-west-1:222222222222:cluster/demo",
            "https://bbbb.gr7.eu-west-1.eks.amazonaws.com",
        );
        assert_eq!(matching_context(&config, &eu), Ok(Some("demo-eu".into())));
        let us = endpoint(
            "demo",
            "arn:aws:eks:us-east-1:111111111111:cluster/demo",
            "https://AAAA.gr7.us-east-1.eks.amazonaws.com/",
        );
        assert_eq!(matching_context(&config, &us), Ok(Some("demo-us".into())));
    }

    #[test]
    fn a_same_named_context_on_another_server_is_refused_naming_both() {
        let config = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        // A third `demo` (another account), absent from the kubeconfig: the name matches two
        // contexts, neither serves its endpoint.
        let other = endpoint(
            "demo",
            "arn:aws:eks:us-west-2:333333333333:cluster/demo",
            "https://CCCC.gr7.us-west-2.eks.amazonaws.com",
        );
        let refused = matching_context(&config, &other).expect_err("refused");
        assert_eq!(refused.context, "demo-us");
        assert_eq!(
            refused.server,
            "https://AAAA.gr7.us-east-1.eks.amazonaws.com"
        );
        assert_eq!(
            refused.endpoint,
            "https://CCCC.gr7.us-west-2.eks.amazonaws.com"
        );
        // The exact ARN of a re-created cluster (new endpoint) is refused as well.
        let recreated = endpoint(
            "demo",
            "arn:aws:eks:us-east-1:111111111111:cluster/demo",
            "https://DDDD.gr7.us-east-1.eks.amazonaws.com",
        );
        assert!(matching_context(&config, &recreated).is_err());
        let message = KubeError::ContextServerMismatch {
            cluster: "demo".into(),
            context: refused.context,
            server: refused.server,
            endpoint: refused.endpoint,
        }
        .to_string();
        assert!(message.contains("AAAA.gr7.us-east-1") && message.contains("CCCC.gr7.us-west-2"));
    }

    #[test]
    fn a_context_name_used_twice_resolves_to_the_one_that_serves_the_cluster() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters:
- name: decoy
  cluster: {server: "https://10.0.0.1"}
- name: real
  cluster: {server: "https://127.0.0.1:6443"}
contexts:
- name: demo
  context: {cluster: decoy, user: u}
- name: demo
  context: {cluster: real, user: u}
users: []
"#;
        let config = Kubeconfig::from_yaml(yaml).expect("kubeconfig");
        let local = endpoint("demo", "", "https://127.0.0.1:6443");
        let index = matching_index(&config, &local)
            .expect("matches")
            .expect("a context");
        assert_eq!(index, 1);
        let only = only_context(config, index);
        assert_eq!(only.contexts.len(), 1);
        assert_eq!(only.clusters.len(), 1);
        assert_eq!(only.clusters[0].name, "real");
    }

    #[test]
    fn no_context_for_the_cluster_means_the_token_path() {
        let config = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        let none = endpoint("other", "", "https://x.example");
        assert_eq!(matching_context(&config, &none), Ok(None));
    }

    #[test]
    fn servers_compare_without_case_default_port_or_trailing_slash() {
        assert_eq!(
            normalize_server("HTTPS://Host.Example:443/"),
            normalize_server("https://host.example")
        );
        assert_ne!(
            normalize_server("https://host.example:6443"),
            normalize_server("https://host.example")
        );
        assert_ne!(
            normalize_server("https://host.example/a"),
            normalize_server("https://host.example")
        );
    }
}
