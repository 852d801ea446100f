//! Checking a finished transfer before a download gets its final name: against `--checksum`,
//! and against the server's own digest when FEAT advertises HASH (draft-bryan-ftpext-hash) or
//! a legacy X-command (XCRC, XSHA256, XSHA1, XMD5). The automatic check catches accidental
//! damage (truncation, text-mode mangling, bad disks, memory or middleboxes), not a lying
//! server, so it uses the cheapest digest the server offers: CRC32, then SHA-256, SHA-1, MD5.
//! For big files the server is asked on a second control connection while the download runs,
//! so its hashing overlaps the transfer. The digests themselves are computed in `digest`.

use crate::cli::{Checksum, HashChoice};
use crate::digest::{self, decode_hex, hash_file, Algo, Digests};
use crate::interrupt;
use crate::session::{Login, ServerError, Session, TICK};
use anyhow::{bail, Context, Result};
use common::Command;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// What a download is checked against, and how to ask the server about it: the part of a
/// download's options this module reads.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The remote path, as named in HASH or an X-command.
    pub remote: &'a str,
    /// A digest the file must have (`--checksum`).
    pub checksum: Option<&'a Checksum>,
    /// Which digest to ask the server for.
    pub hash: HashChoice,
    /// How to log in again for a second connection that asks for the server's digest while
    /// the download runs (`None`: ask afterwards on the main connection).
    pub login: Option<&'a Login>,
}

/// How the server is asked for a file's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `HASH path` (draft-bryan-ftpext-hash), after `OPTS HASH` selected this algorithm (the
    /// reply names the one the server really used).
    Hash(Algo),
    /// A legacy command: `XCRC path`, `XSHA256 path`, `XSHA1 path` or `XMD5 path`.
    Legacy(Algo),
}

impl Method {
    /// The algorithm the server is expected to answer with.
    pub fn algo(self) -> Algo {
        match self {
            Method::Hash(algo) | Method::Legacy(algo) => algo,
        }
    }

    /// Its digest is CRC32, which runs at memory speed: worth no thread of its own.
    pub fn cheap(self) -> bool {
        self.algo() == Algo::Crc32
    }
}

/// Decides how the server will be asked for digests on this connection (`None`: not at all,
/// because `verify` is off or the server cannot hash). With HASH, the algorithm is selected
/// with `OPTS HASH` once per connection; when the server refuses, its default is used.
pub fn plan(session: &mut Session, verify: bool, choice: HashChoice) -> Result<Option<Method>> {
    if !verify {
        return Ok(None);
    }
    let pick = |offered: &[Algo]| match choice {
        HashChoice::Auto => Algo::CHEAPEST_FIRST.into_iter().find(|a| offered.contains(a)),
        HashChoice::Only(algo) => offered.contains(&algo).then_some(algo),
    };
    let hash: Vec<Algo> = session.features.hash.iter().filter_map(|name| Algo::from_name(name)).collect();
    if let Some(algo) = pick(&hash) {
        return select(session, algo).map(|algo| Some(Method::Hash(algo)));
    }
    if let Some(algo) = pick(&session.features.x_hash) {
        return Ok(Some(Method::Legacy(algo)));
    }
    match choice {
        HashChoice::Only(algo) => {
            log::warn!("the server offers no {} digest; not verifying against it", algo.name())
        }
        HashChoice::Auto => log::debug!("the server offers neither HASH nor an X-digest command; not verifying"),
    }
    Ok(None)
}

/// Makes `algo` the connection's HASH algorithm with `OPTS HASH` unless it already is.
/// Returns the algorithm the server will probably answer with.
fn select(session: &mut Session, algo: Algo) -> Result<Algo> {
    let current = session.hash_selected.or_else(|| session.features.hash_default.as_deref().and_then(Algo::from_name));
    if current == Some(algo) {
        return Ok(algo);
    }
    let reply = session.command(&Command::Opts(format!("HASH {}", algo.name())))?;
    if reply.is_success() {
        session.hash_selected = Some(algo);
        return Ok(algo);
    }
    log::info!("OPTS HASH {} refused ({}); using the server's default", algo.name(), ServerError(reply));
    session.hash_selected = current;
    Ok(current.unwrap_or(algo))
}

/// The algorithms a download computes on the way in: the server's and `--checksum`'s.
pub fn wanted(expected: &Expected<'_>, method: Option<Method>) -> Vec<Algo> {
    let mut algos: Vec<Algo> = method.map(Method::algo).into_iter().collect();
    if let Some(checksum) = expected.checksum {
        if !algos.contains(&checksum.algo) {
            algos.push(checksum.algo);
        }
    }
    algos
}

