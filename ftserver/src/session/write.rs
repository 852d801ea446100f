//! The commands that change the tree: STOR, APPE, STOU (uploads, see `crate::upload` for how
//! they reach the disk), MKD, and with `--overwrite` also DELE, RMD and RNFR/RNTO.

use super::{abor_pending, capitalise, Session};
use crate::data::{self, ReceiveError};
use crate::fs::{FsError, Target};
use crate::hash;
use crate::upload::{self, Start, Upload, UploadError};
use common::path::VirtualPath;
use common::text::sanitize;
use log::info;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

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

/// What the control connection says once an upload's data connection reached end-of-file.
enum ControlState {
    /// Still connected and quiet (waiting for our reply) or sending other commands.
    Present,
    /// Closed or reset: the client vanished (a killed client closes both connections, and the
    /// data connection's end-of-file then proves nothing about the file being complete).
    Gone,
    /// An ABOR is waiting.
    Aborting,
}

/// Watches the control connection for up to `settle` for the client shutting down its side
/// (POLLRDHUP), then looks at what it sent (a peek: nothing is consumed).
///
/// Why wait at all: when a client process is killed, the kernel closes its sockets one after
/// the other (the data connection, opened last, first), and the dying process can be preempted
/// in between: the control connection's FIN was measured arriving up to 4 ms (one scheduler
/// tick) after the data connection's on a loaded 2-CPU machine. A live client, in contrast,
/// does not close its control connection until it has our reply. So a live client costs
/// `settle` per upload, and a killed one is recognised unless its machine stalls it for longer
/// than `settle`.
///
/// Commands the client sent during the upload (a NOOP to keep a NAT alive) prove nothing: a
/// client killed after sending them closes the connection behind them. Only a lone complete
/// `QUIT` before the close says the client meant to end after this transfer.
fn control_state(control: &TcpStream, settle: Duration) -> ControlState {
    if abor_pending(control) {
        return ControlState::Aborting;
    }
    if !peer_hung_up(control, settle) {
        return ControlState::Present;
    }
    let mut pending = [0u8; 64];
    let peeked = control.set_nonblocking(true).and_then(|()| {
        let peeked = control.peek(&mut pending);
        control.set_nonblocking(false).and(peeked)
    });
    match peeked {
        Ok(n) if only_quit(&pending[..n]) => ControlState::Present,
        Ok(_) if abor_pending(control) => ControlState::Aborting,
        _ => ControlState::Gone,
    }
}

/// Waits up to `wait` for the peer to shut down its side of `control` (or for the connection
/// to fail). Bytes waiting to be read do not end the wait.
fn peer_hung_up(control: &TcpStream, wait: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    // nix names no POLLRDHUP ("the peer shut down writing", Linux), so it is built from libc's
    // value, and `revents` is `None` exactly when the kernel reports it (a flag nix does not
    // know); POLLHUP and POLLERR are reported without being asked for.
    let rdhup = PollFlags::from_bits_retain(nix::libc::POLLRDHUP);
    let deadline = crate::config::deadline_after(wait);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [PollFd::new(control.as_fd(), rdhup)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => return false,
            Ok(_) => return fds[0].revents().map_or(true, |r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            Err(nix::errno::Errno::EINTR) if !left.is_zero() => {}
            // A socket poll(2) cannot watch: say nothing about the client.
            Err(_) => return false,
        }
    }
}

/// Are `pending` bytes exactly one complete `QUIT` command line?
fn only_quit(pending: &[u8]) -> bool {
    match common::line::find_line(pending, pending.len()) {
        common::line::Line::Complete { line, consumed } => {
            consumed == pending.len() && common::command::parse(line) == Ok(common::Command::Quit)
        }
        _ => false,
    }
}

