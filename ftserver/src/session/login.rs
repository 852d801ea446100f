//! USER, PASS and REIN: a login is one call to the server's `Authenticator`, whose `Principal`
//! the session keeps; every later command asks it what the client may do.

use super::Session;
use crate::auth::Attempt;
use crate::hash::Algorithm;
use common::listing::Facts;
use common::path::VirtualPath;
use common::text::sanitize;
use log::info;
use std::io;

impl Session<'_> {
    /// USER: remembers the name for PASS and ends any earlier login.
    pub(super) fn user(&mut self, name: String) -> io::Result<()> {
        self.user = Some(name);
        self.principal = None;
        self.reply(331, "Please specify the password.")
    }

    /// PASS: asks the authenticator. The password is never logged.
    pub(super) fn pass(&mut self, password: &str) -> io::Result<()> {
        if self.principal.is_some() {
            return self.reply(230, "Already logged in.");
        }
        let Some(user) = self.user.take() else { return self.reply(503, "Login with USER first.") };
        let attempt =
            Attempt { user: &user, password, peer: self.peer.ip(), encrypted: self.ctrl.get_ref().conn.is_encrypted() };
        match self.ctx.auth.login(&attempt) {
            Ok(who) => {
                let kind = if who.anonymous { "anonymous" } else { "account" };
                info!("{}: logged in as {} ({kind}, {})", self.peer, who.name, who.rights.describe());
                self.principal = Some(who);
                self.cwd = VirtualPath::root();
                self.reply(230, "Login successful.")
            }
            Err(refused) => {
                info!("{}: login as {} refused: {refused}", self.peer, sanitize(&user));
                self.reply(530, "Login incorrect.")
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
        self.epsv_all = false;
        self.facts = Facts::default();
        self.hash_algorithm = Algorithm::Sha256;
        self.hash_chosen = false;
        self.rename_from = None;
        self.reply(220, "Service ready for new user.")
    }
}
