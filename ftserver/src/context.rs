//! What every FTP session of one server shares: the configuration, the storage, the way logins
//! are checked, the digest cache, the hash job slots, and the stop flag. The accept loop
//! (`server`) owns it and hands each session a reference; sessions never see the accept loop.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::data::PassiveShares;
use crate::hash::{DigestCache, JobSlots};
use crate::storage::Storage;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What sessions share.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: Config,
    /// The served tree.
    pub(crate) storage: Arc<dyn Storage>,
    /// Checks logins.
    pub(crate) auth: Arc<dyn Authenticator>,
    /// Recent digests of unchanged files.
    pub(crate) digests: DigestCache,
    /// The passive listeners each client address holds.
    pub(crate) passive: Arc<PassiveShares>,
    /// Limits concurrent HASH jobs across all sessions.
    pub(crate) hash_jobs: JobSlots,
    /// Set once by `ServerHandle::shutdown`.
    pub(crate) stop: AtomicBool,
}

impl Context {
    /// Is the server stopping?
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
