//! `-p`: upload one file. A remote file is never replaced unless `--overwrite` (checked with
//! MLST or SIZE before STOR; the server decides too), an interrupted upload is continued with
//! `--resume` (REST n + STOR, or APPE), and a finished upload is checked by its size and, when
//! the server offers HASH, by SHA-256.

use crate::conn::Conn;
use crate::digest;
use crate::progress::{summary, Progress};
use crate::session::{ServerError, Session};
use crate::transfer::{self, Mode};
use crate::verify;
use anyhow::{anyhow, bail, Context, Result};
use common::listing::{parse_mlsx, EntryKind};
use common::text::sanitize;
use common::Command;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What `-p` should do.
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// The local file.
    pub local: PathBuf,
    /// The remote path (relative to the login directory, or absolute).
    pub remote: String,
    /// Replace an existing remote file (the server must allow it as well).
    pub overwrite: bool,
    /// Continue after the bytes the remote file already holds.
    pub resume: bool,
    /// Check the upload with the server's HASH when it has one.
    pub verify: bool,
    /// Which digest to ask the server for.
    pub hash: crate::cli::HashChoice,
    /// Where the progress bar goes.
    pub progress: Progress,
    /// The remote directory was created by this run (tree uploads): nothing can be at the
    /// remote name yet, so it is not looked up before the upload.
    pub in_new_dir: bool,
}

/// What a finished upload did.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Bytes moved in this run.
    pub moved: u64,
    /// The file's size (including bytes that were already on the server).
    pub total: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl Sent {
    /// The line printed after a single upload.
    pub fn describe(&self, opts: &PutOptions) -> String {
        format!(
            "uploaded {} as {}: {}",
            shown(&opts.local),
            sanitize(&opts.remote),
            summary(self.moved, self.total, self.elapsed)
        )
    }
}

/// `a` + `/` + `b` for remote paths (`b` alone when `a` is empty).
pub fn remote_join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// What is at a remote path, as far as the server tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// Nothing (550 to MLST or SIZE).
    Missing,
    /// A file of this size (when known).
    File(Option<u64>),
    /// A directory.
    Dir,
    /// The server cannot say (neither MLST nor SIZE work).
    Unknown,
}

/// Asks what is at `path`: MLST when FEAT listed it (it tells files from directories), else
/// SIZE. The session must be in binary mode for SIZE to be exact.
pub fn probe(session: &mut Session, path: &str) -> Result<Remote> {
    let cmd = probe_command(session, path);
    let reply = session.command(&cmd)?;
    probe_answer(session, path, &cmd, reply)
}

/// The command [`probe`] asks with.
fn probe_command(session: &Session, path: &str) -> Command {
    if session.features.mlst {
        Command::Mlst(Some(path.to_owned()))
    } else {
        Command::Size(path.to_owned())
    }
}

/// What the reply to `cmd` (from [`probe_command`]) says is at `path`; an MLST that did not
/// work is followed by SIZE.
fn probe_answer(session: &mut Session, path: &str, cmd: &Command, reply: common::Reply) -> Result<Remote> {
    let reply = if let Command::Mlst(_) = cmd {
        if reply.is_success() {
            // RFC 3659 section 7.2: the facts line starts with one space.
            let entry = reply.lines.iter().filter_map(|l| l.strip_prefix(' ')).find_map(|l| parse_mlsx(l).ok());
            return Ok(match entry {
                Some(e) if e.is_dir() => Remote::Dir,
                Some(e) if e.kind == EntryKind::File => Remote::File(Some(e.size)),
                _ => Remote::File(None),
            });
        }
        if reply.code == 550 {
            return Ok(Remote::Missing);
        }
        log::info!("MLST did not work ({}), trying SIZE", ServerError(reply));
        session.command(&Command::Size(path.to_owned()))?
    } else {
        reply
    };
    Ok(match reply.code {
        213 => Remote::File(reply.text().trim().parse().ok()),
        550 => Remote::Missing,
        _ => {
            log::info!("cannot tell whether {} exists: {}", sanitize(path), ServerError(reply));
            Remote::Unknown
        }
    })
}

