//! Checking a finished download before it gets its final name: against `--checksum`, and
//! against the server's own SHA-256 when FEAT advertises HASH (draft-bryan-ftpext-hash) or the
//! legacy XSHA256. For big files the server is asked on a second control connection while the
//! download runs, so its hashing overlaps the transfer.

use crate::cli::{decode_hex, Algo};
use crate::get::GetOptions;
use crate::interrupt;
use crate::session::{ServerError, Session, TICK};
use anyhow::{bail, Context, Result};
use common::Command;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The HASH algorithm name the client can check.
const SHA256: &str = "SHA-256";

/// How the server can tell us a file's SHA-256, if at all (`None` also when not `verify`ing).
fn server_method(session: &Session, verify: bool) -> Option<Method> {
    if !verify {
        return None;
    }
    if session.features.hash.iter().any(|a| a == SHA256) {
        Some(Method::Hash)
    } else if session.features.xsha256 {
        Some(Method::Xsha256)
    } else {
        log::debug!("the server offers neither HASH SHA-256 nor XSHA256; not verifying against it");
        None
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    /// `HASH path` (draft-bryan-ftpext-hash).
    Hash,
    /// The legacy `XSHA256 path` (ProFTPD mod_digest and others).
    Xsha256,
}

/// Files at least this big get their server digest early, on a second control connection
/// while the download runs; smaller ones are not worth the extra login.
pub const EARLY_HASH_MIN: u64 = 16 << 20;

/// The server's digest being computed on a second control connection during the download.
#[derive(Debug)]
pub struct EarlyDigest(mpsc::Receiver<Result<Vec<u8>>>);

/// Starts asking for the server's SHA-256 of a `len`-byte file on a second connection, so the
/// server hashes while it sends and the check costs almost no time after the transfer.
/// `None` when there is nothing to ask, the file is small or the size is unknown.
pub fn start_early(session: &Session, opts: &GetOptions, len: Option<u64>) -> Option<EarlyDigest> {
    let method = server_method(session, opts.verify)?;
    let len = len.filter(|&len| len >= EARLY_HASH_MIN)?;
    let login = opts.login.clone()?;
    let remote = opts.remote.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let mut second = login.connect()?;
            second.feat()?;
            let wait = second.timeout() + Duration::from_secs(len / SLOWEST_HASH_RATE);
            let digest = ask_sha256(&mut second, method, &remote, wait)?;
            second.quit();
            Ok(digest)
        })();
        let _ = tx.send(result);
    });
    Some(EarlyDigest(rx))
}

impl EarlyDigest {
    /// Waits for the digest, noticing Ctrl-C. The second connection has its own timeouts.
    fn wait(self) -> Result<Vec<u8>> {
        loop {
            interrupt::check()?;
            match self.0.recv_timeout(TICK) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the hashing connection ended without an answer"),
            }
        }
    }
}

/// The server's digest: from the early request when there is one and it worked, else asked on
/// the main connection now.
fn server_digest(
    session: &mut Session,
    opts: &GetOptions,
    method: Method,
    early: Option<EarlyDigest>,
    len: u64,
) -> Option<Vec<u8>> {
    if let Some(early) = early {
        match early.wait() {
            Ok(digest) => return Some(digest),
            Err(e) => log::info!("asking again on the main connection: the early hash request failed: {e:#}"),
        }
    }
    server_sha256(session, method, &opts.remote, len)
}

/// Verifies the file at `path` (the finished temporary file) as `opts` asks. The local digest
/// is computed on another thread while the server's arrives.
pub fn check(session: &mut Session, opts: &GetOptions, path: &Path, early: Option<EarlyDigest>) -> Result<()> {
    let method = server_method(session, opts.verify);
    if method.is_none() && opts.checksum.is_none() {
        return Ok(());
    }
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    let (local, server) = std::thread::scope(|scope| {
        let local = scope.spawn(|| sha256_file(path));
        let server = method.and_then(|m| server_digest(session, opts, m, early, len));
        (local.join(), server)
    });
    let local = match local {
        Ok(result) => result?,
        Err(_) => bail!("the hashing thread panicked"),
    };
    compare_all(opts, &local, server)
}

/// Will [`check`] or [`check_digest`] need the local SHA-256?
pub fn needs_digest(session: &Session, opts: &GetOptions) -> bool {
    opts.checksum.is_some() || server_method(session, opts.verify).is_some()
}

/// A writer that computes the SHA-256 of what passes through it, when enabled. The hashing
/// runs on a helper thread fed with copies of the written chunks, so it overlaps with the
/// next read from the network instead of adding to it (SHA-256 costs about as much CPU as
/// moving the bytes).
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hashing: Hashing,
}

