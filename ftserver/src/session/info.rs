//! The commands answered on the control connection alone: MLST, SIZE, MDTM, HASH (and its
//! legacy X-forms) and STAT.

use super::control::client_spoke;
use super::read::strip_ls_options;
use super::Session;
use crate::hash::{self, Algorithm, HashError};
use crate::listing::{self, ListKind};
use crate::storage::{Opened, StorageError};
use common::listing::{format_mdtm, format_mlsx};
use common::path::VirtualPath;
use common::text::sanitize;
use std::io;
use std::time::Instant;

impl Session<'_> {
    pub(super) fn mlst(&mut self, arg: Option<String>) -> io::Result<()> {
        if self.denied(crate::auth::Perm::List)? {
            return Ok(());
        }
        let arg = arg.unwrap_or_default();
        let vp = match self.vpath(&arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.storage().stat(&self.stored(&vp)) {
            Ok(meta) => {
                let mut entry = listing::entry(vp.to_string(), &meta, self.rights());
                if vp == VirtualPath::root() {
                    // The root can be neither deleted nor renamed (RMD / and RNFR / are refused).
                    if let Some(perm) = &mut entry.perm {
                        perm.retain(|c| c != 'd' && c != 'f');
                    }
                }
                let lines =
                    vec![format!("Listing {vp}"), format!(" {}", format_mlsx(&entry, self.facts)), "End".into()];
                self.reply_multi(250, lines)
            }
            Err(e) => self.storage_error(&arg, &e),
        }
    }

    pub(super) fn size(&mut self, arg: &str) -> io::Result<()> {
        if self.denied(crate::auth::Perm::List)? {
            return Ok(());
        }
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        let stored = self.stored(&vp);
        match self.storage().stat(&stored) {
            Ok(meta) if meta.is_file() => self.reply(213, meta.len.to_string()),
            Ok(_) => self.storage_error(arg, &StorageError::NotAFile),
            Err(StorageError::NotFound) if self.rights().allows(crate::auth::Perm::Upload) => {
                match self.storage().partial_size(&stored) {
                    // An interrupted upload: its size is where a resuming client continues.
                    Some(size) => self.reply(213, size.to_string()),
                    None => self.storage_error(arg, &StorageError::NotFound),
                }
            }
            Err(e) => self.storage_error(arg, &e),
        }
    }

    pub(super) fn mdtm(&mut self, arg: &str) -> io::Result<()> {
        if self.denied(crate::auth::Perm::List)? {
            return Ok(());
        }
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        // Of files only, as SIZE (RFC 3659 section 3; vsftpd and pyftpdlib refuse directories).
        match self.storage().stat(&self.stored(&vp)) {
            Ok(meta) if !meta.is_file() => self.storage_error(arg, &StorageError::NotAFile),
            Ok(meta) => match meta.modified {
                Some(t) => self.reply(213, format_mdtm(t)),
                None => self.reply(550, format!("{}: modification time unknown.", sanitize(arg))),
            },
            Err(e) => self.storage_error(arg, &e),
        }
    }

    /// `HASH path` (`213 <algorithm> 0-<size> <hex> <path>`) and the legacy `XSHA256 path` and
    /// friends (`250 <hex>`). Only regular files inside the root; at most `max_hash_jobs` at once
    /// (450 otherwise); anything the client sends meanwhile, or a hang-up, aborts the job.
    pub(super) fn hash(&mut self, arg: &str, algorithm: Algorithm, legacy: bool) -> io::Result<()> {
        if self.denied(crate::auth::Perm::Download)? {
            return Ok(());
        }
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        let Opened { mut reader, meta } = match self.storage().open_read(&self.stored(&vp), 0) {
            Ok(opened) => opened,
            Err(e) => return self.storage_error(arg, &e),
        };
        let ctx = self.ctx;
        let Some(slot) = ctx.hash_jobs.try_acquire() else {
            return self.reply(450, "Too many files are being hashed; try again later.");
        };
        let started = Instant::now();
        let before = self.ctrl.pending().len();
        let result = ctx.digests.digest_file(&mut *reader, meta.len, algorithm, || {
            !ctx.stopping() && !client_spoke(&mut self.ctrl, before)
        });
        // Free the slot before replying, so a client that hears the reply can start another job.
        drop(slot);
        let verb = if legacy { format!("X{}", algorithm.name().replace('-', "")) } else { "HASH".to_owned() };
        match result {
            Ok((digest, len)) => {
                let label = format!("{verb} {}", algorithm.name());
                self.log_transfer(&label, &vp, len, started, "ok");
                let hex = hash::hex(&digest);
                if legacy {
                    self.reply(250, hex)
                } else {
                    // The range is the whole file: from 0 to its size (no RANG support).
                    self.reply(213, format!("{} 0-{} {hex} {arg}", algorithm.name(), meta.len))
                }
            }
            Err(HashError::Aborted) => {
                self.log_transfer(&verb, &vp, 0, started, "aborted");
                self.reply(451, "Hashing aborted.")
            }
            Err(e) => {
                self.log_transfer(&verb, &vp, 0, started, &format!("failed: {e}"));
                self.reply(451, "Local error reading the file.")
            }
        }
    }

    pub(super) fn stat(&mut self) -> io::Result<()> {
        let tls = self.tls_status();
        let lines = vec![
            "FTP server status:".to_owned(),
            format!(" Connected to {}", self.peer),
            format!(" Logged in as {}", self.principal.as_ref().map_or("nobody", |who| &who.name)),
            format!(" TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" }),
            format!(" Mode: {}", if self.block { "block" } else { "stream" }),
            format!(" Session timeout in seconds is {}", self.ctx.config.idle_timeout.as_secs()),
            tls[0].clone(),
            tls[1].clone(),
            format!(" Access: {}", self.rights().describe()),
            format!(" Hash jobs running: {} of {}", self.ctx.hash_jobs.running(), self.ctx.hash_jobs.max()),
            "End of status".to_owned(),
        ];
        self.reply_multi(211, lines)
    }

    /// `STAT path`: a LIST-style listing over the control connection (RFC 959 4.1.3).
    pub(super) fn stat_path(&mut self, arg: &str) -> io::Result<()> {
        if self.denied(crate::auth::Perm::List)? {
            return Ok(());
        }
        let arg = strip_ls_options(arg).to_owned();
        let vp = match self.vpath(&arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.entries(&vp, ListKind::List) {
            Ok(entries) => {
                let now = listing::now();
                let mut lines = vec![format!("Status of {}:", sanitize(&vp.to_string()))];
                lines.extend(entries.iter().map(|e| listing::line(ListKind::List, e, self.facts, now)));
                lines.push("End of status".to_owned());
                self.reply_multi(213, lines)
            }
            Err(e) => self.storage_error(&arg, &e),
        }
    }
}