/// Files at least this big get their server digest early, on a second control connection
/// while the download runs; smaller ones are not worth the extra login. A server hashes at
/// hundreds of MB/s (CRC32 at several GB/s) and often has the digest cached, so below this
/// size asking on the same connection after the transfer costs less than a second session:
/// with the limit at 16 MiB, 50 concurrent 20 MiB downloads logged in 100 times.
pub const EARLY_HASH_MIN: u64 = 128 << 20;

/// The server's digest being computed on a second control connection during the download.
#[derive(Debug)]
pub struct EarlyDigest(mpsc::Receiver<Result<(Algo, Vec<u8>)>>);

/// Starts asking for the server's digest of a `len`-byte file on a second connection, so the
/// server hashes while it sends and the check costs almost no time after the transfer.
/// `None` when there is nothing to ask, the file is small or the size is unknown.
pub fn start_early(expected: &Expected<'_>, method: Option<Method>, len: Option<u64>) -> Option<EarlyDigest> {
    method?;
    let len = len.filter(|&len| len >= EARLY_HASH_MIN)?;
    let login = expected.login?.clone();
    let (remote, choice) = (expected.remote.to_owned(), expected.hash);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = (|| {
            let mut second = login.connect()?;
            second.feat()?;
            let Some(method) = plan(&mut second, true, choice)? else {
                bail!("the second connection offers no digest");
            };
            let wait = second.timeout() + Duration::from_secs(len / SLOWEST_HASH_RATE);
            let digest = ask(&mut second, method, &remote, wait)?;
            second.quit();
            Ok(digest)
        })();
        let _ = tx.send(result);
    });
    Some(EarlyDigest(rx))
}

/// Files up to this size have their digest asked for just before the RETR, in the same
/// write (pipelined): the server hashes them in no time, and a tree of small files saves a
/// round trip per file.
pub const AHEAD_MAX: u64 = 1 << 20;

/// Should the server's digest of this download be asked for ahead of the RETR?
pub fn ask_ahead(method: Option<Method>, size: Option<u64>, offset: u64) -> Option<Method> {
    method.filter(|_| offset == 0 && size.is_some_and(|size| size <= AHEAD_MAX))
}

/// Reads the answer to a [`hash_command`] pipelined ahead of the RETR: a digest to check once the file is complete.
/// Only a broken control connection is an error; a refusal is left to the check, which asks
/// again.
pub fn read_ahead(session: &mut Session, method: Method) -> Result<EarlyDigest> {
    let reply = session.read_reply()?;
    let (tx, rx) = mpsc::channel();
    let _ = tx.send(parse_answer(method, reply));
    Ok(EarlyDigest(rx))
}

