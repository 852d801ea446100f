//! The commands that change the tree: STOR, APPE, STOU (uploads, which `crate::storage` keeps
//! invisible until their commit), MKD, and with the right to change files also DELE, RMD and
//! RNFR/RNTO.

use super::control::{abor_pending, control_state, unannounced_settle, ControlState};
use super::{capitalise, Session};
use crate::auth::Perm;
use crate::data::{self, ReceiveError};
use crate::hash;
use crate::storage::{Protocol, Start, StorageError, UploadSpec, Uploader};
use common::path::VirtualPath;
use common::text::sanitize;
use log::info;
use std::io;
use std::time::Instant;

const READ_ONLY: &str = "Permission denied: this server is read-only.";
const NO_CHANGES: &str = "Permission denied: this server never deletes, renames or replaces files.";

/// The name `STOU` starts from when the client gives none.
const STOU_BASE: &str = "upload";

/// The three upload commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreKind {
    /// Store (with `REST n`: resume at byte `n`).
    Stor,
    /// Append (how curl resumes an upload).
    Appe,
    /// Store under a unique name (RFC 959, reply form from RFC 1123 4.1.2.9).
    Stou,
}

impl StoreKind {
    fn verb(self) -> &'static str {
        match self {
            StoreKind::Stor => "STOR",
            StoreKind::Appe => "APPE",
            StoreKind::Stou => "STOU",
        }
    }
}