/// The local file changed while it was being sent: it ended before the size it had when the
/// upload started, or its size or modification time changed. The data connection was reset,
/// so a server that keeps uploads aside until they are complete (ftserver) stored nothing
/// under the final name; `left` says what the server shows there now.
#[derive(Debug, thiserror::Error)]
#[error("{local} changed during the upload ({detail}); {left}")]
pub struct LocalChanged {
    /// The local file, as shown.
    pub local: String,
    /// What changed.
    pub detail: String,
    /// What the server holds under the remote name afterwards.
    pub left: String,
}

/// Is `path` a source that can be read only once, in order (`-` for stdin, a FIFO, a pipe, a
/// character device or a socket)? Its size is not known in advance and it cannot be resumed.
pub fn is_stream(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    if path.as_os_str() == "-" {
        return true;
    }
    std::fs::metadata(path).is_ok_and(|m| {
        let kind = m.file_type();
        kind.is_fifo() || kind.is_char_device() || kind.is_socket()
    })
}

/// How the local file is shown in messages (`-` is standard input).
fn shown(local: &Path) -> String {
    if local.as_os_str() == "-" {
        "standard input".to_owned()
    } else {
        local.display().to_string()
    }
}

/// Uploads `opts.local` to `opts.remote`.
pub fn run(session: &mut Session, mode: Mode, opts: &PutOptions) -> Result<Sent> {
    if is_stream(&opts.local) {
        return run_stream(session, mode, opts);
    }
    let mut file = File::open(&opts.local).with_context(|| format!("cannot open {}", opts.local.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot read {}", opts.local.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory; use -r to upload a directory tree", opts.local.display());
    }
    let len = meta.len();
    session.binary()?;
    let remote = sanitize(&opts.remote);
    let (offset, found) = start_offset(session, opts, len)?;
    let started = Instant::now();
    let method = verify::plan(session, opts.verify, opts.hash)?;
    file.seek(SeekFrom::Start(offset)).with_context(|| format!("cannot read {}", opts.local.display()))?;
    let complete = opts.resume && matches!(found, Remote::File(_)) && offset == len;
    // A second handle on the same open file: its size and modification time after the last
    // byte tell whether the file changed while it was read.
    let probe = file.try_clone().with_context(|| format!("cannot read {}", opts.local.display()))?;
    let modified = meta.modified().ok();
    let unchanged = || {
        let now = probe.metadata().ok()?;
        (now.len() == len && now.modified().ok() == modified).then_some(())
    };
    let size = Size { offset, len: Some(len), unchanged: &unchanged, fresh: matches!(found, Remote::Missing) };
    // A small file's checks (its size, the server's digest) ride behind its data in block mode.
    let after = if session.block_mode() && !complete && len <= verify::AHEAD_MAX {
        let mut after = vec![probe_command(session, &opts.remote)];
        after.extend(method.map(|m| verify::hash_command(m, &opts.remote)));
        after
    } else {
        Vec::new()
    };
    let (sent, digest) = match method {
        // CRC32 runs at memory speed: the bytes are hashed on their way to the socket (after
        // the part the server already holds, read here), not read a second time.
        Some(m) if m.cheap() && !complete => {
            let algos = [m.algo()];
            let hashers = if offset == 0 {
                digest::Hashers::new(&algos)
            } else {
                let mut prefix =
                    File::open(&opts.local).with_context(|| format!("cannot read {}", opts.local.display()))?;
                digest::hash_prefix(&mut prefix, offset, &algos, &opts.local)?
            };
            let mut reader = digest::HashingReader::continuing(&mut file, hashers);
            let sent = store(session, mode, opts, &mut reader, &size, &after)?;
            (sent, Some(reader.finish()))
        }
        // The other digests are computed on a second thread (reading the file on its own)
        // while the upload runs, so they cost no time of their own; a failed upload stops it.
        _ => {
            let stop = AtomicBool::new(false);
            let (sent, digest) = std::thread::scope(|scope| {
                let stop = &stop;
                let hasher =
                    method.map(|m| scope.spawn(move || digest::hash_file_until(&opts.local, &[m.algo()], stop)));
                let sent = if complete {
                    log::info!("the server already holds all {len} bytes of {remote}");
                    Ok(0)
                } else {
                    store(session, mode, opts, &mut file, &size, &after)
                };
                if sent.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                let digest = hasher.map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("the hashing thread panicked"))));
                (sent, digest)
            });
            (sent?, digest.transpose()?)
        }
    };
    let asked = !after.is_empty();
    if let Err(e) = check(session, opts, len, method.zip(digest), Some(&opts.local), asked) {
        if offset > 0 && e.downcast_ref::<digest::Mismatch>().is_some() {
            // The part that was on the server did not come from this file.
            bail!(
                "the server's {remote} now differs from {}: the {offset} bytes already on the server before \
                 --resume were not the start of this file ({e}); upload it again with --overwrite",
                opts.local.display()
            );
        }
        return Err(e.context(format!("upload of {} to {remote} failed verification", opts.local.display())));
    }
    Ok(Sent { moved: sent, total: len, elapsed: started.elapsed() })
}

