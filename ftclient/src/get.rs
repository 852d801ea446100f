//! `-g`: download one file. The bytes go to a temporary `.NAME.ftpart` file that is renamed into
//! place only after the server confirmed the transfer (226/250), the byte count matched the
//! announced size and any checksum matched; every failure leaves nothing under the final name.

use crate::cli::{Checksum, HashChoice};
use crate::digest::{self, Digests, HashingWriter};
use crate::localfile::{self, SyncingFile, Target};
use crate::progress::{summary, Progress};
use crate::segments;
use crate::session::{Login, ServerError, Session};
use crate::transfer::{self, Mode};
use crate::verify::{self, EarlyDigest, Expected, Method};
use anyhow::{anyhow, bail, Context, Result};
use common::reply::parse_transfer_size;
use common::text::sanitize;
use common::Command;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the downloaded bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The remote base name in the current directory.
    BaseName,
    /// A local path (a directory means the remote base name inside it).
    Path(PathBuf),
    /// Standard output.
    Stdout,
    /// Exactly this target (tree transfers, where the local name comes from the listing).
    Target(Target),
}

/// What `-g` should do.
#[derive(Debug, Clone)]
pub struct GetOptions {
    /// The remote path.
    pub remote: String,
    /// Where to save it.
    pub output: Output,
    /// Replace an existing local file instead of choosing NAME.1, NAME.2, ...
    pub overwrite: bool,
    /// Continue from the temporary file of an interrupted download.
    pub resume: bool,
    /// Check the file with the server's HASH command when it has one.
    pub verify: bool,
    /// Which digest to ask the server for.
    pub hash: HashChoice,
    /// Make the file durable (fdatasync) before it gets its final name.
    pub fsync: bool,
    /// A digest the file must have.
    pub checksum: Option<Checksum>,
    /// Where the progress bar goes.
    pub progress: Progress,
    /// The file's size from a listing made moments ago (tree transfers): SIZE is not asked,
    /// and the byte count must match this instead.
    pub listed_size: Option<u64>,
    /// How to log in again, for a second connection that asks for the server's hash while the
    /// download runs (`None`: ask afterwards on the main connection).
    pub login: Option<Login>,
    /// `--segments`: how many connections one file is fetched over (`None`: the automatic rule
    /// of [`segments::choose`]; 1: one stream).
    pub segments: Option<u16>,
}

impl GetOptions {
    /// What the file is checked against once it is here.
    pub fn checked_against(&self) -> Expected<'_> {
        Expected { remote: &self.remote, checksum: self.checksum.as_ref(), hash: self.hash, login: self.login.as_ref() }
    }
}

/// What a finished download did.
#[derive(Debug, Clone)]
pub struct Done {
    /// Bytes moved in this run.
    pub moved: u64,
    /// The file's size (including resumed bytes).
    pub total: u64,
    /// How long the transfer took.
    pub elapsed: Duration,
    /// Where the file was saved (`None`: stdout).
    pub saved: Option<PathBuf>,
    /// The bytes went straight into `saved`, a device or FIFO, with no temporary file.
    pub streamed: bool,
    /// The name asked for, when it existed and the file went to NAME.1, NAME.2, ... instead.
    pub instead_of: Option<PathBuf>,
}

impl Done {
    /// The line printed after a single download: `saved a.txt: 1.00 KiB (...) in ...`.
    pub fn describe(&self, remote: &str) -> String {
        let numbers = summary(self.moved, self.total, self.elapsed);
        match (&self.saved, &self.instead_of) {
            (None, _) => format!("wrote {} to stdout: {numbers}", sanitize(remote)),
            (Some(saved), _) if self.streamed => {
                format!("wrote {} to {}: {numbers}", sanitize(remote), saved.display())
            }
            (Some(saved), None) => format!("saved {}: {numbers}", saved.display()),
            (Some(saved), Some(wanted)) => {
                format!("saved {} ({} already exists): {numbers}", saved.display(), wanted.display())
            }
        }
    }
}