impl Session<'_> {
    /// The access level, for logs and STAT.
    pub(super) fn access(&self) -> &'static str {
        match (self.shared.config.writable, self.shared.config.overwrite) {
            (false, _) => "read-only access",
            (true, false) => "uploads allowed, nothing replaced or deleted",
            (true, true) => "uploads, replacing, deleting and renaming allowed",
        }
    }

    /// What the MLSx `perm` fact announces.
    pub(super) fn listing_access(&self) -> crate::listing::Access {
        crate::listing::Access { writable: self.shared.config.writable, overwrite: self.shared.config.overwrite }
    }

    /// The size of an interrupted upload named `vp`, if there is one.
    pub(super) fn partial_size(&self, vp: &VirtualPath) -> Option<u64> {
        self.shared.root.target(vp).ok().and_then(|t| upload::partial_size(&t))
    }

    /// Refuses a write command on a read-only server (or a change without `--overwrite`),
    /// forgetting any prepared data connection and restart offset.
    fn refuse(&mut self, text: &str) -> io::Result<()> {
        self.data = None;
        self.rest = 0;
        self.reply(550, text)
    }

    /// Resolves the entry a write command names, replying (and returning `None`) on errors.
    /// Only MKD, which creates a directory, takes a name ending in `/` that is not (yet) one.
    fn write_target(&mut self, arg: &str, new_dir: bool) -> io::Result<Option<(VirtualPath, Target)>> {
        let vp = match if new_dir { self.vpath(arg) } else { self.file_vpath(arg) } {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text).map(|()| None),
        };
        match self.shared.root.target(&vp) {
            Ok(target) => Ok(Some((vp, target))),
            Err(e) => self.fs_error(arg, &e).map(|()| None),
        }
    }

    fn upload_error(&mut self, verb: &str, shown: &str, err: &UploadError) -> io::Result<()> {
        info!("{}: {verb} {} refused: {err}", self.peer, sanitize(shown));
        self.reply(err.reply_code(), format!("{}: {}.", sanitize(shown), capitalise(&err.to_string())))
    }

    /// STOR, APPE and STOU. The bytes go to a partial file that becomes the named file only
    /// when the client ended the data connection cleanly and is still there (`crate::upload`).
    pub(super) fn store(&mut self, kind: StoreKind, arg: Option<&str>) -> io::Result<()> {
        let offset = std::mem::take(&mut self.rest);
        let shared = self.shared;
        let config = &shared.config;
        if !config.writable {
            return self.refuse(READ_ONLY);
        }
        if offset > 0 && self.ascii {
            self.data = None;
            return self.reply(550, super::ASCII_RESUME);
        }
        let shown = arg.unwrap_or(STOU_BASE);
        let Some((vp, target)) = self.write_target(shown, false)? else {
            self.data = None;
            return Ok(());
        };
        let opened = match kind {
            StoreKind::Stou => Upload::open_unique(&shared.uploads, target),
            StoreKind::Stor if offset > 0 => {
                Upload::open(&shared.uploads, target, Start::Resume(offset), config.overwrite)
            }
            StoreKind::Stor => Upload::open(&shared.uploads, target, Start::Fresh, config.overwrite),
            StoreKind::Appe => Upload::open(&shared.uploads, target, Start::Append, config.overwrite),
        };
        let mut upload = match opened {
            Ok(upload) => upload,
            Err(e) => {
                self.data = None;
                return self.upload_error(kind.verb(), shown, &e);
            }
        };
        let vp = vp.parent().join(upload.name()).unwrap_or(vp);
        let Some(mut stream) = self.open_data()? else {
            if upload.offset() == 0 {
                // Nothing was there to resume and nothing arrived: leave no trace.
                upload.discard();
            }
            return Ok(());
        };
        let opening = match kind {
            StoreKind::Stou => format!("FILE: {}", upload.name()),
            _ => format!("Ok to send data for {}.", upload.name()),
        };
        self.reply(150, opening)?;
        let started = Instant::now();
        let room = config.max_upload_size.map(|max| max.saturating_sub(upload.offset()));
        let control = &self.ctrl.get_ref().stream;
        let mut abor = false;
        // A client that chose a HASH algorithm will ask for the digest next: compute it from the
        // bytes on their way to the disk (only a whole file, not a resumed one).
        let mut hasher = (self.hash_chosen && upload.offset() == 0).then(|| hash::Hasher::new(self.hash_algorithm));
        let mut stored = 0u64;
        let (n, received) = data::receive_file(
            &mut stream,
            upload.file(),
            data::Receiving { ascii: self.ascii, room, timeout: config.data_timeout },
            || {
                abor = abor_pending(control);
                !abor && !shared.stop.load(Ordering::SeqCst)
            },
            |bytes| {
                stored += bytes.len() as u64;
                if let Some(h) = hasher.as_mut() {
                    h.update(bytes);
                }
            },
        );
        data::finish(stream);
        // End-of-file is the end of the file in stream mode (RFC 959 3.4.1), but only from a
        // client that is still connected: a killed client's data connection ends the same way.
        let received = received.and_then(|()| match control_state(control, config.upload_settle) {
            ControlState::Present => Ok(()),
            ControlState::Aborting => {
                abor = true;
                Err(ReceiveError::Aborted)
            }
            ControlState::Gone => Err(ReceiveError::Peer(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client closed the control connection",
            ))),
        });
        self.aborted = abor;
        let verb = kind.verb();
        match received {
            Ok(()) => {
                let name = upload.name().to_owned();
                // A second descriptor of the same inode, to read its identity under the final name.
                let file = upload.file().try_clone().ok();
                match upload.commit(config.overwrite) {
                    Ok(()) => {
                        if let (Some(file), Some(hasher)) = (file, hasher) {
                            hash::remember_file(&file, self.hash_algorithm, &hasher.finish(), stored);
                        }
                        self.log_transfer(verb, &vp, n, started, "ok");
                        match kind {
                            StoreKind::Stou => self.reply(226, format!("Transfer complete, stored as {name}.")),
                            _ => self.reply(226, "Transfer complete."),
                        }
                    }
                    Err(e) => {
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
            Err(ReceiveError::Disk(e)) if upload::is_disk_full(&e) => {
                upload.discard();
                self.log_transfer(verb, &vp, n, started, &format!("failed: {e}, removed"));
                self.reply(452, "Insufficient storage space; upload removed.")
            }
            Err(ReceiveError::Disk(e)) => {
                self.log_transfer(verb, &vp, n, started, &format!("failed: {e}, partial file kept"));
                self.reply(451, "Local error writing the file; transfer aborted.")
            }
            Err(e @ (ReceiveError::Peer(_) | ReceiveError::Aborted)) => {
                self.log_transfer(verb, &vp, n, started, &format!("interrupted: {e}, partial file kept for resuming"));
                self.reply(426, "Connection closed; transfer aborted, the partial upload can be resumed.")
            }
        }
    }

    /// MKD: creates one directory (never replaces anything, so `--writable` suffices).
    pub(super) fn mkd(&mut self, arg: &str) -> io::Result<()> {
        if !self.shared.config.writable {
            return self.refuse(READ_ONLY);
        }
        let Some((vp, target)) = self.write_target(arg, true)? else { return Ok(()) };
        match std::fs::create_dir(target.path()) {
            Ok(()) => {
                info!("{}: MKD {}", self.peer, sanitize(&vp.to_string()));
                self.reply(257, format!("{} created.", vp.quoted()))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.reply(550, format!("{}: already exists.", sanitize(arg)))
            }
            Err(e) => self.fs_error(arg, &FsError::from_io(e)),
        }
    }

    /// Resolves the target of DELE, RMD, RNFR or RNTO, which need `--overwrite`. `dir`: the
    /// name may end in `/` without naming an existing directory (RNTO of a directory).
    fn change_target(&mut self, arg: &str, dir: bool) -> io::Result<Option<(VirtualPath, Target)>> {
        let config = &self.shared.config;
        if !config.writable {
            return self.refuse(READ_ONLY).map(|()| None);
        }
        if !config.overwrite {
            return self.refuse(NO_CHANGES).map(|()| None);
        }
        self.write_target(arg, dir)
    }

    /// DELE: removes a file (a symlink itself, never its target).
    pub(super) fn dele(&mut self, arg: &str) -> io::Result<()> {
        let Some((vp, target)) = self.change_target(arg, false)? else { return Ok(()) };
        match std::fs::symlink_metadata(target.path()) {
            Ok(meta) if meta.is_dir() => return self.fs_error(arg, &FsError::NotAFile),
            Ok(_) => {}
            Err(e) => return self.fs_error(arg, &FsError::from_io(e)),
        }
        match std::fs::remove_file(target.path()) {
            Ok(()) => {
                info!("{}: DELE {}", self.peer, sanitize(&vp.to_string()));
                self.reply(250, "File deleted.")
            }
            Err(e) => self.fs_error(arg, &FsError::from_io(e)),
        }
    }

    /// RMD: removes an empty directory.
    pub(super) fn rmd(&mut self, arg: &str) -> io::Result<()> {
        let Some((vp, target)) = self.change_target(arg, false)? else { return Ok(()) };
        match std::fs::remove_dir(target.path()) {
            Ok(()) => {
                info!("{}: RMD {}", self.peer, sanitize(&vp.to_string()));
                self.reply(250, "Directory removed.")
            }
            Err(e) => match e.kind() {
                io::ErrorKind::DirectoryNotEmpty => self.reply(550, format!("{}: directory not empty.", sanitize(arg))),
                _ => self.fs_error(arg, &FsError::from_io(e)),
            },
        }
    }

    /// RNFR: remembers what the next command (RNTO) renames.
    pub(super) fn rnfr(&mut self, arg: &str) -> io::Result<()> {
        let Some((vp, target)) = self.change_target(arg, false)? else { return Ok(()) };
        if !target.exists() {
            return self.fs_error(arg, &FsError::NotFound);
        }
        self.rename_from = Some(vp);
        self.reply(350, "Ready for RNTO.")
    }

    /// RNTO: renames what RNFR named; an existing destination is replaced (`--overwrite`).
    pub(super) fn rnto(&mut self, from: Option<VirtualPath>, arg: &str) -> io::Result<()> {
        // A directory may be renamed to `new/`, as rename(2) allows.
        let from_dir = from.as_ref().is_some_and(|vp| self.shared.root.metadata(vp).is_ok_and(|m| m.is_dir()));
        let Some((vp, to)) = self.change_target(arg, from_dir)? else { return Ok(()) };
        let Some(from_vp) = from else { return self.reply(503, "RNFR required first.") };
        let from = match self.shared.root.target(&from_vp) {
            Ok(from) => from,
            Err(e) => return self.fs_error(&from_vp.to_string(), &e),
        };
        match std::fs::rename(from.path(), to.path()) {
            Ok(()) => {
                info!("{}: RNTO {} -> {}", self.peer, sanitize(&from_vp.to_string()), sanitize(&vp.to_string()));
                self.reply(250, "Rename successful.")
            }
            Err(e) => self.fs_error(arg, &FsError::from_io(e)),
        }
    }
}