/// Where the upload starts: after the bytes the server holds with `--resume`, else 0 (after
/// refusing to replace an existing file without `--overwrite`). Also returns what was found.
fn start_offset(session: &mut Session, opts: &PutOptions, len: u64) -> Result<(u64, Remote)> {
    let remote = sanitize(&opts.remote);
    if opts.in_new_dir && !opts.resume {
        return Ok((0, Remote::Missing));
    }
    let mut found = probe(session, &opts.remote)?;
    if opts.resume && found == Remote::Missing && session.features.mlst {
        // Servers that keep an interrupted upload hidden (ftserver's .NAME.ftpart) report its
        // size to SIZE though MLST does not show it: that is where to resume.
        let reply = session.command(&Command::Size(opts.remote.clone()))?;
        if reply.code == 213 {
            found = Remote::File(reply.text().trim().parse().ok());
        }
    }
    let offset = match found {
        Remote::Dir => bail!("the remote path {remote} is a directory; choose a file name with --to"),
        Remote::File(size) if opts.resume => match size {
            Some(size) if size > len => bail!(
                "the remote file {remote} holds {size} bytes but {} has only {len}; it is not a partial upload of this file",
                opts.local.display()
            ),
            Some(size) => size,
            None => bail!("cannot resume: the server does not tell the size of {remote}"),
        },
        Remote::File(_) if !opts.overwrite => bail!(
            "the remote file {remote} already exists; use --overwrite to replace it or --resume to continue an interrupted upload"
        ),
        Remote::Unknown if !opts.overwrite => bail!(
            "cannot check whether the remote file {remote} exists (the server answers neither MLST nor SIZE); use --overwrite to upload anyway"
        ),
        Remote::Missing if opts.resume => {
            log::warn!("nothing to resume ({remote} does not exist on the server), starting from the beginning");
            0
        }
        _ => 0,
    };
    Ok((offset, found))
}

/// `-p -`, a FIFO, a pipe or a device: read once, in order, hashed on the way (there is no
/// second read); the size is whatever arrives before the end, so there is nothing to resume.
fn run_stream(session: &mut Session, mode: Mode, opts: &PutOptions) -> Result<Sent> {
    let local = shown(&opts.local);
    if opts.resume {
        bail!("cannot resume an upload from {local}: it can be read only once");
    }
    session.binary()?;
    let (_, found) = start_offset(session, opts, 0)?;
    let started = Instant::now();
    let method = verify::plan(session, opts.verify, opts.hash)?;
    let input: Box<dyn Read> = if opts.local.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(File::open(&opts.local).with_context(|| format!("cannot open {local}"))?)
    };
    let algos: Vec<_> = method.iter().map(|m| m.algo()).collect();
    let mut reader = digest::HashingReader::new(input, &algos);
    let size = Size { offset: 0, len: None, unchanged: &|| Some(()), fresh: matches!(found, Remote::Missing) };
    let sent = store(session, mode, opts, &mut reader, &size, &[])?;
    let digests = reader.finish();
    check(session, opts, sent, method.map(|m| (m, digests)), None, false)
        .with_context(|| format!("upload of {local} to {} failed verification", sanitize(&opts.remote)))?;
    Ok(Sent { moved: sent, total: sent, elapsed: started.elapsed() })
}

