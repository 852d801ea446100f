//! Checking a finished download before it gets its final name: against `--checksum`, and
//! against the server's own digest when FEAT advertises HASH (draft-bryan-ftpext-hash) with
//! SHA-256. The local digest is computed while the server computes its own.

use crate::cli::{decode_hex, Algo};
use crate::get::GetOptions;
use crate::session::{ServerError, Session};
use anyhow::{bail, Context, Result};
use common::Command;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// The HASH algorithm name the client can check.
const SHA256: &str = "SHA-256";

/// Verifies the file at `path` (the finished temporary file) as `opts` asks.
pub fn check(session: &mut Session, opts: &GetOptions, path: &Path) -> Result<()> {
    let use_server = opts.verify && session.features.hash.iter().any(|a| a == SHA256);
    if opts.verify && !use_server {
        log::debug!("the server offers no SHA-256 HASH; not verifying against it");
    }
    if !use_server && opts.checksum.is_none() {
        return Ok(());
    }
    let (local, server) = std::thread::scope(|scope| {
        let local = scope.spawn(|| sha256_file(path));
        let server = if use_server { Some(server_sha256(session, &opts.remote)) } else { None };
        (local.join(), server)
    });
    let local = match local {
        Ok(result) => result?,
        Err(_) => bail!("the hashing thread panicked"),
    };
    if let Some(expected) = &opts.checksum {
        match expected.algo {
            Algo::Sha256 => compare("--checksum", &expected.digest, &local)?,
        }
    }
    if let Some(server) = server.transpose()? {
        compare("the server's SHA-256", &server, &local)?;
        log::info!("SHA-256 matches the server's: {}", hex(&local));
    }
    Ok(())
}

fn compare(source: &str, expected: &[u8], actual: &[u8]) -> Result<()> {
    if expected != actual {
        bail!("checksum mismatch: {source} is {} but the file's is {}", hex(expected), hex(actual));
    }
    Ok(())
}

/// Asks the server for the file's SHA-256: `OPTS HASH SHA-256` unless it is already selected,
/// then `HASH path` answered by `213 SHA-256 0-<end> <hex> <path>`.
fn server_sha256(session: &mut Session, remote: &str) -> Result<Vec<u8>> {
    if session.features.hash.first().map(String::as_str) != Some(SHA256) {
        session.expect_success(&Command::Opts(format!("HASH {SHA256}")), || "cannot select SHA-256 for HASH".into())?;
    }
    let reply = session.command(&Command::Hash(remote.to_owned()))?;
    if reply.code != 213 {
        return Err(ServerError(reply)).context("the server could not hash the file");
    }
    match parse_hash_reply(&reply.text()) {
        Some((algo, digest)) if algo.eq_ignore_ascii_case(SHA256) && digest.len() == 32 => Ok(digest),
        _ => Err(ServerError(reply)).context("unexpected HASH reply"),
    }
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
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
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
