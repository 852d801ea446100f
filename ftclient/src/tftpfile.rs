//! `--tftp`: get and put one file over TFTP (the protocol is in `tftp`) with the FTP path's
//! local rules: a download goes to `.NAME.ftpart`, is checked (and synced with `--fsync`), then
//! named (NAME.1, NAME.2, ... when NAME exists, unless `--overwrite` or `-o NAME`), or is written straight
//! into `-o -` (stdout), a FIFO or a device; an upload (of a file, a FIFO or `-`, stdin) first
//! checks with a read request whether the remote name exists and refuses to replace it unless
//! `--overwrite`.

use crate::interrupt;
use crate::localfile::{self, SyncingFile, Target};
use crate::progress::{summary, FileBar, Progress};
use crate::tftp::{self, Outcome, TftpError, TftpOptions};
use anyhow::{anyhow, bail, Context, Result};
use common::text::sanitize;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Instant;

/// Where a TFTP transfer goes and how.
#[derive(Debug, Clone)]
pub struct TftpJob {
    /// The server's address.
    pub server: SocketAddr,
    /// Block size and window size to ask for; the server may grant less.
    pub options: TftpOptions,
    /// Replace an existing file (local for gets, remote for puts).
    pub overwrite: bool,
    /// Make a downloaded file durable before it gets its final name.
    pub fsync: bool,
    /// Where the progress bar goes.
    pub progress: Progress,
}

/// Resolves `host` (a name, an IPv4 or an IPv6 address) and `port`.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve host {}", sanitize(host)))?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve host {}: no addresses", sanitize(host)))
}

/// The bar of one transfer, made when the first progress report tells the total (`tsize`).
struct LazyBar<'a> {
    progress: &'a Progress,
    label: String,
    bar: Option<FileBar>,
}

impl LazyBar<'_> {
    fn update(&mut self, bytes: u64, total: Option<u64>) {
        let (progress, label) = (self.progress, &self.label);
        self.bar.get_or_insert_with(|| progress.file(total, 0, label)).set(bytes);
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish();
        }
    }
}

/// Fails reads and writes once Ctrl-C was pressed, so a TFTP transfer stops at its next block.
/// (Not with `ErrorKind::Interrupted`: that one means "try again", and `write_all` would.)
struct Interruptible<T>(T);

fn interrupted() -> io::Error {
    io::Error::other("interrupted")
}

impl<T: Write> Write for Interruptible<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        interrupt::check().map_err(|_| interrupted())?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<T: Read> Read for Interruptible<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        interrupt::check().map_err(|_| interrupted())?;
        let n = self.0.read(buf)?;
        // Asked again after the read: Ctrl-C does not wake a read blocked on a pipe (the
        // handler restarts it), and a pipe whose writer died of the same Ctrl-C then ends
        // early; that end must not be sent as the end of the file.
        interrupt::check().map_err(|_| interrupted())?;
        Ok(n)
    }
}

/// What the line after a transfer says about the negotiation.
fn negotiated(outcome: &Outcome) -> String {
    format!("blksize {}, windowsize {}", outcome.blksize, outcome.windowsize)
}

/// Downloads `remote` to `output` (a path or directory; `-`, stdout; `None`: the remote base
/// name here) and returns the line to print.
pub fn get(job: &TftpJob, remote: &str, output: Option<&Path>) -> Result<String> {
    match output {
        Some(path) if path.as_os_str() == "-" => get_into(job, remote, localfile::stdout_writer(), "stdout"),
        Some(path) if localfile::is_special(path) => {
            get_into(job, remote, localfile::open_special(path)?, &path.display().to_string())
        }
        _ => get_file(job, remote, output),
    }
}

/// Receives `remote` into `sink` with a progress bar; fails when fewer bytes came than the
/// server announced (`tsize`).
fn receive(job: &TftpJob, remote: &str, sink: &mut dyn Write) -> Result<Outcome> {
    let mut bar = LazyBar { progress: &job.progress, label: sanitize(remote), bar: None };
    let result = tftp::get(job.server, remote, sink, &job.options, &mut |n, total| bar.update(n, total));
    bar.finish();
    let outcome = result?;
    if let Some(tsize) = outcome.tsize.filter(|&t| t != outcome.bytes) {
        bail!("short transfer: {} of the {tsize} bytes the server announced", outcome.bytes);
    }
    Ok(outcome)
}

/// Downloads `remote` straight into `out` (stdout, a FIFO, a device), named `name`: there is no
/// temporary file, so a failure can only be reported.
fn get_into(job: &TftpJob, remote: &str, out: impl Write, name: &str) -> Result<String> {
    let started = Instant::now();
    let mut sink = Interruptible(io::BufWriter::with_capacity(256 << 10, out));
    let outcome = receive(job, remote, &mut sink).and_then(|outcome| {
        sink.0.flush().with_context(|| format!("cannot write to {name}"))?;
        Ok(outcome)
    });
    let outcome = outcome.with_context(|| {
        format!("tftp download of {} to {name} failed (the output is incomplete)", sanitize(remote))
    })?;
    Ok(format!(
        "wrote {} to {name}: {} over TFTP ({})",
        sanitize(remote),
        summary(outcome.bytes, outcome.bytes, started.elapsed()),
        negotiated(&outcome)
    ))
}