/// What an upload's source should deliver: from `offset`, up to `len` in all (when known), and
/// a check that the source did not change while it was read (`None` when it did). `fresh`: the
/// remote name did not exist before the upload.
struct Size<'a> {
    offset: u64,
    len: Option<u64>,
    unchanged: &'a dyn Fn() -> Option<()>,
    fresh: bool,
}

/// After an upload was cut off with a reset (`sent` bytes in all): what the server now holds
/// under `remote`, said for the error line. Servers that store uploads in place (vsftpd,
/// pyftpdlib) keep the part they got; when the name was new (`fresh`) and the file there is no
/// larger than what was sent, that partial copy is the client's own and is deleted if the
/// server allows it. Anything else (a file the probe could not see before, another client's
/// upload finished meanwhile) is left alone.
fn left_behind(session: &mut Session, remote: &str, fresh: bool, sent: u64) -> String {
    let shown = sanitize(remote);
    match probe(session, remote) {
        Ok(Remote::Missing) => format!("nothing was stored under {shown}"),
        Ok(Remote::File(Some(size))) if fresh && size <= sent => {
            let deleted = session.command(&Command::Dele(remote.to_owned())).is_ok_and(|r| r.is_success());
            if deleted {
                format!("the partial copy the server kept under {shown} was deleted")
            } else {
                format!("the server kept a partial {shown} ({size} bytes): delete it, or upload again with --overwrite")
            }
        }
        Ok(Remote::File(_)) if fresh => {
            format!("the server shows a file {shown} now, perhaps a partial copy: check it before you upload again")
        }
        Ok(Remote::File(_)) => format!("the server's {shown} may now be incomplete: upload it again"),
        _ => format!("the server may have kept a partial {shown}"),
    }
}

/// Sends the data from `size.offset` on: `ALLO` with the bytes to come when the size is known,
/// then `REST offset` + STOR when resuming (APPE when the server refuses REST), else STOR.
/// Returns the bytes sent.
fn store(
    session: &mut Session,
    mode: Mode,
    opts: &PutOptions,
    source: &mut dyn Read,
    size: &Size<'_>,
    after: &[Command],
) -> Result<u64> {
    let remote = sanitize(&opts.remote);
    let offset = size.offset;
    let pending = transfer::prepare(session, mode)?;
    // The size this transfer will send: a server that knows it never takes a cut-off upload (a
    // killed client closes its data connection as a finished one does) for the whole file, and
    // needs not wait to see whether the client is still there. Servers that do not use it
    // answer 202 (or refuse it); either way the upload goes on.
    let allo = size.len.map(|len| Command::Allo(len.saturating_sub(offset).to_string()));
    if let (Some(allo), 0) = (&allo, offset) {
        // ALLO and STOR in one write: a round trip less per file of a tree.
        let stor = Command::Stor(opts.remote.clone());
        session.send_pipelined(&[allo, &stor])?;
        let reply = session.read_reply()?;
        log::debug!("ALLO answered {}", reply.code);
        let what = format!("the server refused the upload of {remote}");
        let reply = session.read_reply()?;
        let stream = transfer::established_upload(session, pending, reply, &what)?;
        return send_and_finish(session, opts, source, size, stream, after);
    }
    if let Some(allo) = &allo {
        let reply = session.command(allo)?;
        log::debug!("ALLO answered {}", reply.code);
    }
    let cmd = if offset > 0 {
        let reply = session.command(&Command::Rest(offset))?;
        if reply.code == 350 {
            Command::Stor(opts.remote.clone())
        } else {
            log::info!("REST refused ({}), appending with APPE", ServerError(reply));
            Command::Appe(opts.remote.clone())
        }
    } else {
        Command::Stor(opts.remote.clone())
    };
    let what = format!("the server refused the upload of {remote}");
    let (_, stream) = transfer::start(session, pending, &cmd, &what)?;
    send_and_finish(session, opts, source, size, stream, after)
}