impl Session<'_> {
    /// Refuses a write command the principal may not use, forgetting any prepared data
    /// connection and restart offset.
    fn refuse(&mut self, text: &str) -> io::Result<()> {
        self.data = None;
        self.rest = 0;
        self.reply(550, text)
    }

    /// Refuses (550) a command that needs `perm` when the principal lacks it, and says so
    /// with `true`. Anonymous logins hear what the server's options allow; accounts hear
    /// what their account may not do.
    pub(super) fn denied(&mut self, perm: Perm) -> io::Result<bool> {
        let rights = self.rights();
        if rights.allows(perm) {
            return Ok(false);
        }
        let anonymous = self.principal.as_ref().map_or(true, |who| who.anonymous);
        let text = if !anonymous {
            let what = match perm {
                Perm::List => "list",
                Perm::Download => "download",
                Perm::Upload => "upload",
                Perm::Overwrite => "replace files",
                Perm::Delete => "delete",
                Perm::Rename => "rename",
                Perm::CreateDirs => "create directories",
            };
            format!("Permission denied: your account may not {what}.")
        } else if !rights.allows(Perm::Upload) {
            READ_ONLY.to_owned()
        } else {
            NO_CHANGES.to_owned()
        };
        self.refuse(&text).map(|()| true)
    }

    fn upload_error(&mut self, verb: &str, shown: &str, err: &StorageError) -> io::Result<()> {
        info!("{}: {verb} {} refused: {err}", self.peer, sanitize(shown));
        self.reply(err.reply_code(), format!("{}: {}.", sanitize(shown), capitalise(&err.to_string())))
    }

    /// ALLO: the size of the next upload (RFC 959 4.1.3; `ALLO n [R m]`, the record size is
    /// ignored). An upload that then ends with another size is not published: the data
    /// connection's end can be a killed client's as well as a finished file's.
    pub(super) fn allo(&mut self, arg: &str) -> io::Result<()> {
        match arg.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
            Some(size) => {
                self.announced = Some(size);
                self.reply(200, format!("ALLO noted: {size} bytes."))
            }
            None => self.reply(501, "ALLO takes a size in bytes."),
        }
    }

    /// STOR, APPE and STOU. The bytes go to an upload that the storage publishes under its
    /// name only when the file is known to be complete: in stream mode when the client ended
    /// the data connection cleanly and is still there, in block mode when its EOF block came.
    pub(super) fn store(&mut self, kind: StoreKind, arg: Option<&str>) -> io::Result<()> {
        let offset = std::mem::take(&mut self.rest);
        let announced = self.announced.take();
        // A kept block-mode connection may carry this file's blocks already (a client may send
        // them right behind the command): if the upload is refused before they are read, the
        // next upload would take them for its own. So a refusal closes the connection (it is
        // dropped on every early return), and only an upload that goes ahead uses it.
        let kept = self.kept.take();
        let ctx = self.ctx;
        let config = &ctx.config;
        if self.denied(Perm::Upload)? {
            return Ok(());
        }
        let rights = self.rights();
        if offset > 0 && self.ascii {
            self.data = None;
            return self.reply(550, super::ASCII_RESUME);
        }
        let shown = arg.unwrap_or(STOU_BASE);
        let vp = match self.file_vpath(shown) {
            Ok(vp) => vp,
            Err(text) => {
                self.data = None;
                return self.reply(550, text);
            }
        };
        let stored = self.stored(&vp);
        let uploader = Uploader {
            peer: self.peer,
            user: self.principal.as_ref().map(|who| who.name.clone()),
            protocol: Protocol::Ftp,
        };
        let start = match kind {
            StoreKind::Stor if offset > 0 => Start::Resume(offset),
            StoreKind::Stor | StoreKind::Stou => Start::Fresh,
            StoreKind::Appe => Start::Append,
        };
        let opened = match kind {
            StoreKind::Stou => ctx.storage.begin_unique(&stored, uploader),
            _ => ctx
                .storage
                .begin_upload(&stored, UploadSpec { start, overwrite: rights.allows(Perm::Overwrite), uploader }),
        };
        let mut upload = match opened {
            Ok(upload) => upload,
            Err(e) => {
                self.data = None;
                return self.upload_error(kind.verb(), shown, &e);
            }
        };
        let vp = vp.parent().join(upload.name()).unwrap_or(vp);
        // RFC 1123 4.1.2.9: STOU's preliminary reply is `125 FILE: name` or `150 FILE: name`.
        let (opening, already) = match kind {
            StoreKind::Stou => (format!("FILE: {}", upload.name()), format!("FILE: {}", upload.name())),
            _ => (
                format!("Ok to send data for {}.", upload.name()),
                format!("Data connection already open; transfer starting for {}.", upload.name()),
            ),
        };
        self.kept = kept;
        let Some(mut stream) = self.start_data(opening, already, false)? else {
            if upload.offset() == 0 {
                // Nothing was there to resume and nothing arrived: leave no trace.
                upload.discard();
            }
            return Ok(());
        };
        let block = self.block;
        let started = Instant::now();
        let room = config.max_upload_size.map(|max| max.saturating_sub(upload.offset()));
        let mut abor = false;
        // A client that chose a HASH algorithm will ask for the digest next: compute it from the
        // bytes on their way to the disk (only a whole file, not a resumed one).
        let mut hasher = (self.hash_chosen && upload.offset() == 0).then(|| hash::Hasher::new(self.hash_algorithm));
        let receiving = data::Receiving { ascii: self.ascii, room, timeout: config.data_timeout };
        let keep_going = || {
            abor = abor_pending(&mut self.ctrl);
            !abor && !ctx.stopping()
        };
        let tap = |bytes: &[u8]| {
            if let Some(h) = hasher.as_mut() {
                h.update(bytes);
            }
        };
        let (n, received) = if block {
            data::block::receive_file(&mut stream, &mut *upload, receiving, keep_going, tap)
        } else {
            data::receive_file(&mut stream, &mut *upload, receiving, keep_going, tap)
        };
        // Stream mode closes the connection now; block mode keeps it for a published upload.
        let mut stream = if block {
            Some(stream)
        } else {
            stream.finish();
            None
        };
        // End-of-file is the end of the file in stream mode (RFC 959 3.4.1), but only from a
        // client that is still connected: a killed client's data connection ends the same way.
        // A size the client announced (ALLO) settles it, the transfer's or the whole file's
        // (lftp announces the whole file when it resumes); without one, the control connection
        // is watched long enough for a lost FIN to come again. In block mode the EOF block
        // settles it at once: a killed client cannot send one, so there is nothing to wait for.
        let short = announced.filter(|&a| !self.ascii && a != n && a != upload.offset() + n);
        let received = received.and_then(|()| match short {
            Some(announced) => Err(ReceiveError::Short { announced }),
            None if block => {
                // An ABOR right behind the EOF block still means the client wants no file.
                if abor_pending(&mut self.ctrl) {
                    abor = true;
                    Err(ReceiveError::Aborted)
                } else {
                    Ok(())
                }
            }
            None => {
                let settle = match announced {
                    Some(_) => config.upload_settle,
                    None => unannounced_settle(&self.ctrl, config.unannounced_settle),
                };
                match control_state(&mut self.ctrl, settle) {
                    ControlState::Present => Ok(()),
                    ControlState::Aborting => {
                        abor = true;
                        Err(ReceiveError::Aborted)
                    }
                    ControlState::Gone => Err(ReceiveError::Peer(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the client closed the control connection",
                    ))),
                }
            }
        });
        self.aborted = abor;
        if received.is_err() {
            // Closed before the reply: where its blocks stand is unknown.
            drop(stream.take());
        }
        let verb = kind.verb();
        match received {
            Ok(()) => {
                let name = upload.name().to_owned();
                match upload.commit() {
                    Ok(identity) => {
                        if let (Some(id), Some(hasher)) = (identity, hasher) {
                            ctx.digests.remember(id, self.hash_algorithm, &hasher.finish());
                        }
                        self.log_transfer(verb, &vp, n, started, "ok");
                        if let Some(conn) = stream.take() {
                            self.end_data(conn, true);
                        }
                        match kind {
                            StoreKind::Stou => self.transfer_done(&format!("Transfer complete, stored as {name}")),
                            _ => self.transfer_done("Transfer complete"),
                        }
                    }
                    Err(e) => {
                        // Block mode: only a 250 keeps the connection, so a client has one rule.
                        drop(stream.take());
                        self.log_transfer(verb, &vp, n, started, &format!("not stored: {e}"));
                        self.upload_error(verb, shown, &e)
                    }
                }
            }
            Err(ReceiveError::TooLarge) => {
                upload.discard();
                self.log_transfer(verb, &vp, n, started, "refused: over the upload size limit, removed");
                let max = config.max_upload_size.unwrap_or(0);
                self.reply(552, format!("Exceeded the upload size limit of {max} bytes; upload removed."))
            }
            Err(ReceiveError::Disk(e)) if crate::storage::error::is_disk_full(&e) => {
                upload.discard();
                self.log_transfer(verb, &vp, n, started, &format!("failed: {e}, removed"));
                self.reply(452, "Insufficient storage space; upload removed.")
            }
            Err(ReceiveError::Disk(e)) => {
                self.log_transfer(verb, &vp, n, started, &format!("failed: {e}, partial file kept"));
                self.reply(451, "Local error writing the file; transfer aborted.")
            }
            Err(ReceiveError::Short { announced }) => {
                self.log_transfer(
                    verb,
                    &vp,
                    n,
                    started,
                    &format!("short: {announced} bytes announced, partial file kept"),
                );
                self.reply(
                    451,
                    format!(
                        "Received {n} bytes of the {announced} announced with ALLO; the partial upload can be resumed."
                    ),
                )
            }
            Err(ReceiveError::Aborted) if ctx.stopping() => {
                self.log_transfer(verb, &vp, n, started, "stopped: the server is shutting down, partial file kept");
                self.reply(426, "Server shutting down; transfer aborted, the partial upload can be resumed.")
            }
            Err(e @ (ReceiveError::Peer(_) | ReceiveError::Aborted)) => {
                self.log_transfer(verb, &vp, n, started, &format!("interrupted: {e}, partial file kept for resuming"));
                self.reply(426, "Connection closed; transfer aborted, the partial upload can be resumed.")
            }
        }
    }

    /// MKD: creates one directory (never replaces anything, so the right to upload suffices).
    pub(super) fn mkd(&mut self, arg: &str) -> io::Result<()> {
        if self.denied(Perm::CreateDirs)? {
            return Ok(());
        }
        let vp = match self.vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.storage().mkdir(&self.stored(&vp)) {
            Ok(()) => {
                info!("{}: MKD {}", self.peer, sanitize(&vp.to_string()));
                self.reply(257, format!("{} created.", vp.quoted()))
            }
            Err(StorageError::AlreadyExists) => self.reply(550, format!("{}: already exists.", sanitize(arg))),
            Err(e) => self.storage_error(arg, &e),
        }
    }

    /// The path DELE, RMD, RNFR or RNTO acts on, when the principal has `perm`; else the
    /// refusal is sent and `None` returned. `dir`: the name may end in `/` without naming an
    /// existing directory (RNTO of a directory).
    fn change_path(&mut self, arg: &str, dir: bool, perm: Perm) -> io::Result<Option<VirtualPath>> {
        if self.denied(perm)? {
            return Ok(None);
        }
        match if dir { self.vpath(arg) } else { self.file_vpath(arg) } {
            Ok(vp) => Ok(Some(vp)),
            Err(text) => self.reply(550, text).map(|()| None),
        }
    }

    /// DELE: removes a file (a symlink itself, never its target).
    pub(super) fn dele(&mut self, arg: &str) -> io::Result<()> {
        let Some(vp) = self.change_path(arg, false, Perm::Delete)? else { return Ok(()) };
        match self.storage().remove_file(&self.stored(&vp)) {
            Ok(()) => {
                info!("{}: DELE {}", self.peer, sanitize(&vp.to_string()));
                self.reply(250, "File deleted.")
            }
            Err(e) => self.storage_error(arg, &e),
        }
    }

    /// RMD: removes an empty directory.
    pub(super) fn rmd(&mut self, arg: &str) -> io::Result<()> {
        let Some(vp) = self.change_path(arg, false, Perm::Delete)? else { return Ok(()) };
        match self.storage().remove_dir(&self.stored(&vp)) {
            Ok(()) => {
                info!("{}: RMD {}", self.peer, sanitize(&vp.to_string()));
                self.reply(250, "Directory removed.")
            }
            Err(StorageError::DirectoryNotEmpty) => self.reply(550, format!("{}: directory not empty.", sanitize(arg))),
            Err(e) => self.storage_error(arg, &e),
        }
    }

    /// RNFR: remembers what the next command (RNTO) renames.
    pub(super) fn rnfr(&mut self, arg: &str) -> io::Result<()> {
        let Some(vp) = self.change_path(arg, false, Perm::Rename)? else { return Ok(()) };
        if let Err(e) = self.storage().check_rename_source(&self.stored(&vp)) {
            return self.storage_error(arg, &e);
        }
        self.rename_from = Some(vp);
        self.reply(350, "Ready for RNTO.")
    }

    /// RNTO: renames what RNFR named; an existing destination is replaced (the right to change
    /// files allows it).
    pub(super) fn rnto(&mut self, from: Option<VirtualPath>, arg: &str) -> io::Result<()> {
        // A directory may be renamed to `new/`, as rename(2) allows.
        let from_dir = from.as_ref().is_some_and(|vp| self.storage().stat(&self.stored(vp)).is_ok_and(|m| m.is_dir()));
        let Some(vp) = self.change_path(arg, from_dir, Perm::Rename)? else { return Ok(()) };
        let Some(from_vp) = from else { return self.reply(503, "RNFR required first.") };
        match self.storage().rename(&self.stored(&from_vp), &self.stored(&vp)) {
            Ok(()) => {
                info!("{}: RNTO {} -> {}", self.peer, sanitize(&from_vp.to_string()), sanitize(&vp.to_string()));
                self.reply(250, "Rename successful.")
            }
            Err(e) => self.storage_error(arg, &e),
        }
    }
}
