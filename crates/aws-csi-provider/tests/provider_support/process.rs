//! The real `aws-csi-provider` binary as a child process, started like the driver's node
//! DaemonSet starts it, with its socket in a given volume; and what /proc says of its memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the provider `binary` with its socket in `volume`, the agent at `agent_url`, `env`
/// (AWS_ENDPOINT_URL, AWS_REGION, RUST_LOG…) and nothing else of this process's environment,
/// and `extra` flags; waits (at most 20 s) for its socket. Returns the child and the socket's
/// path, which the caller checks: it does not exist when the provider did not start.
pub async fn spawn(
    binary: &str,
    volume: &Path,
    agent_url: &str,
    env: &[(&str, &str)],
    extra: &[String],
    stderr: Stdio,
) -> (Child, PathBuf) {
    let child = Command::new(binary)
        .arg("--provider-volume")
        .arg(volume)
        .arg("--pod-identity-endpoint")
        .arg(agent_url)
        .args(extra)
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stderr(stderr)
        .spawn()
        .expect("start the provider");
    let socket = volume.join("aws.sock");
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, socket)
}

/// A `VmRSS:` / `VmHWM:` field of /proc/PID/status in KiB (0 when unreadable).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
