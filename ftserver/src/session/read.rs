//! The commands that send to the client over a data connection: RETR (from any offset, in
//! TYPE I or A) and the listings LIST, NLST and MLSD, in stream or block mode.

use super::control::abor_pending;
use super::{capitalise, Session, ASCII_RESUME};
use crate::data;
use crate::listing::{self, ListKind};
use crate::storage::{Opened, StorageError};
use common::hostport::canonical_ip;
use common::listing::Entry;
use common::path::VirtualPath;
use common::text::sanitize;
use std::io;
use std::time::Instant;

impl Session<'_> {
    pub(super) fn retr(&mut self, arg: &str) -> io::Result<()> {
        let offset = std::mem::take(&mut self.rest);
        if self.denied(crate::auth::Perm::Download)? {
            return Ok(());
        }
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => {
                self.data = None;
                return self.reply(550, text);
            }
        };
        let opened = self.storage().open_read(&self.stored(&vp), offset);
        let Opened { mut reader, meta } = match opened {
            Ok(opened) => opened,
            Err(e @ StorageError::BeyondEnd { .. }) => {
                self.data = None;
                return self.reply(e.reply_code(), format!("{}.", capitalise(&e.to_string())));
            }
            Err(e) => {
                self.data = None;
                return self.storage_error(arg, &e);
            }
        };
        let size = meta.len;
        if offset > 0 && self.ascii {
            // A TYPE A client counts converted bytes (CRLF), the file has LF: its offset
            // would not be the file's (vsftpd refuses this too).
            self.data = None;
            return self.reply(550, ASCII_RESUME);
        }
        let name = vp.file_name().unwrap_or("/").to_owned();
        let announced = size - offset;
        // The count on the wire differs from the file's in TYPE A (LF becomes CRLF): none is
        // given. The kept connection's 125 carries the count as the 150 does, for clients that
        // read it there.
        let (opening, already) = if self.ascii {
            (
                format!("Opening ASCII mode data connection for {name}."),
                format!("Data connection already open; transfer starting for {name}."),
            )
        } else {
            (
                format!("Opening BINARY mode data connection for {name} ({announced} bytes)."),
                format!("Data connection already open; transfer starting for {name} ({announced} bytes)."),
            )
        };
        let Some(mut stream) = self.start_data(opening, already, true)? else { return Ok(()) };
        let started = Instant::now();
        let mut abor = false;
        let timeout = self.ctx.config.data_timeout;
        let (ascii, ctx) = (self.ascii, self.ctx);
        let keep_going = || {
            abor = abor_pending(&mut self.ctrl);
            !abor && !ctx.stopping()
        };
        let (n, sent) = if self.block {
            data::block::send_file(&mut *reader, announced, &mut stream, ascii, timeout, keep_going)
        } else {
            // Zero copy costs a loopback receiver more than it saves us (see `data::send_file`).
            let zero_copy = !stream.socket().peer_addr().is_ok_and(|a| canonical_ip(a.ip()).is_loopback());
            data::send_file(&mut *reader, announced, &mut stream, ascii, zero_copy, timeout, keep_going)
        };
        self.aborted = abor;
        self.end_data(stream, matches!(sent, Ok(())) && n == announced);
        match sent {
            Ok(()) if n == announced => {
                self.log_transfer("RETR", &vp, n, started, "ok");
                self.transfer_done("Transfer complete")
            }
            Ok(()) => {
                // The file shrank while it was being sent: the client must not take the short
                // copy for the whole file.
                self.log_transfer(
                    "RETR",
                    &vp,
                    n,
                    started,
                    &format!("short: the file shrank, {announced} bytes announced"),
                );
                self.reply(451, format!("File changed during the transfer: sent {n} of {announced} bytes."))
            }
            Err(_) if self.ctx.stopping() => {
                self.log_transfer("RETR", &vp, n, started, "stopped: the server is shutting down");
                self.reply(426, "Server shutting down; transfer aborted.")
            }
            Err(e) => {
                self.log_transfer("RETR", &vp, n, started, &format!("failed: {e}"));
                if data::is_peer_error(&e) {
                    self.reply(426, "Connection closed; transfer aborted.")
                } else {
                    self.reply(451, "Local error reading the file; transfer aborted.")
                }
            }
        }
    }

    /// Entries for a listing of `vp`: a directory's contents, or the file itself.
    pub(super) fn entries(&self, vp: &VirtualPath, kind: ListKind) -> Result<Vec<Entry>, StorageError> {
        let stored = self.stored(vp);
        let meta = self.storage().stat(&stored)?;
        let rights = self.rights();
        if meta.is_dir() {
            Ok(self
                .storage()
                .list(&stored)?
                .into_iter()
                .map(|(name, meta)| listing::entry(name, &meta, rights))
                .collect())
        } else if kind == ListKind::Mlsd {
            Err(StorageError::NotADirectory)
        } else {
            Ok(vec![listing::entry(vp.file_name().unwrap_or("/").to_owned(), &meta, rights)])
        }
    }

    pub(super) fn listing(&mut self, kind: ListKind, arg: Option<String>) -> io::Result<()> {
        self.rest = 0;
        if self.denied(crate::auth::Perm::List)? {
            return Ok(());
        }
        let arg = match kind {
            ListKind::List | ListKind::Nlst => strip_ls_options(arg.as_deref().unwrap_or("")),
            ListKind::Mlsd => arg.as_deref().unwrap_or(""),
        }
        .to_owned();
        let vp = match self.vpath(&arg) {
            Ok(vp) => vp,
            Err(text) => {
                self.data = None;
                return self.reply(550, text);
            }
        };
        let body = match self.entries(&vp, kind) {
            Ok(entries) => listing::body(kind, &entries, self.facts, listing::now()),
            Err(e) => {
                self.data = None;
                if kind == ListKind::Mlsd && matches!(e, StorageError::NotADirectory) {
                    // RFC 3659 section 7.2.1: MLSD of a non-directory is a 501.
                    return self.reply(501, format!("{}: not a directory.", sanitize(&arg)));
                }
                return self.storage_error(&arg, &e);
            }
        };
        let opening = "Here comes the directory listing.".to_owned();
        let already = "Data connection already open; transfer starting.".to_owned();
        let Some(mut stream) = self.start_data(opening, already, true)? else { return Ok(()) };
        let started = Instant::now();
        let sent = if self.block {
            let mut abor = false;
            let ctx = self.ctx;
            let (n, sent) = data::block::send_bytes(&body, &mut stream, ctx.config.data_timeout, || {
                abor = abor_pending(&mut self.ctrl);
                !abor && !ctx.stopping()
            });
            self.aborted = abor;
            sent.map(|()| n)
        } else {
            data::send_bytes(&body, &mut stream)
        };
        self.end_data(stream, sent.is_ok());
        let verb = match kind {
            ListKind::List => "LIST",
            ListKind::Nlst => "NLST",
            ListKind::Mlsd => "MLSD",
        };
        match sent {
            Ok(n) => {
                self.log_transfer(verb, &vp, n, started, "ok");
                self.transfer_done("Directory send OK")
            }
            Err(e) => {
                self.log_transfer(verb, &vp, 0, started, &format!("failed: {e}"));
                self.reply(426, "Connection closed; transfer aborted.")
            }
        }
    }
}

/// Drops `ls`-style options (`-la`, `-a -l`) that clients put before a LIST/NLST path; we
/// always list in one format.
pub(super) fn strip_ls_options(arg: &str) -> &str {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        rest = rest.find(' ').map_or("", |i| rest[i..].trim_start());
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ls_options() {
        for (arg, expected) in
            [("", ""), ("-la", ""), ("-a -l", ""), ("-la sub dir", "sub dir"), ("sub", "sub"), ("  -l x", "x")]
        {
            assert_eq!(strip_ls_options(arg), expected, "{arg:?}");
        }
    }
}