/// Sends the data on the established data connection and reads the server's verdict. Returns
/// the bytes sent. In block mode the commands `after` (the checks of the upload) go out right
/// behind the end-of-file block, before the verdict is read: the server answers them once the
/// file is stored, and the checks cost no round trip of their own. Their replies are left for
/// the caller, or read and dropped when the upload failed.
fn send_and_finish(
    session: &mut Session,
    opts: &PutOptions,
    source: &mut dyn Read,
    size: &Size<'_>,
    stream: Conn,
    after: &[Command],
) -> Result<u64> {
    let remote = sanitize(&opts.remote);
    let offset = size.offset;
    let mut bar = opts.progress.file(size.len, offset, &remote);
    let mut count = offset;
    let outcome = (|| {
        let timeout = session.timeout();
        let block = session.block_mode();
        let sent = send_all(stream, block, source, size, timeout, &mut count, |n| bar.set(n));
        if let Err(e) = sent {
            if let Some(changed) = e.downcast_ref::<Changed>() {
                // The reset makes the server answer (426); read it so the connection stays in
                // step for the next command, whatever it says.
                if let Err(e) = session.read_reply() {
                    log::debug!("no reply after the reset: {}", crate::report::render(&e));
                }
                let left = left_behind(session, &opts.remote, size.fresh, count);
                return Err(anyhow!(LocalChanged { local: shown(&opts.local), detail: changed.0.clone(), left }));
            }
            // A server that gives up (disk full, quota) closes the data connection and says
            // why on the control connection: its reason beats "broken pipe".
            if session.reply_waiting()? {
                let reply = session.read_reply()?;
                return Err(anyhow!(ServerError(reply)));
            }
            return Err(e);
        }
        match sent {
            Ok(Some(kept)) => {
                let after: Vec<&Command> = after.iter().collect();
                session.send_pipelined(&after)?;
                if let Err(e) = transfer::complete(session, kept) {
                    for _ in &after {
                        if let Err(e) = session.read_reply() {
                            log::debug!("no reply to a check after the failed upload: {}", crate::report::render(&e));
                        }
                    }
                    return Err(e);
                }
            }
            _ => {
                transfer::finish(session)?;
            }
        };
        Ok(())
    })();
    bar.finish();
    let local = shown(&opts.local);
    let of_len = size.len.map_or_else(String::new, |len| format!(" of {len}"));
    match outcome {
        Ok(()) => Ok(count - offset),
        Err(e) if e.downcast_ref::<LocalChanged>().is_some() => Err(e),
        // The server ended it on purpose (quota, size limit, disk full): resuming would not help.
        Err(e) if e.downcast_ref::<ServerError>().is_some() => Err(e.context(format!(
            "the server refused the upload of {local} to {remote} after {count}{of_len} bytes"
        ))),
        Err(e) if size.len.is_none() => {
            Err(e.context(format!("upload of {local} to {remote} stopped after {count} bytes")))
        }
        Err(e) => Err(e.context(format!(
            "upload of {local} to {remote} stopped after {count}{of_len} bytes (run the same command with --resume to continue)"
        ))),
    }
}

/// The source ended early or changed while it was sent (the detail says how).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Changed(String);