impl EarlyDigest {
    /// Waits for the digest, noticing Ctrl-C. The second connection has its own timeouts.
    fn wait(self) -> Result<(Algo, Vec<u8>)> {
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
    remote: &str,
    method: Method,
    early: Option<EarlyDigest>,
    len: u64,
) -> Option<(Algo, Vec<u8>)> {
    if let Some(early) = early {
        match early.wait() {
            Ok(digest) => return Some(digest),
            Err(e) => log::info!(
                "asking again on the main connection: the early hash request failed: {}",
                crate::report::render(&e)
            ),
        }
    }
    server_hash(session, method, remote, len)
}

/// Verifies the file at `path` (a finished temporary file, or a complete file found by
/// `--resume`) as `expected` asks, reading it. The local digest is computed on another thread
/// while the server's arrives.
pub fn check(
    session: &mut Session,
    expected: &Expected<'_>,
    method: Option<Method>,
    path: &Path,
    early: Option<EarlyDigest>,
) -> Result<()> {
    let algos = wanted(expected, method);
    if algos.is_empty() {
        return Ok(());
    }
    let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    let (local, server) = std::thread::scope(|scope| {
        let local = scope.spawn(|| hash_file(path, &algos));
        let server = method.and_then(|m| server_digest(session, expected.remote, m, early, len));
        (local.join(), server)
    });
    let local = match local {
        Ok(result) => result?,
        Err(_) => bail!("the hashing thread panicked"),
    };
    compare_all(expected.checksum, &local, server, Some(path))
}

/// Verifies a download whose digests were computed on the way in. `path` is where the bytes
/// can be read again (`None` for stdout or a device), in case the server answers with another
/// algorithm than the one computed.
pub fn check_digests(
    session: &mut Session,
    expected: &Expected<'_>,
    method: Option<Method>,
    local: &Digests,
    path: Option<&Path>,
    len: u64,
    early: Option<EarlyDigest>,
) -> Result<()> {
    let server = method.and_then(|m| server_digest(session, expected.remote, m, early, len));
    compare_all(expected.checksum, local, server, path)
}

/// Checks an uploaded `len`-byte file `remote` against the digests of the local file (read
/// again from `path` when the server answers with another algorithm). A server that cannot
/// hash only costs the check (with a warning), as for downloads.
pub fn check_upload(
    session: &mut Session,
    method: Method,
    remote: &str,
    local: &Digests,
    path: Option<&Path>,
    len: u64,
) -> Result<()> {
    let server = server_hash(session, method, remote, len);
    compare_all(None, local, server, path)
}

/// [`check_upload`] with the server's reply to a [`hash_command`] sent earlier.
pub fn check_upload_answer(method: Method, reply: common::Reply, local: &Digests, path: Option<&Path>) -> Result<()> {
    let server = match parse_answer(method, reply) {
        Ok(digest) => Some(digest),
        Err(e) => {
            log::warn!("not verified against the server's digest: {}", crate::report::render(&e));
            None
        }
    };
    compare_all(None, local, server, path)
}

/// Compares `--checksum` and the server's answer with the local digests. When the server
/// answered with an algorithm that was not computed, the file at `path` is hashed with it.
fn compare_all(
    checksum: Option<&Checksum>,
    local: &Digests,
    server: Option<(Algo, Vec<u8>)>,
    path: Option<&Path>,
) -> Result<()> {
    if let Some(expected) = checksum {
        let Some(actual) = local.get(expected.algo) else {
            bail!("the {} digest was not computed", expected.algo.name())
        };
        digest::compare("--checksum", &expected.digest, actual)?;
    }
    let Some((algo, server)) = server else { return Ok(()) };
    let again;
    let actual = match (local.get(algo), path) {
        (Some(actual), _) => actual,
        (None, Some(path)) => {
            log::info!("the server answered with {}: hashing {} again", algo.name(), path.display());
            again = hash_file(path, &[algo])?;
            again.get(algo).unwrap_or_default()
        }
        (None, None) => {
            log::warn!("not verified: the server answered with {}, which was not computed on the way", algo.name());
            return Ok(());
        }
    };
    digest::compare(&format!("the server's {}", algo.name()), &server, actual)?;
    log::info!("{} matches the server's: {}", algo.name(), digest::hex(actual));
    Ok(())
}

/// How fast a server is assumed to hash at worst, to size the wait for its answer.
const SLOWEST_HASH_RATE: u64 = 20 << 20;

/// Asks the server for the digest of the `len`-byte file. A server that cannot answer (an
/// error reply, a timeout) only costs the check, with a warning: that is no evidence of a bad
/// file, which the byte count and the 226 already vouched for.
fn server_hash(session: &mut Session, method: Method, remote: &str, len: u64) -> Option<(Algo, Vec<u8>)> {
    let wait = session.timeout() + Duration::from_secs(len / SLOWEST_HASH_RATE);
    match ask(session, method, remote, wait) {
        Ok(digest) => Some(digest),
        Err(e) => {
            log::warn!("not verified against the server's digest: {}", crate::report::render(&e));
            None
        }
    }
}

/// With HASH: `HASH path`, answered by `213 <algo> 0-<end> <hex> <path>` (the algorithm it
/// names is the one that counts). With a legacy command: a 2xx reply whose text holds the hex
/// digest.
fn ask(session: &mut Session, method: Method, remote: &str, wait: Duration) -> Result<(Algo, Vec<u8>)> {
    let reply = session.command_within(&hash_command(method, remote), wait)?;
    parse_answer(method, reply)
}

/// The command that asks for the digest of `remote`.
pub fn hash_command(method: Method, remote: &str) -> Command {
    let path = remote.to_owned();
    match method {
        Method::Hash(_) => Command::Hash(path),
        Method::Legacy(Algo::Crc32) => Command::Xcrc(path),
        Method::Legacy(Algo::Sha256) => Command::Xsha256(path),
        Method::Legacy(Algo::Sha1) => Command::Xsha1(path),
        Method::Legacy(Algo::Md5) => Command::Xmd5(path),
    }
}

/// The algorithm and digest in the reply to [`hash_command`].
fn parse_answer(method: Method, reply: common::Reply) -> Result<(Algo, Vec<u8>)> {
    if !reply.is_success() {
        return Err(ServerError(reply)).context("the server could not hash the file");
    }
    let digest = match method {
        Method::Hash(_) => parse_hash_reply(&reply.text())
            .and_then(|(name, digest)| Algo::from_name(name).map(|algo| (algo, digest)))
            .filter(|(algo, digest)| digest.len() == algo.digest_len()),
        Method::Legacy(algo) => reply
            .text()
            .split_whitespace()
            .filter(|w| w.len() == 2 * algo.digest_len())
            .find_map(decode_hex)
            .map(|digest| (algo, digest)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hex;

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
}
