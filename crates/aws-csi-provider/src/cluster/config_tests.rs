use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;

// PEM framing around arbitrary DER bytes: parsing here does not validate X.509 (rustls does
// when the client is built; the environment's tests use real certificates).
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBAQ==\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIBAg==\n-----END PRIVATE KEY-----\n";

fn kubeconfig(user: &str, cluster_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443/\n{cluster_extra}users:\n- name: u\n  user:\n{user}contexts:\n- name: other\n  context: {{cluster: nope, user: nope}}\n- name: ctx\n  context: {{cluster: c, user: u}}\ncurrent-context: ctx\n"
    )
}

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn parse(text: &str, base: &Path) -> Result<Config, String> {
    Config::from_kubeconfig_str(text, base)
}

#[test]
fn client_certificate_and_ca_data() {
    let text = kubeconfig(
        &format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(CERT),
            b64(KEY)
        ),
        &format!("    certificate-authority-data: {}\n", b64(CERT)),
    );
    let c = parse(&text, Path::new("/nonexistent")).expect("parses");
    assert_eq!(c.server, "https://127.0.0.1:6443");
    assert_eq!(c.roots.len(), 1);
    assert_eq!(
        c.roots[0].as_ref(),
        STANDARD.decode("MIIBAQ==").expect("b64").as_slice()
    );
    let cert = c.client_cert.expect("client cert");
    assert_eq!(cert.chain.len(), 1);
    assert!(matches!(c.auth, Auth::None));
}

#[test]
fn files_are_relative_to_the_kubeconfig() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("pki")).expect("mkdir");
    std::fs::write(dir.path().join("pki/ca.crt"), CERT).expect("write");
    std::fs::write(dir.path().join("pki/admin.crt"), CERT).expect("write");
    std::fs::write(dir.path().join("pki/admin.key"), KEY).expect("write");
    let text = kubeconfig(
        "    client-certificate: pki/admin.crt\n    client-key: pki/admin.key\n",
        "    certificate-authority: pki/ca.crt\n",
    );
    let path = dir.path().join("config");
    std::fs::write(&path, text).expect("write");
    let c = Config::from_kubeconfig(&path).expect("parses");
    assert_eq!(c.roots.len(), 1);
    assert!(c.client_cert.is_some());
    // A missing file is named.
    std::fs::remove_file(dir.path().join("pki/admin.key")).expect("rm");
    let e = Config::from_kubeconfig(&path).err().expect("missing key");
    assert!(e.contains("pki/admin.key"), "{e}");
    assert!(
        e.starts_with(&format!("kubeconfig {}: read ", path.display())),
        "{e}"
    );
}

#[test]
fn bearer_token_and_token_file() {
    let c = parse(&kubeconfig("    token: abc\n", ""), Path::new("/")).expect("parses");
    assert!(matches!(&c.auth, Auth::Token(t) if t.expose() == "abc"));
    assert!(c.roots.is_empty(), "no CA: the system's roots");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tok"), "t").expect("write");
    let c = parse(&kubeconfig("    tokenFile: tok\n", ""), dir.path()).expect("parses");
    assert!(matches!(&c.auth, Auth::TokenFile(p) if *p == dir.path().join("tok")));
}

#[test]
fn refuses_exec_plugins_and_auth_providers() {
    let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]\n";
    let e = parse(&kubeconfig(exec, ""), Path::new("/"))
        .err()
        .expect("exec");
    assert_eq!(
        e,
        "kubeconfig user \"u\" uses an exec plugin, which the provider does not run; give it a token or client certificate"
    );
    let ap = "    auth-provider:\n      name: gcp\n";
    let e = parse(&kubeconfig(ap, ""), Path::new("/"))
        .err()
        .expect("auth provider");
    assert!(e.contains("uses an auth provider"), "{e}");
    let basic = "    username: a\n    password: b\n";
    let e = parse(&kubeconfig(basic, ""), Path::new("/"))
        .err()
        .expect("basic");
    assert!(e.contains("basic auth"), "{e}");
    let e = parse(
        &kubeconfig("    token: x\n", "    insecure-skip-tls-verify: true\n"),
        Path::new("/"),
    )
    .err()
    .expect("insecure");
    assert!(e.contains("insecure-skip-tls-verify"), "{e}");
}

#[test]
fn names_what_is_missing() {
    let no_ctx = "clusters: []\nusers: []\ncontexts: []\n";
    assert_eq!(
        parse(no_ctx, Path::new("/")).err().as_deref(),
        Some("no current-context")
    );
    let dangling =
        "clusters: []\ncontexts:\n- name: a\n  context: {cluster: gone}\ncurrent-context: a\n";
    let e = parse(dangling, Path::new("/")).err().expect("dangling");
    assert_eq!(
        e,
        "cluster \"gone\" (of context \"a\") is not among its clusters"
    );
    let half = kubeconfig(&format!("    client-certificate-data: {}\n", b64(CERT)), "");
    let e = parse(&half, Path::new("/"))
        .err()
        .expect("cert without key");
    assert!(e.contains("without a key"), "{e}");
    let bad = kubeconfig("    token: x\n", "    certificate-authority-data: '%%%'\n");
    let e = parse(&bad, Path::new("/")).err().expect("bad base64");
    assert!(
        e.starts_with("certificate-authority-data: not base64"),
        "{e}"
    );
    let not_pem = kubeconfig(
        "    token: x\n",
        &format!("    certificate-authority-data: {}\n", b64("hello")),
    );
    let e = parse(&not_pem, Path::new("/")).err().expect("not PEM");
    assert_eq!(e, "certificate-authority-data: no PEM certificate");
}

#[test]
fn in_cluster_reads_token_and_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.crt"), CERT).expect("write");
    let e = Config::in_cluster("10.96.0.1", "443", dir.path())
        .err()
        .expect("no token");
    assert!(e.contains("token"), "{e}");
    std::fs::write(dir.path().join("token"), "t").expect("write");
    let c = Config::in_cluster("10.96.0.1", "443", dir.path()).expect("in-cluster");
    assert_eq!(c.server, "https://10.96.0.1:443");
    assert_eq!(c.roots.len(), 1);
    assert!(matches!(&c.auth, Auth::TokenFile(p) if *p == dir.path().join("token")));
    let c = Config::in_cluster("fd00::1", "6443", dir.path()).expect("in-cluster v6");
    assert_eq!(c.server, "https://[fd00::1]:6443");
}
