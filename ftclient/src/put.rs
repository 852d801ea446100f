//! `-p`: upload one file. A remote file is never replaced unless `--overwrite` (checked with
//! MLST or SIZE before STOR; the server decides too), an interrupted upload is continued with
//! `--resume` (REST n + STOR, or APPE), and a finished upload is checked by its size and, when
//! the server offers HASH, by SHA-256.

use crate::progress::{summary, Progress};
use crate::session::{ServerError, Session};
use crate::transfer::{self, Mode};
use crate::verify;
use anyhow::{anyhow, bail, Context, Result};
use common::listing::{parse_mlsx, EntryKind};
use common::text::sanitize;
use common::Command;
use std::fs::File;
use std::io::{Seek, SeekFrom};
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
            opts.local.display(),
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
    if session.features.mlst {
        let reply = session.command(&Command::Mlst(Some(path.to_owned())))?;
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
    }
    let reply = session.command(&Command::Size(path.to_owned()))?;
    Ok(match reply.code {
        213 => Remote::File(reply.text().trim().parse().ok()),
        550 => Remote::Missing,
        _ => {
            log::info!("cannot tell whether {} exists: {}", sanitize(path), ServerError(reply));
            Remote::Unknown
        }
    })
}

/// Uploads `opts.local` to `opts.remote`.
pub fn run(session: &mut Session, mode: Mode, opts: &PutOptions) -> Result<Sent> {
    let mut file = File::open(&opts.local).with_context(|| format!("cannot open {}", opts.local.display()))?;
    let meta = file.metadata().with_context(|| format!("cannot read {}", opts.local.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory; use -r to upload a directory tree", opts.local.display());
    }
    let len = meta.len();
    session.binary()?;
    let remote = sanitize(&opts.remote);
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
    let started = Instant::now();
    let method = verify::plan(session, opts.verify, opts.hash)?;
    file.seek(SeekFrom::Start(offset)).with_context(|| format!("cannot read {}", opts.local.display()))?;
    let complete = opts.resume && matches!(found, Remote::File(_)) && offset == len;
    // The local digest is computed on a second thread (reading the file on its own) while
    // the upload runs, so it costs no time of its own; a failed upload stops it.
    let stop = AtomicBool::new(false);
    let (sent, digest) = std::thread::scope(|scope| {
        let stop = &stop;
        let hasher = method.map(|m| scope.spawn(move || verify::hash_file_until(&opts.local, &[m.algo()], stop)));
        let sent = if complete {
            log::info!("the server already holds all {len} bytes of {remote}");
            Ok(0)
        } else {
            store(session, mode, opts, &mut file, offset, len)
        };
        if sent.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let digest = hasher.map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("the hashing thread panicked"))));
        (sent, digest)
    });
    let sent = sent?;
    let digest = digest.transpose()?;
    check(session, opts, len, method.zip(digest))
        .with_context(|| format!("upload of {} to {remote} failed verification", opts.local.display()))?;
    Ok(Sent { moved: sent, total: len, elapsed: started.elapsed() })
}

/// Sends the data from `offset` on: `REST offset` + STOR when resuming (APPE when the server
/// refuses REST), else STOR. Returns the bytes sent.
fn store(
    session: &mut Session,
    mode: Mode,
    opts: &PutOptions,
    source: &mut File,
    offset: u64,
    len: u64,
) -> Result<u64> {
    let remote = sanitize(&opts.remote);
    let pending = transfer::prepare(session, mode)?;
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
    let (_, mut stream) = transfer::start(session, pending, &cmd, &what)?;
    let mut bar = opts.progress.file(Some(len), offset, &remote);
    let mut count = offset;
    let outcome = (|| {
        if let Err(e) = transfer::send(session, &mut stream, source, &mut count, |n| bar.set(n)) {
            // A server that gives up (disk full, quota) closes the data connection and says
            // why on the control connection: its reason beats "broken pipe".
            if session.reply_waiting()? {
                let reply = session.read_reply()?;
                return Err(anyhow!(ServerError(reply)));
            }
            return Err(e);
        }
        // End of data is the end of the connection (RFC 959 stream mode).
        let _ = stream.shutdown(std::net::Shutdown::Write);
        drop(stream);
        transfer::finish(session)?;
        Ok(())
    })();
    bar.finish();
    match outcome {
        Ok(()) => Ok(count - offset),
        // The server ended it on purpose (quota, size limit, disk full): resuming would not help.
        Err(e) if e.downcast_ref::<ServerError>().is_some() => Err(e.context(format!(
            "the server refused the upload of {} to {remote} after {count} of {len} bytes",
            opts.local.display()
        ))),
        Err(e) => Err(e.context(format!(
            "upload of {} to {remote} stopped after {count} of {len} bytes (run the same command with --resume to continue)",
            opts.local.display()
        ))),
    }
}

/// After the 226: the remote size must be the local one (when the server tells it), and the
/// server's digest the local one (when it can hash).
fn check(
    session: &mut Session,
    opts: &PutOptions,
    len: u64,
    digest: Option<(verify::Method, verify::Digests)>,
) -> Result<()> {
    match probe(session, &opts.remote)? {
        Remote::File(Some(size)) if size != len => bail!("the server holds {size} bytes, the local file {len}"),
        Remote::Missing => bail!("the server does not show the file after the upload"),
        _ => {}
    }
    match digest {
        Some((method, digests)) => verify::check_upload(session, method, &opts.remote, &digests, &opts.local, len),
        None => Ok(()),
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