/// Downloads `remote` into a temporary file, then names it (see the module comment).
fn get_file(job: &TftpJob, remote: &str, output: Option<&Path>) -> Result<String> {
    let target = Target::new(output, remote)?;
    target.check_name()?;
    let part = target.part_path();
    let mut lock = localfile::PartLock::acquire(&part)?;
    let file = lock.fresh_writer()?;
    let started = Instant::now();
    let mut sink = Interruptible(SyncingFile::new(file, job.fsync));
    let outcome = receive(job, remote, &mut sink).and_then(|outcome| {
        // The data must be on disk before the name says the file is complete.
        sink.0.finish().with_context(|| format!("cannot write {}", part.display()))?;
        Ok(outcome)
    });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // TFTP cannot resume: a partial file is of no use.
            let _ = std::fs::remove_file(&part);
            return Err(e.context(format!("tftp download of {} failed", sanitize(remote))));
        }
    };
    let saved = target
        .commit(&part, target.replaces(job.overwrite))
        .with_context(|| format!("cannot move {} to {}", part.display(), target.path().display()))?;
    lock.committed();
    let renamed =
        if saved == target.path() { String::new() } else { format!(" ({} already exists)", target.path().display()) };
    Ok(format!(
        "saved {}{renamed}: {} over TFTP ({})",
        saved.display(),
        summary(outcome.bytes, outcome.bytes, started.elapsed()),
        negotiated(&outcome)
    ))
}

/// Why a probe read stopped: it saw data, so the file exists.
#[derive(Debug)]
struct Seen;

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("only checking that the file exists")
    }
}

impl std::error::Error for Seen {}

/// A writer that fails at the first byte: a read request that gets that far found the file.
struct Probe;

impl Write for Probe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::other(Seen))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Does `remote` exist on the server? TFTP has no such question, so a plain read request
/// (no options) asks it: data or an empty file means yes, error 1 (file not found) means no.
/// `None`: the server would not say (e.g. error 2, access violation, on a write-only name).
fn exists(job: &TftpJob, remote: &str) -> Result<Option<bool>> {
    let plain = TftpOptions { blksize: common::tftp::DEFAULT_BLKSIZE, windowsize: 1, ..job.options.clone() };
    match tftp::get(job.server, remote, &mut Probe, &plain, &mut |_, _| {}) {
        Ok(_) => Ok(Some(true)),
        Err(TftpError::Io(e)) if e.get_ref().is_some_and(|inner| inner.is::<Seen>()) => Ok(Some(true)),
        Err(TftpError::Server { code: 1, .. }) => Ok(Some(false)),
        Err(e @ TftpError::Cancelled) => Err(e.into()),
        Err(e @ (TftpError::TimedOut(..) | TftpError::Silent(..) | TftpError::Io(_))) => {
            Err(anyhow::Error::new(e).context("the TFTP server does not answer"))
        }
        Err(e) => {
            log::info!("cannot tell whether {} exists: {}", sanitize(remote), crate::report::plain(&e));
            Ok(None)
        }
    }
}

/// Uploads `local` (`-`: standard input) as `remote` and returns the line to print.
pub fn put(job: &TftpJob, local: &Path, remote: &str) -> Result<String> {
    let (source, len): (Box<dyn Read>, _) = if local.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
        let meta = file.metadata().with_context(|| format!("cannot read {}", local.display()))?;
        if meta.is_dir() {
            bail!("{} is a directory; TFTP transfers single files", local.display());
        }
        // A FIFO or a device has no size in advance: it is sent until its end, without tsize.
        (Box::new(file), meta.is_file().then_some(meta.len()))
    };
    let local_shown = if local.as_os_str() == "-" { "standard input".to_owned() } else { local.display().to_string() };
    let shown = sanitize(remote);
    if !job.overwrite {
        match exists(job, remote)? {
            Some(true) => bail!("the remote file {shown} already exists; use --overwrite to replace it"),
            Some(false) => {}
            None => bail!(
                "cannot check whether the remote file {shown} exists (the server refuses to read it); use --overwrite to upload anyway"
            ),
        }
    }
    let started = Instant::now();
    let mut source = Interruptible(source);
    let mut bar = LazyBar { progress: &job.progress, label: shown.clone(), bar: None };
    let result = tftp::put(job.server, remote, &mut source, len, &job.options, &mut |n, _| bar.update(n, len));
    bar.finish();
    let outcome = result.with_context(|| format!("tftp upload of {local_shown} to {shown} failed"))?;
    if let Some(len) = len.filter(|&len| outcome.bytes != len) {
        bail!("tftp upload of {local_shown} to {shown} sent {} of {len} bytes", outcome.bytes);
    }
    Ok(format!(
        "uploaded {local_shown} as {shown}: {} over TFTP ({})",
        summary(outcome.bytes, outcome.bytes, started.elapsed()),
        negotiated(&outcome)
    ))
}
