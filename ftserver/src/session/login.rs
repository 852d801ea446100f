//! USER, PASS and REIN: a login is one call to the server's `Authenticator`, whose `Principal`
//! the session keeps; every later command asks it what the client may do.

use super::{Flow, Session};
use crate::auth::{Attempt, Refused};
use crate::hash::Algorithm;
use common::listing::Facts;
use common::path::VirtualPath;
use common::text::sanitize;
use log::info;
use std::io;

impl Session<'_> {
    /// USER: remembers the name for PASS and ends any earlier login.
    pub(super) fn user(&mut self, name: String) -> io::Result<()> {
        if self.ctx.config.require_tls && !self.ctrl.get_ref().conn.is_encrypted() {
            return self.reply(530, "Encryption required: use AUTH TLS first.");
        }
        self.user = Some(name);
        self.principal = None;
        self.reply(331, "Please specify the password.")
    }

    /// PASS: asks the authenticator. The password is never logged. A refusal waits the
    /// authenticator's growing delay before its `530`, and the last one allowed in a session
    /// (or a locked-out address: `421`) closes the connection.
    pub(super) fn pass(&mut self, password: &str) -> io::Result<Flow> {
        if self.principal.is_some() {
            return self.reply(230, "Already logged in.").map(|()| Flow::Continue);
        }
        let Some(user) = self.user.take() else {
            return self.reply(503, "Login with USER first.").map(|()| Flow::Continue);
        };
        let attempt =
            Attempt { user: &user, password, peer: self.peer.ip(), encrypted: self.ctrl.get_ref().conn.is_encrypted() };
        match self.ctx.auth.login(&attempt) {
            Ok(who) => {
                let kind = if who.anonymous { "anonymous" } else { "account" };
                info!("{}: logged in as {} ({kind}, {})", self.peer, who.name, who.rights.describe());
                self.principal = Some(who);
                self.cwd = VirtualPath::root();
                self.reply(230, "Login successful.").map(|()| Flow::Continue)
            }
            Err(refused @ Refused::LockedOut { .. }) => {
                info!("{}: login as {} refused: {refused}", self.peer, sanitize(&user));
                self.reply(421, "Too many failed logins from your address, try again later.").map(|()| Flow::Close)
            }
            Err(refused) => {
                self.failures = self.failures.saturating_add(1);
                let after = self.ctx.auth.after_failure(self.failures);
                info!(
                    "{}: login as {} refused: {refused} (failure {} of this session)",
                    self.peer,
                    sanitize(&user),
                    self.failures
                );
                std::thread::sleep(after.delay);
                self.reply(530, "Login incorrect.")?;
                Ok(if after.disconnect { Flow::Close } else { Flow::Continue })
            }
        }
    }

    /// REIN: back to the state of a new connection (RFC 959 4.1.1).
    pub(super) fn rein(&mut self) -> io::Result<()> {
        self.user = None;
        self.principal = None;
        self.cwd = VirtualPath::root();
        self.ascii = true;
        self.rest = 0;
        self.announced = None;
        self.data = None;
        self.block = false;
        self.kept = None;
        self.epsv_all = false;
        self.facts = Facts::default();
        self.hash_algorithm = Algorithm::Sha256;
        self.hash_chosen = false;
        self.rename_from = None;
        self.reply(220, "Service ready for new user.")
    }
}
