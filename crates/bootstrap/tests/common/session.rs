//! The start every env test shares: the environment (or a skip), the binary's lock when the
//! test changes what other tests see, the AWS config, a Kubernetes client, a tag unique to
//! this run, and the [`Cleanup`] guard that removes what the test made, pass or fail.

use tokio::sync::{Mutex, MutexGuard};

use super::Env;
use super::cleanup::Cleanup;

/// One test at a time for the tests of a binary that change the same cluster (each test
/// binary compiles `common` once, so this is one lock per binary).
pub static SERIAL: Mutex<()> = Mutex::const_new(());

/// An env test's fixtures. The cleanup guard is dropped before the lock is released, so what
/// the test made is gone before the next serial test starts.
pub struct Session {
    pub env: Env,
    pub cfg: aws_config::SdkConfig,
    pub kube: kube::Client,
    /// `common::unique(prefix)`: names this run's namespaces, secrets and roles.
    pub tag: String,
    pub cleanup: Cleanup,
    _serial: Option<MutexGuard<'static, ()>>,
}

impl Session {
    /// A test that may run beside the binary's others; `None` (the test returns) without the
    /// environment.
    pub async fn start(prefix: &str) -> Option<Self> {
        Self::open(prefix, false).await
    }

    /// A test that holds [`SERIAL`] until it ends.
    pub async fn serial(prefix: &str) -> Option<Self> {
        Self::open(prefix, true).await
    }

    async fn open(prefix: &str, serial: bool) -> Option<Self> {
        let env = super::env()?;
        let _serial = if serial {
            Some(SERIAL.lock().await)
        } else {
            None
        };
        Some(Self {
            cleanup: Cleanup::new(&env.cluster),
            cfg: super::aws().await,
            kube: super::kube().await,
            tag: super::unique(prefix),
            env,
            _serial,
        })
    }

    /// The fixtures, for one `let (env, tag, cfg, kube, cleanup) = s.parts();`.
    pub fn parts(
        &mut self,
    ) -> (
        &Env,
        &String,
        &aws_config::SdkConfig,
        &kube::Client,
        &mut Cleanup,
    ) {
        (
            &self.env,
            &self.tag,
            &self.cfg,
            &self.kube,
            &mut self.cleanup,
        )
    }

    pub fn cluster(&self) -> &str {
        &self.env.cluster
    }
}

/// `let mut s = common::session!("tag");` (`session!(serial, "tag")` to hold [`SERIAL`]):
/// the test's [`Session`], or a return from the test when the environment is not up.
#[allow(unused_macros)]
macro_rules! session {
    (serial, $prefix:literal) => {
        match $crate::common::Session::serial($prefix).await {
            Some(session) => session,
            None => return,
        }
    };
    ($prefix:literal) => {
        match $crate::common::Session::start($prefix).await {
            Some(session) => session,
            None => return,
        }
    };
}
pub(crate) use session;