/// Downloads `opts.remote`.
pub fn run(session: &mut Session, mode: Mode, opts: &GetOptions) -> Result<Done> {
    // SIZE is only meaningful in binary mode (RFC 3659 section 4), so TYPE I comes first.
    session.binary()?;
    let size = match opts.listed_size {
        Some(size) => Some(size),
        None => remote_size(session, &opts.remote)?,
    };
    let method = verify::plan(session, opts.verify, opts.hash)?;
    let mut download = Download { session, mode, opts, method, size };
    match &opts.output {
        Output::Stdout => download.stream(localfile::stdout_writer(), None),
        Output::BaseName => download.save(&Target::new(None, &opts.remote)?),
        Output::Path(path) if localfile::is_special(path) => {
            if opts.resume {
                bail!("--resume cannot continue into {}, which is not a regular file", path.display());
            }
            // A device or FIFO (/dev/null, a pipe): there is no temporary file to rename onto
            // it, and replacing it with a regular file would break it. Write straight into it.
            download.stream(localfile::open_special(path)?, Some(path))
        }
        Output::Path(path) => download.save(&Target::new(Some(path), &opts.remote)?),
        Output::Target(target) => download.save(target),
    }
}

/// Asks SIZE; `None` when the server does not say (no SIZE command, or 550 for a path that
/// RETR may still explain better).
fn remote_size(session: &mut Session, remote: &str) -> Result<Option<u64>> {
    let reply = session.command(&Command::Size(remote.to_owned()))?;
    if reply.code != 213 {
        log::info!("no size from the server: {}", ServerError(reply));
        return Ok(None);
    }
    Ok(reply.text().trim().parse().ok())
}

/// With `--resume`: how many bytes the (locked) temporary file already holds.
fn resume_offset(lock: &localfile::PartLock, size: Option<u64>, in_tree: bool) -> Result<u64> {
    let part = lock.path();
    if lock.created() {
        let level = if in_tree { log::Level::Info } else { log::Level::Warn };
        log::log!(level, "nothing to resume ({} does not exist), starting from the beginning", part.display());
        return Ok(0);
    }
    let offset = lock.size().with_context(|| format!("cannot read {}", part.display()))?;
    if let Some(size) = size.filter(|&size| offset > size) {
        bail!(
            "{} holds {offset} bytes but the remote file has only {size}; delete it or run without --resume",
            part.display()
        );
    }
    Ok(offset)
}

/// Opens the temporary file: appending at `offset` when resuming, else empty.
fn open_part(lock: &localfile::PartLock, offset: u64) -> Result<File> {
    if offset == 0 {
        return lock.fresh_writer();
    }
    let part = lock.path();
    let mut file = lock.writer()?;
    let len = file.metadata().with_context(|| format!("cannot read {}", part.display()))?.len();
    if len != offset {
        bail!("{} changed size while resuming ({len} bytes, expected {offset})", part.display());
    }
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
        .with_context(|| format!("cannot write {}", part.display()))?;
    Ok(file)
}

/// A transfer is complete only when the byte count matches the announced size.
fn check_count(count: u64, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(n) if count != n => Err(anyhow!("short transfer: the server ended the data connection early")),
        Some(_) => Ok(()),
        None => {
            log::info!("the server announced no size; trusting its 226 reply for {count} bytes");
            Ok(())
        }
    }
}

/// One download under way: the connection, how its data connection is made, the options, the
/// way the server will be asked for the file's digest, and the file's size if known. The steps
/// of a download are its methods, so none needs the whole state passed in.
struct Download<'a> {
    session: &'a mut Session,
    mode: Mode,
    opts: &'a GetOptions,
    method: Option<Method>,
    size: Option<u64>,
}