/// Where the hashing happens: inline until the data passes [`THREAD_AFTER`] bytes (a thread
/// per small file of a tree would cost more than it saves), then on the helper thread.
#[derive(Debug)]
enum Hashing {
    Off,
    Inline(Sha256, u64),
    Threaded(Helper),
}

/// Bytes hashed inline before the helper thread takes over.
const THREAD_AFTER: u64 = 4 << 20;

#[derive(Debug)]
struct Helper {
    chunks: mpsc::SyncSender<Vec<u8>>,
    spare: mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<Sha256>,
}

/// Chunks that may wait for the hashing thread: enough to ride out a slow moment, little
/// memory (a few megabytes).
const QUEUED_CHUNKS: usize = 4;

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`; hashing costs CPU, so it only happens when `enabled`.
    pub fn new(inner: W, enabled: bool) -> Self {
        Self::continuing(inner, enabled.then(Sha256::new))
    }

    /// Wraps `inner`, continuing `hasher` (which may already hold a resumed file's first
    /// bytes); `None` hashes nothing.
    pub fn continuing(inner: W, hasher: Option<Sha256>) -> Self {
        let hashing = hasher.map_or(Hashing::Off, |hasher| Hashing::Inline(hasher, 0));
        HashingWriter { inner, hashing }
    }

    /// The digest of everything written (`None` when not enabled), and the wrapped writer.
    pub fn finish(self) -> (W, Option<Vec<u8>>) {
        let digest = match self.hashing {
            Hashing::Off => None,
            Hashing::Inline(hasher, _) => Some(hasher.finalize().to_vec()),
            Hashing::Threaded(helper) => {
                drop(helper.chunks);
                helper.thread.join().ok().map(|hasher| hasher.finalize().to_vec())
            }
        };
        (self.inner, digest)
    }
}

impl Helper {
    fn spawn(mut hasher: Sha256) -> Helper {
        let (chunks, queue) = mpsc::sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let (recycle, spare) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for chunk in queue {
                hasher.update(&chunk);
                let _ = recycle.send(chunk);
            }
            hasher
        });
        Helper { chunks, spare, thread }
    }

    fn hash(&self, data: &[u8]) -> std::io::Result<()> {
        let mut chunk = self.spare.try_recv().unwrap_or_default();
        chunk.clear();
        chunk.extend_from_slice(data);
        self.chunks.send(chunk).map_err(|_| std::io::Error::other("the hashing thread stopped"))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        match &mut self.hashing {
            Hashing::Off => {}
            Hashing::Inline(hasher, done) => {
                hasher.update(&buf[..n]);
                *done += n as u64;
                if *done >= THREAD_AFTER {
                    let hasher = std::mem::take(hasher);
                    self.hashing = Hashing::Threaded(Helper::spawn(hasher));
                }
            }
            Hashing::Threaded(helper) => helper.hash(&buf[..n])?,
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Verifies a download whose SHA-256 was computed on the way (output to stdout).
pub fn check_digest(
    session: &mut Session,
    opts: &GetOptions,
    local: &[u8],
    len: u64,
    early: Option<EarlyDigest>,
) -> Result<()> {
    let server = server_method(session, opts.verify).and_then(|m| server_digest(session, opts, m, early, len));
    compare_all(opts, local, server)
}

/// Can the server tell the SHA-256 of a file (and should it be asked)?
pub fn server_can_hash(session: &Session, verify: bool) -> bool {
    server_method(session, verify).is_some()
}

/// Checks an uploaded `len`-byte file `remote` against the SHA-256 of the local bytes. A
/// server that cannot hash only costs the check (with a warning), as for downloads.
pub fn check_upload(session: &mut Session, remote: &str, local: &[u8], len: u64) -> Result<()> {
    let Some(method) = server_method(session, true) else { return Ok(()) };
    if let Some(server) = server_sha256(session, method, remote, len) {
        compare("the server's SHA-256", &server, local)?;
        log::info!("SHA-256 of the upload matches the server's: {}", hex(local));
    }
    Ok(())
}

/// The SHA-256 state after the first `len` bytes of `file` (read from its current position).
pub fn sha256_prefix(file: &mut impl Read, len: u64, name: &Path) -> Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).with_context(|| format!("cannot read {}", name.display()))?;
        if n == 0 {
            bail!("{} is shorter than {len} bytes", name.display());
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

fn compare_all(opts: &GetOptions, local: &[u8], server: Option<Vec<u8>>) -> Result<()> {
    if let Some(expected) = &opts.checksum {
        match expected.algo {
            Algo::Sha256 => compare("--checksum", &expected.digest, local)?,
        }
    }
    if let Some(server) = server {
        compare("the server's SHA-256", &server, local)?;
        log::info!("SHA-256 matches the server's: {}", hex(local));
    }
    Ok(())
}

fn compare(source: &str, expected: &[u8], actual: &[u8]) -> Result<()> {
    if expected != actual {
        bail!("checksum mismatch: {source} is {} but the file's is {}", hex(expected), hex(actual));
    }
    Ok(())
}

/// How fast a server is assumed to hash at worst, to size the wait for its answer.
const SLOWEST_HASH_RATE: u64 = 20 << 20;

/// Asks the server for the SHA-256 of the `len`-byte file. A server that cannot answer (an
/// error reply, a timeout) only costs the check, with a warning: that is no evidence of a bad
/// file, which the byte count and the 226 already vouched for.
fn server_sha256(session: &mut Session, method: Method, remote: &str, len: u64) -> Option<Vec<u8>> {
    let wait = session.timeout() + Duration::from_secs(len / SLOWEST_HASH_RATE);
    match ask_sha256(session, method, remote, wait) {
        Ok(digest) => Some(digest),
        Err(e) => {
            log::warn!("not verified against the server's SHA-256: {e:#}");
            None
        }
    }
}

/// With HASH: `OPTS HASH SHA-256` unless it is already selected, then `HASH path` answered by
/// `213 SHA-256 0-<end> <hex> <path>`. With XSHA256: a 2xx reply whose text holds the 64 hex
/// digits.
fn ask_sha256(session: &mut Session, method: Method, remote: &str, wait: Duration) -> Result<Vec<u8>> {
    let reply = match method {
        Method::Hash => {
            if session.features.hash.first().map(String::as_str) != Some(SHA256) {
                let opts = Command::Opts(format!("HASH {SHA256}"));
                session.expect_success(&opts, || "cannot select SHA-256 for HASH".into())?;
            }
            session.command_within(&Command::Hash(remote.to_owned()), wait)?
        }
        Method::Xsha256 => session.command_within(&Command::Xsha256(remote.to_owned()), wait)?,
    };
    if !reply.is_success() {
        return Err(ServerError(reply)).context("the server could not hash the file");
    }
    let digest = match method {
        Method::Hash => parse_hash_reply(&reply.text())
            .filter(|(algo, digest)| algo.eq_ignore_ascii_case(SHA256) && digest.len() == 32)
            .map(|(_, digest)| digest),
        Method::Xsha256 => reply.text().split_whitespace().filter(|w| w.len() == 64).find_map(decode_hex),
    };
    digest.ok_or_else(|| anyhow::Error::new(ServerError(reply)).context("unexpected reply to the hash request"))
}

/// Splits the text of a `213` HASH reply, `SHA-256 0-49 <hex> <path>`, into the algorithm and
/// the digest.
fn parse_hash_reply(text: &str) -> Option<(&str, Vec<u8>)> {
    let mut fields = text.split_whitespace();
    let algo = fields.next()?;
    let range = fields.next()?;
    if !range.starts_with("0-") {
        return None;
    }
    Some((algo, decode_hex(fields.next()?)?))
}

/// The SHA-256 of a local file, read in large chunks.
pub fn sha256_file(path: &Path) -> Result<Vec<u8>> {
    sha256_file_until(path, &AtomicBool::new(false))
}

/// Like [`sha256_file`], but gives up (with an error) once `stop` is set or Ctrl-C is pressed.
pub fn sha256_file_until(path: &Path, stop: &AtomicBool) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        interrupt::check()?;
        if stop.load(Ordering::Relaxed) {
            bail!("hashing {} stopped", path.display());
        }
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hasher.finalize().to_vec());
        }
        hasher.update(&buf[..n]);
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hash_replies() {
        let hex64 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let text = format!("SHA-256 0-0 {hex64} my file.txt");
        let (algo, digest) = parse_hash_reply(&text).unwrap();
        assert_eq!((algo, hex(&digest)), ("SHA-256", hex64.to_owned()));
        assert!(parse_hash_reply("SHA-256 10-20 00").is_none());
        assert!(parse_hash_reply("SHA-256 0-1 zz").is_none());
        assert!(parse_hash_reply("SHA-256").is_none());
    }

    #[test]
    fn hashing_writers_hash_what_they_write() {
        // Inline at first, then on the helper thread.
        let mut w = HashingWriter::new(Vec::new(), true);
        for i in 0..100 {
            w.write_all(&[i as u8; 100_000]).unwrap();
        }
        let (out, digest) = w.finish();
        assert_eq!(Some(Sha256::digest(&out).to_vec()), digest);
        assert_eq!(out.len(), 10_000_000);
        // Only what passes through counts, not what the inner writer held before.
        let mut w = HashingWriter::new(b"before".to_vec(), true);
        w.write_all(b"abc").unwrap();
        assert_eq!(w.finish().1, Some(Sha256::digest(b"abc").to_vec()));
        let (_, none) = HashingWriter::new(Vec::new(), false).finish();
        assert_eq!(none, None);
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hex(&sha256_file(&path).unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