/// Sends `source` on the data connection and ends it. Only a source that delivered exactly
/// what `size` announced, and did not change meanwhile, ends with a clean close (FIN), which
/// the server takes as the complete file; every other ending (an error, Ctrl-C, a source that
/// ended early or changed) resets the connection (RST), so the server keeps nothing under the
/// final name. A source longer than announced is sent only up to the announced size (the
/// change check then fails).
///
/// In block mode the end of the data is the end-of-file block, and the connection is returned
/// for the next transfer instead of being closed.
fn send_all(
    mut stream: Conn,
    block: bool,
    source: &mut dyn Read,
    size: &Size<'_>,
    timeout: Duration,
    count: &mut u64,
    on_data: impl FnMut(u64),
) -> Result<Option<Conn>> {
    // The end-of-file block must not go out before the checks below: in block mode the
    // source is sent without it, and it follows once the source proved complete.
    let sent = match size.len {
        Some(len) => {
            let mut limited = source.take(len.saturating_sub(size.offset));
            transfer::send(timeout, block, &mut stream, &mut limited, count, on_data)
        }
        None => transfer::send(timeout, block, &mut stream, source, count, on_data),
    };
    let problem = match (sent, size.len) {
        (Err(e), _) => Some(e),
        (Ok(()), Some(len)) if *count < len => {
            Some(anyhow!(Changed(format!("it ended after {count} of the {len} bytes it had when the upload started"))))
        }
        (Ok(()), Some(_)) if (size.unchanged)().is_none() => {
            Some(anyhow!(Changed("its size or modification time changed while it was read".to_owned())))
        }
        (Ok(()), _) => None,
    };
    match problem {
        Some(e) => {
            transfer::abort(stream);
            Err(e)
        }
        None if block => {
            transfer::end_blocks(timeout, &mut stream)?;
            Ok(Some(stream))
        }
        None => {
            // End of data is the end of the connection (RFC 959 stream mode). Over TLS this
            // also takes in the server's session tickets, which the next upload resumes with;
            // a failure here is judged by the server's reply, not by us.
            if let Err(e) = stream.finish_sending(timeout) {
                log::debug!("ending the data connection: {}", crate::report::io_reason(&e));
            }
            Ok(None)
        }
    }
}

/// After the 226: the remote size must be the local one (when the server tells it), and the
/// server's digest the local one (when it can hash). `path` is the local file when it can be
/// read again (a server that answers with another digest than the one computed).
fn check(
    session: &mut Session,
    opts: &PutOptions,
    len: u64,
    digest: Option<(verify::Method, digest::Digests)>,
    path: Option<&Path>,
    asked: bool,
) -> Result<()> {
    let found = if asked {
        // The replies to the checks sent behind the data: all are read before any is judged.
        let cmd = probe_command(session, &opts.remote);
        let probed = session.read_reply()?;
        let hashed = match &digest {
            Some(_) => Some(session.read_reply()?),
            None => None,
        };
        let found = probe_answer(session, &opts.remote, &cmd, probed)?;
        if let (Some((method, digests)), Some(reply)) = (&digest, hashed) {
            check_size(&found, len)?;
            return verify::check_upload_answer(*method, reply, digests, path);
        }
        found
    } else {
        probe(session, &opts.remote)?
    };
    check_size(&found, len)?;
    match digest {
        Some((method, digests)) => verify::check_upload(session, method, &opts.remote, &digests, path, len),
        None => Ok(()),
    }
}

/// After an upload: the server must show the file, with the local size when it tells one.
fn check_size(found: &Remote, len: u64) -> Result<()> {
    match found {
        Remote::File(Some(size)) if *size != len => bail!("the server holds {size} bytes, the local file {len}"),
        Remote::Missing => bail!("the server does not show the file after the upload"),
        _ => Ok(()),
    }
}

