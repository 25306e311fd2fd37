//! The driver-facing gRPC service (`v1alpha1.CSIDriverProvider`) on a unix socket.

use std::future::Future;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixListener;
use tonic::{Request, Response, Status};

use super::authority::AuthorityFix;
use super::error::{FetchCause, MountError};
use super::mount::Mounter;
use super::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use super::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

/// Name this provider reports in `Version`.
pub const RUNTIME_NAME: &str = "aws-csi-provider";
/// The socket file name the driver looks for (`<provider>.sock`, provider `aws`).
pub const SOCKET_NAME: &str = "aws.sock";

/// The gRPC service.
pub struct ProviderService {
    mounter: Arc<Mounter>,
}

impl ProviderService {
    pub fn new(mounter: Arc<Mounter>) -> Self {
        Self { mounter }
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        let version = request.into_inner().version;
        Ok(Response::new(VersionResponse {
            version: if version.is_empty() {
                "v1alpha1".into()
            } else {
                version
            },
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        self.mounter
            .mount(request.into_inner())
            .await
            .map(Response::new)
            .map_err(|e| to_status(&e))
    }
}

/// Maps a mount error to a gRPC status whose message is the full, secret-free explanation.
pub fn to_status(e: &MountError) -> Status {
    let msg = e.to_string();
    match e {
        MountError::Fetch {
            cause: FetchCause::NotFound,
            ..
        }
        | MountError::NoMatch { .. } => Status::not_found(msg),
        MountError::Fetch {
            cause: FetchCause::AccessDenied { .. },
            ..
        } => Status::permission_denied(msg),
        MountError::Deadline { .. } => Status::deadline_exceeded(msg),
        MountError::TooLarge { .. } => Status::resource_exhausted(msg),
        e if e.is_user_error() => Status::invalid_argument(msg),
        _ => Status::unavailable(msg),
    }
}

/// Binds `<dir>/aws.sock` (creating `dir`, replacing a stale socket) and serves until
/// `shutdown` resolves; `on_ready` runs once the socket listens. The socket is removed on exit.
pub async fn serve_unix(
    dir: &Path,
    mounter: Arc<Mounter>,
    on_ready: impl FnOnce(),
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SOCKET_NAME);
    remove_stale_socket(&path)?;
    let listener = bind_owner_only(&path)?;
    tracing::info!(socket = %path.display(), "gRPC provider listening");
    on_ready();
    let incoming = futures::stream::unfold(listener, |listener| async move {
        // Any :authority is accepted (see the authority module).
        let accepted = listener
            .accept()
            .await
            .map(|(stream, _)| AuthorityFix::new(stream));
        Some((accepted, listener))
    });
    let result = tonic::transport::Server::builder()
        .add_service(CsiDriverProviderServer::new(ProviderService::new(mounter)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    let _ = std::fs::remove_file(&path);
    result.map_err(io::Error::other)
}

/// Mode of the provider socket: only its owner (root, like the driver) may connect. Anyone who
/// can connect can ask for any pod's secrets with that pod's token.
pub const SOCKET_MODE: u32 = 0o600;

/// Binds a listening socket at `path` that is never reachable by anyone but its owner: it is
/// bound inside a fresh owner-only directory, set to [`SOCKET_MODE`], then renamed into place
/// (the process umask is neither trusted nor changed: it is process-wide).
pub fn bind_owner_only(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let parent = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let private = parent.join(format!(".{name}.{}.bind", std::process::id()));
    if std::fs::symlink_metadata(&private).is_ok() {
        std::fs::remove_dir_all(&private)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let staged = private.join(SOCKET_NAME);
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Removes `path` if it is a socket left by a previous run; refuses to remove anything else.
pub fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            tracing::info!(socket = %path.display(), "removing stale socket");
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_socket_handling() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("aws.sock");
        assert!(remove_stale_socket(&sock).is_ok());
        let l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        drop(l);
        assert!(remove_stale_socket(&sock).is_ok());
        assert!(!sock.exists());
        std::fs::write(&sock, b"not a socket").expect("write");
        assert!(remove_stale_socket(&sock).is_err());
    }

    #[tokio::test]
    async fn the_socket_is_owner_only_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join(SOCKET_NAME);
        let listener = bind_owner_only(&sock).expect("bind");
        let mode = std::fs::symlink_metadata(&sock)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, SOCKET_MODE, "mode {mode:o}");
        assert!(
            std::fs::symlink_metadata(&sock)
                .expect("stat")
                .file_type()
                .is_socket()
        );
        // It listens at its final path, and the staging directory is gone.
        let client = tokio::net::UnixStream::connect(&sock).await;
        assert!(client.is_ok(), "{client:?}");
        assert!(listener.accept().await.is_ok());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(SOCKET_NAME)]);
    }

    #[test]
    fn status_codes() {
        let e = MountError::UsePodIdentity {
            value: "yes".into(),
        };
        assert_eq!(to_status(&e).code(), tonic::Code::InvalidArgument);
        let e = MountError::Deadline { secs: 1 };
        assert_eq!(to_status(&e).code(), tonic::Code::DeadlineExceeded);
        let e = MountError::Busy {
            limit: 1,
            waited_ms: 5,
        };
        assert_eq!(to_status(&e).code(), tonic::Code::Unavailable);
    }
}