impl Download<'_> {
    /// Downloads into `target` through its temporary file.
    fn save(&mut self, target: &Target) -> Result<Done> {
        target.check_name()?;
        let replace = target.replaces(self.opts.overwrite);
        // Renaming onto a directory fails: say so before the transfer, not after it.
        if replace && std::fs::symlink_metadata(target.path()).is_ok_and(|m| m.is_dir()) {
            bail!("cannot replace {}: it is a directory", target.path().display());
        }
        let part = target.part_path();
        let started = Instant::now();
        if self.opts.resume {
            if let Some(done) = self.already_complete(target, &part) {
                return Ok(Done {
                    moved: 0,
                    total: done,
                    elapsed: started.elapsed(),
                    saved: Some(target.path()),
                    streamed: false,
                    instead_of: None,
                });
            }
        }
        // Held until the file has its final name (or the download failed).
        let mut lock = localfile::PartLock::acquire(&part)?;
        // In a tree, files the interrupted run never started are the rule, not worth a warning each.
        let in_tree = self.opts.listed_size.is_some();
        if let Some(job) = self.segmented(lock.path()) {
            return self.save_segmented(target, replace, &mut lock, job, started);
        }
        let offset = if self.opts.resume { resume_offset(&lock, self.size, in_tree)? } else { 0 };
        // One statvfs: cheap next to the transfer, and a file that cannot fit fails before
        // its first byte instead of after filling the disk.
        if let Some(needed) = self.size.map(|size| size.saturating_sub(offset)).filter(|&n| n > 0) {
            localfile::check_space(target.dir(), needed)?;
        }
        let mut early = verify::start_early(&self.opts.checked_against(), self.method, self.size);
        let (total, digests) = if offset > 0 && Some(offset) == self.size {
            log::info!("{} already holds all {offset} bytes", part.display());
            (offset, None)
        } else {
            self.receive_into_part(offset, &lock, &mut early)?
        };
        let against = self.opts.checked_against();
        let checked = match digests {
            Some(digests) => {
                verify::check_digests(self.session, &against, self.method, &digests, Some(&part), total, early)
            }
            None => verify::check(self.session, &against, self.method, &part, early),
        };
        let (saved, instead_of) = self.publish(checked, target, &part, replace, &mut lock)?;
        Ok(Done {
            moved: total - offset,
            total,
            elapsed: started.elapsed(),
            saved: Some(saved),
            streamed: false,
            instead_of,
        })
    }

    /// How many connections this download uses when more than one: the rule of
    /// [`segments::choose`], or the record an interrupted segmented download left (which
    /// `--resume` always continues). Only single files saved through a temporary file whose
    /// size the server told, with a login for the extra connections.
    fn segmented(&self, part: &Path) -> Option<usize> {
        let login = self.opts.login.as_ref();
        if self.opts.listed_size.is_some() || login.is_none() {
            return None;
        }
        let asked = segments::choose(self.opts.segments, self.size, self.session.features.rest_stream);
        if self.size.is_none() && self.opts.segments.is_some_and(|n| n > 1) {
            log::warn!("the server did not say the file's size; downloading over one connection");
        }
        if self.opts.resume && self.size.is_some() && segments::has_record(part) {
            return Some(asked.unwrap_or(1));
        }
        asked
    }

    /// After the transfer: the verification's outcome (a failure keeps the part file for
    /// inspection), then the part file moved to its name. Returns where it went, and the name
    /// it was meant for when that was taken (`NAME.1`).
    fn publish(
        &self,
        checked: Result<()>,
        target: &Target,
        part: &Path,
        replace: bool,
        lock: &mut localfile::PartLock,
    ) -> Result<(PathBuf, Option<PathBuf>)> {
        checked.with_context(|| {
            format!(
                "download of {} failed verification ({} is kept for inspection)",
                sanitize(&self.opts.remote),
                part.display()
            )
        })?;
        let saved = target
            .commit(part, replace)
            .with_context(|| format!("cannot move {} to {}", part.display(), target.path().display()))?;
        lock.committed();
        let instead_of = (saved != target.path()).then(|| target.path());
        Ok((saved, instead_of))
    }

    /// A segmented download into `target` (see [`segments`]), then the same check and rename as
    /// one stream.
    fn save_segmented(
        &mut self,
        target: &Target,
        replace: bool,
        lock: &mut localfile::PartLock,
        connections: usize,
        started: Instant,
    ) -> Result<Done> {
        let (Some(size), Some(login)) = (self.size, self.opts.login.as_ref()) else {
            bail!("a segmented download needs the file's size and a login");
        };
        let part = lock.path().to_owned();
        let file = lock.writer()?;
        let job = segments::Job {
            remote: &self.opts.remote,
            size,
            segments: connections,
            // A record without its temporary file describes nothing: start over.
            resume: self.opts.resume && !lock.created(),
            login,
            mode: self.mode,
            fsync: self.opts.fsync,
            progress: &self.opts.progress,
        };
        let early = verify::start_early(&self.opts.checked_against(), self.method, self.size);
        let moved = segments::download(self.session, &job, &part, &file)?;
        let checked = verify::check(self.session, &self.opts.checked_against(), self.method, &part, early);
        let (saved, instead_of) = self.publish(checked, target, &part, replace, lock)?;
        Ok(Done { moved, total: size, elapsed: started.elapsed(), saved: Some(saved), streamed: false, instead_of })
    }

    /// With `--resume` and no temporary file: is the file already there, complete (the remote
    /// size, and the server's digest when it has one)? Then there is nothing to do (an
    /// interrupted tree transfer continues without fetching its finished files again). Returns
    /// the size.
    fn already_complete(&mut self, target: &Target, part: &Path) -> Option<u64> {
        let size = self.size?;
        let path = target.path();
        let is_complete = std::fs::symlink_metadata(part).is_err()
            && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == size);
        if !is_complete {
            return None;
        }
        match verify::check(self.session, &self.opts.checked_against(), self.method, &path, None) {
            Ok(()) if self.opts.verify && self.method.is_none() && self.opts.checksum.is_none() => {
                log::warn!(
                    "{} already has the remote file's size; taken as complete unchecked (the server offers no hash)",
                    path.display()
                );
                Some(size)
            }
            Ok(()) => {
                log::info!("{} is already complete", path.display());
                Some(size)
            }
            Err(e) => {
                log::info!(
                    "{} differs from the server's file ({}); getting it again",
                    path.display(),
                    crate::report::render(&e)
                );
                None
            }
        }
    }

    /// Runs RETR (after `REST offset` when resuming) and appends the data to `part`. Returns the
    /// file's size once the server confirmed the transfer and the count matched, and its digests
    /// when verification needs them (computed on the way in, so the file is not read again). For
    /// a small file the server's digest is asked for in the same write as the RETR; its answer
    /// goes to `early`.
    fn receive_into_part(
        &mut self,
        offset: u64,
        lock: &localfile::PartLock,
        early: &mut Option<EarlyDigest>,
    ) -> Result<(u64, Option<Digests>)> {
        let part = lock.path();
        let pending = transfer::prepare(self.session, self.mode)?;
        if offset > 0 {
            let reply = self.session.command(&Command::Rest(offset))?;
            if reply.code != 350 {
                return Err(ServerError(reply))
                    .context("the server cannot resume downloads (REST refused); run without --resume to start over");
            }
        }
        let what = format!("cannot get {}", sanitize(&self.opts.remote));
        let retr = Command::Retr(self.opts.remote.clone());
        let (reply, mut stream) = match verify::ask_ahead(self.method, self.size, offset) {
            Some(method) => {
                self.session.send_pipelined(&[&verify::hash_command(method, &self.opts.remote), &retr])?;
                *early = Some(verify::read_ahead(self.session, method)?);
                let reply = self.session.read_reply()?;
                let stream = transfer::established(self.session, pending, reply.clone(), &what);
                (reply, stream.map_err(|e| self.refused(e))?)
            }
            None => transfer::start(self.session, pending, &retr, &what).map_err(|e| self.refused(e))?,
        };
        // The 150 reply counts the whole file; with REST servers differ, so only SIZE is used then.
        let expected = self.size.or_else(|| if offset == 0 { parse_transfer_size(&reply.text()) } else { None });
        if let (None, Some(announced)) = (self.size, expected) {
            // Only the 150 reply said how big the file is: check the room now, before the
            // first byte is written.
            localfile::check_space(part.parent().unwrap_or(Path::new("")), announced)?;
        }
        let file = open_part(lock, offset)?;
        let algos = verify::wanted(&self.opts.checked_against(), self.method);
        let hashers = if algos.is_empty() || offset == 0 {
            digest::Hashers::new(&algos)
        } else {
            let mut prefix = File::open(part).with_context(|| format!("cannot read {}", part.display()))?;
            digest::hash_prefix(&mut prefix, offset, &algos, part)?
        };
        let mut sink = HashingWriter::continuing(SyncingFile::new(file, self.opts.fsync), hashers);
        let mut bar = self.opts.progress.file(expected, offset, &sanitize(&self.opts.remote));
        let mut count = offset;
        let outcome = (|| {
            transfer::receive(self.session, &mut stream, &mut sink, &mut count, expected.unwrap_or(u64::MAX), |n| {
                bar.set(n)
            })?;
            transfer::complete(self.session, stream)?;
            check_count(count, expected)
        })();
        bar.finish();
        let (file, digest) = sink.finish();
        // With --fsync the data must be on disk before the name says the file is complete.
        let outcome = outcome.and_then(|()| file.finish().with_context(|| format!("cannot write {}", part.display())));
        match outcome {
            Ok(()) => Ok((count, digest)),
            Err(e) if localfile::is_disk_full(&e) => {
                // Nothing worth resuming when nothing was stored: no empty temporary file.
                let kept = if count == 0 {
                    let _ = std::fs::remove_file(part);
                    0
                } else {
                    std::fs::metadata(part).map_or(count, |m| m.len())
                };
                let dir = localfile::shown_dir(part.parent().unwrap_or(Path::new("")));
                let more = expected
                    .map_or(String::new(), |n| format!(": {} more needed", localfile::amount(n.saturating_sub(kept))));
                let remote = sanitize(&self.opts.remote);
                Err(e.context(if kept == 0 {
                    format!("download of {remote} failed: disk full in {dir}{more}; free some space, then run it again")
                } else {
                    let of = expected.map_or(String::new(), |n| format!(" of {n}"));
                    format!(
                        "download of {remote} stopped after {kept}{of} bytes: disk full in {dir}{more}; free some \
                         space, then run the same command with --resume to continue ({} is kept)",
                        part.display()
                    )
                }))
            }
            Err(e) if count == 0 => {
                // Nothing worth resuming: do not leave an empty temporary file behind.
                let _ = std::fs::remove_file(part);
                Err(e.context(format!("download of {} failed", sanitize(&self.opts.remote))))
            }
            Err(e) if e.downcast_ref::<transfer::TooMuchData>().is_some() => Err(e.context(format!(
                "download of {} failed ({} is kept for inspection)",
                sanitize(&self.opts.remote),
                part.display()
            ))),
            Err(e) => {
                // A failed write may have stored part of a buffer: the file says how far it got.
                let count = std::fs::metadata(part).map_or(count, |m| m.len());
                let of = expected.map_or(String::new(), |n| format!(" of {n}"));
                Err(e.context(format!(
                    "download of {} stopped after {count}{of} bytes ({} is kept; run the same command with --resume to continue)",
                    sanitize(&self.opts.remote),
                    part.display()
                )))
            }
        }
    }

    /// Explains a refused RETR when the remote path is a directory (servers say "not a plain
    /// file" or "failed to open file"): `-g` gets files, `-r -g` trees. In a tree the listing
    /// already said what each name is, so nothing is asked there.
    fn refused(&mut self, err: anyhow::Error) -> anyhow::Error {
        let permanent = err.chain().any(|c| c.downcast_ref::<ServerError>().is_some_and(|e| e.0.code / 100 == 5));
        if !permanent || self.opts.listed_size.is_some() {
            return err;
        }
        match self.session.is_dir(&self.opts.remote) {
            Ok(true) => anyhow!("{} is a directory; use -r to get a tree", sanitize(&self.opts.remote)),
            Ok(false) => err,
            Err(e) => {
                log::debug!(
                    "cannot tell whether {} is a directory: {}",
                    sanitize(&self.opts.remote),
                    crate::report::render(&e)
                );
                err
            }
        }
    }

    /// Streams the file to stdout (`path` is `None`) or straight into a device or FIFO: no
    /// temporary file, so a failure can only be reported.
    fn stream(&mut self, out: impl Write, path: Option<&Path>) -> Result<Done> {
        let name = path.map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
        let pending = transfer::prepare(self.session, self.mode)?;
        let what = format!("cannot get {}", sanitize(&self.opts.remote));
        let (reply, mut stream) =
            transfer::start(self.session, pending, &Command::Retr(self.opts.remote.clone()), &what)
                .map_err(|e| self.refused(e))?;
        let expected = self.size.or_else(|| parse_transfer_size(&reply.text()));
        let started = Instant::now();
        let early = verify::start_early(&self.opts.checked_against(), self.method, expected);
        let mut bar = self.opts.progress.file(expected, 0, &sanitize(&self.opts.remote));
        let mut count = 0;
        let mut sink = HashingWriter::new(out, &verify::wanted(&self.opts.checked_against(), self.method));
        let outcome = (|| {
            transfer::receive(self.session, &mut stream, &mut sink, &mut count, expected.unwrap_or(u64::MAX), |n| {
                bar.set(n)
            })?;
            sink.flush().with_context(|| format!("cannot write to {name}"))?;
            transfer::complete(self.session, stream)?;
            check_count(count, expected)
        })();
        bar.finish();
        outcome.with_context(|| {
            format!(
                "download of {} to {name} stopped after {count} bytes (the output is incomplete)",
                sanitize(&self.opts.remote)
            )
        })?;
        if let (_, Some(digests)) = sink.finish() {
            verify::check_digests(
                self.session,
                &self.opts.checked_against(),
                self.method,
                &digests,
                None,
                count,
                early,
            )
            .with_context(|| {
                format!(
                    "download of {} to {name} failed verification (the output is corrupt)",
                    sanitize(&self.opts.remote)
                )
            })?;
        }
        let saved = path.map(Path::to_owned);
        Ok(Done { moved: count, total: count, elapsed: started.elapsed(), saved, streamed: true, instead_of: None })
    }
}