/// The remote name for a `-p` upload: `--to`, else the local base name; inside `dir` if given.
pub fn remote_name(local: &Path, to: Option<&str>, dir: Option<&str>) -> Result<String> {
    let name = match to {
        Some(to) if !to.ends_with('/') => to.to_owned(),
        _ => {
            let base = local
                .file_name()
                .ok_or_else(|| anyhow!("cannot derive a remote name from {}; name one with --to", local.display()))?;
            let base = base.to_str().ok_or_else(|| {
                anyhow!("the file name of {} is not UTF-8; name the remote file with --to", local.display())
            })?;
            remote_join(to.unwrap_or(""), base)
        }
    };
    if name.contains(['\r', '\n', '\0']) {
        bail!("the remote name {name:?} contains a CR, LF or NUL character, which FTP cannot carry");
    }
    Ok(match dir {
        Some(dir) => remote_join(dir, &name),
        None => name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// Runs [`send_all`] from `source` with `size` to a loopback peer; returns what the peer
    /// read and how its reading ended (`Ok(())` for a clean end of data).
    fn send_to_peer(source: &[u8], size: &Size<'_>) -> (Result<()>, Vec<u8>, std::io::Result<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let end = peer.read_to_end(&mut got).map(drop);
            (got, end)
        });
        let mut count = size.offset;
        let sent =
            send_all(Conn::Plain(stream), false, &mut &source[..], size, Duration::from_secs(20), &mut count, |_| {})
                .map(drop);
        let (got, end) = reader.join().unwrap();
        (sent, got, end)
    }

    #[test]
    fn only_a_complete_unchanged_source_ends_the_data_connection_cleanly() {
        let data = b"0123456789";
        let unchanged = || Some(());
        let (sent, got, end) =
            send_to_peer(data, &Size { offset: 0, len: Some(10), unchanged: &unchanged, fresh: true });
        assert!(sent.is_ok() && end.is_ok());
        assert_eq!(got, data);
        // A file that shrank while it was read: fewer bytes than announced.
        let (sent, _, end) =
            send_to_peer(&data[..4], &Size { offset: 0, len: Some(10), unchanged: &unchanged, fresh: true });
        let why = sent.unwrap_err().to_string();
        assert_eq!(why, "it ended after 4 of the 10 bytes it had when the upload started");
        assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
        // Resuming from 6: 4 bytes are due; 3 is short.
        let (sent, _, end) =
            send_to_peer(&data[..3], &Size { offset: 6, len: Some(10), unchanged: &unchanged, fresh: true });
        assert!(sent.unwrap_err().to_string().contains("after 9 of the 10 bytes"));
        assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
        // The right length, but the file changed meanwhile.
        let (sent, _, end) = send_to_peer(data, &Size { offset: 0, len: Some(10), unchanged: &|| None, fresh: true });
        assert!(sent.unwrap_err().to_string().contains("modification time changed"));
        assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
        // A file that grew: only the announced bytes go, and the change check resets.
        let (sent, _, end) =
            send_to_peer(b"0123456789ab", &Size { offset: 0, len: Some(10), unchanged: &|| None, fresh: true });
        assert!(sent.is_err());
        assert_eq!(end.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
        // A pipe has no size: its end is the end of data.
        let (sent, got, end) = send_to_peer(data, &Size { offset: 0, len: None, unchanged: &unchanged, fresh: true });
        assert!(sent.is_ok() && end.is_ok());
        assert_eq!(got, data);
    }

    #[test]
    fn names_remote_files() {
        for (local, to, dir, expected) in [
            ("a.txt", None, None, "a.txt"),
            ("x/y/a b.txt", None, None, "a b.txt"),
            ("a.txt", Some("b.txt"), None, "b.txt"),
            ("a.txt", Some("in/"), None, "in/a.txt"),
            ("a.txt", None, Some("up"), "up/a.txt"),
            ("a.txt", Some("c"), Some("up/"), "up/c"),
        ] {
            assert_eq!(remote_name(Path::new(local), to, dir).unwrap(), expected, "{local} {to:?} {dir:?}");
        }
        assert!(remote_name(Path::new("/"), None, None).is_err());
        assert!(remote_name(Path::new("a\nb"), None, None).is_err());
    }
}
