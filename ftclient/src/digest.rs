//! Digest primitives, with no connection in sight: the algorithms (`Algo`), running several
//! digests over the same bytes (`Hashers`), readers and writers that hash what passes through
//! them, hashing a file or a prefix of one, and comparing digests. The HASH protocol and the
//! policy of when a download is checked against what live in `verify`.

use crate::interrupt;
use anyhow::{bail, Context, Result};
use sha2::Digest as _;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// A digest algorithm the client can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algo {
    /// CRC-32 (IEEE 802.3), 4 bytes, big-endian as servers print it.
    Crc32,
    /// SHA-256 (FIPS 180-4).
    Sha256,
    /// SHA-1 (FIPS 180-4).
    Sha1,
    /// MD5 (RFC 1321).
    Md5,
}

impl Algo {
    /// Every algorithm, cheapest first: the order `--hash auto` prefers them in.
    pub const CHEAPEST_FIRST: [Algo; 4] = [Algo::Crc32, Algo::Sha256, Algo::Sha1, Algo::Md5];

    /// The name in FEAT, `OPTS HASH` and `213` replies (IANA hash function textual names).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Crc32 => "CRC32",
            Algo::Sha256 => "SHA-256",
            Algo::Sha1 => "SHA-1",
            Algo::Md5 => "MD5",
        }
    }

    /// Looks an algorithm up by name, ignoring case and the dash (`sha256`, `SHA-256`).
    pub fn from_name(name: &str) -> Option<Algo> {
        let wanted = name.trim().replace('-', "");
        Self::CHEAPEST_FIRST.into_iter().find(|a| a.name().replace('-', "").eq_ignore_ascii_case(&wanted))
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algo::Crc32 => 4,
            Algo::Sha256 => 32,
            Algo::Sha1 => 20,
            Algo::Md5 => 16,
        }
    }
}

/// One running digest.
#[derive(Debug, Clone)]
enum Hasher {
    Crc32(crc32fast::Hasher),
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
}

impl Hasher {
    fn new(algo: Algo) -> Hasher {
        match algo {
            Algo::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
        }
    }
}

/// Several digests of the same bytes, computed together.
#[derive(Debug, Clone, Default)]
pub struct Hashers(Vec<(Algo, Hasher)>);

impl Hashers {
    /// Fresh digests for `algos`.
    pub fn new(algos: &[Algo]) -> Hashers {
        Hashers(algos.iter().map(|&a| (a, Hasher::new(a))).collect())
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.iter_mut().for_each(|(_, h)| h.update(bytes));
    }

    /// Only CRC32, which runs at memory speed: not worth a thread.
    fn cheap(&self) -> bool {
        self.0.iter().all(|(a, _)| *a == Algo::Crc32)
    }

    fn finish(self) -> Digests {
        Digests(self.0.into_iter().map(|(a, h)| (a, h.finish())).collect())
    }
}

/// Finished digests, by algorithm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests(Vec<(Algo, Vec<u8>)>);

impl Digests {
    /// The digest for `algo`, if it was computed.
    pub fn get(&self, algo: Algo) -> Option<&[u8]> {
        self.0.iter().find(|(a, _)| *a == algo).map(|(_, d)| d.as_slice())
    }
}

/// A reader that computes digests of what passes through it: an upload from a pipe is read
/// once, so it is hashed on its way to the server.
pub struct HashingReader<R> {
    inner: R,
    hashers: Hashers,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner` with `algos`.
    pub fn new(inner: R, algos: &[Algo]) -> Self {
        HashingReader { inner, hashers: Hashers::new(algos) }
    }

    /// Hashes what is read from `inner`, continuing `hashers` (which may hold the digests of
    /// what came before, as for a resumed upload).
    pub fn continuing(inner: R, hashers: Hashers) -> Self {
        HashingReader { inner, hashers }
    }

    /// The digests of everything read.
    pub fn finish(self) -> Digests {
        self.hashers.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hashers.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that computes digests of what passes through it. Expensive digests run on a
/// helper thread fed with copies of the written chunks, so they overlap with the next read
/// from the network instead of adding to it; CRC32 (memory speed) stays inline.
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
    Inline(Hashers, u64),
    Threaded(Helper),
}

/// Bytes hashed inline before the helper thread takes over.
const THREAD_AFTER: u64 = 4 << 20;

#[derive(Debug)]
struct Helper {
    chunks: mpsc::SyncSender<Vec<u8>>,
    spare: mpsc::Receiver<Vec<u8>>,
    thread: std::thread::JoinHandle<Hashers>,
}

/// Chunks that may wait for the hashing thread: enough to ride out a slow moment, little
/// memory (a few megabytes).
const QUEUED_CHUNKS: usize = 4;

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, computing `algos` (none: hashing nothing).
    pub fn new(inner: W, algos: &[Algo]) -> Self {
        Self::continuing(inner, Hashers::new(algos))
    }

    /// Wraps `inner`, continuing `hashers` (which may already hold a resumed file's first
    /// bytes).
    pub fn continuing(inner: W, hashers: Hashers) -> Self {
        let hashing = if hashers.0.is_empty() { Hashing::Off } else { Hashing::Inline(hashers, 0) };
        HashingWriter { inner, hashing }
    }

    /// The digests of everything written (`None` when hashing nothing), and the wrapped
    /// writer.
    pub fn finish(self) -> (W, Option<Digests>) {
        let digests = match self.hashing {
            Hashing::Off => None,
            Hashing::Inline(hashers, _) => Some(hashers.finish()),
            Hashing::Threaded(helper) => {
                drop(helper.chunks);
                helper.thread.join().ok().map(Hashers::finish)
            }
        };
        (self.inner, digests)
    }
}

impl Helper {
    fn spawn(mut hashers: Hashers) -> Helper {
        let (chunks, queue) = mpsc::sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let (recycle, spare) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            for chunk in queue {
                hashers.update(&chunk);
                let _ = recycle.send(chunk);
            }
            hashers
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
            Hashing::Inline(hashers, done) => {
                hashers.update(&buf[..n]);
                *done += n as u64;
                if *done >= THREAD_AFTER && !hashers.cheap() {
                    let hashers = std::mem::take(hashers);
                    self.hashing = Hashing::Threaded(Helper::spawn(hashers));
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

/// The digests of the first `len` bytes of `file` (read from its current position).
pub fn hash_prefix(file: &mut impl Read, len: u64, algos: &[Algo], name: &Path) -> Result<Hashers> {
    let mut hashers = Hashers::new(algos);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want]).with_context(|| format!("cannot read {}", name.display()))?;
        if n == 0 {
            bail!("{} is shorter than {len} bytes", name.display());
        }
        hashers.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hashers)
}

/// A digest that did not match.
#[derive(Debug, thiserror::Error)]
#[error("checksum mismatch: {source_name} is {expected} but the file's is {actual}")]
pub struct Mismatch {
    /// Where the expected digest came from (`--checksum`, `the server's SHA-256`).
    pub source_name: String,
    /// The expected digest, hex.
    pub expected: String,
    /// The file's digest, hex.
    pub actual: String,
}

/// Fails with [`Mismatch`] unless `actual` is `expected`; `source` says where `expected` came
/// from.
pub fn compare(source: &str, expected: &[u8], actual: &[u8]) -> Result<()> {
    if expected != actual {
        return Err(Mismatch { source_name: source.to_owned(), expected: hex(expected), actual: hex(actual) }.into());
    }
    Ok(())
}

/// The digests of a local file, read in large chunks.
pub fn hash_file(path: &Path, algos: &[Algo]) -> Result<Digests> {
    hash_file_until(path, algos, &AtomicBool::new(false))
}

/// Like [`hash_file`], but gives up (with an error) once `stop` is set or Ctrl-C is pressed.
pub fn hash_file_until(path: &Path, algos: &[Algo], stop: &AtomicBool) -> Result<Digests> {
    let mut file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hashers = Hashers::new(algos);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        interrupt::check()?;
        if stop.load(Ordering::Relaxed) {
            bail!("hashing {} stopped", path.display());
        }
        let n = file.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hashers.finish());
        }
        hashers.update(&buf[..n]);
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes a hex string (either case); `None` when it is not hex or has an odd length.
pub fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    hex.chunks(2).map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_writers_hash_what_they_write() {
        // Inline at first, then on the helper thread.
        for algos in [&[Algo::Sha256, Algo::Crc32][..], &[Algo::Crc32]] {
            let mut w = HashingWriter::new(Vec::new(), algos);
            for i in 0..100 {
                w.write_all(&[i as u8; 100_000]).unwrap();
            }
            let (out, digests) = w.finish();
            let digests = digests.unwrap();
            assert_eq!(out.len(), 10_000_000);
            assert_eq!(digests.get(Algo::Crc32), Some(&crc32fast::hash(&out).to_be_bytes()[..]));
            if algos.contains(&Algo::Sha256) {
                assert_eq!(digests.get(Algo::Sha256), Some(&sha2::Sha256::digest(&out)[..]));
            }
        }
        // Only what passes through counts, not what the inner writer held before.
        let mut w = HashingWriter::new(b"before".to_vec(), &[Algo::Sha256]);
        w.write_all(b"abc").unwrap();
        assert_eq!(w.finish().1.unwrap().get(Algo::Sha256), Some(&sha2::Sha256::digest(b"abc")[..]));
        let (_, none) = HashingWriter::new(Vec::new(), &[]).finish();
        assert_eq!(none, None);
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let all = hash_file(&path, &Algo::CHEAPEST_FIRST).unwrap();
        for (algo, expected) in [
            (Algo::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (Algo::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Algo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (Algo::Crc32, "352441c2"),
        ] {
            assert_eq!(hex(all.get(algo).unwrap()), expected, "{algo:?}");
        }
        let mut prefix = hash_prefix(&mut &b"abcdef"[..], 3, &[Algo::Crc32], &path).unwrap();
        prefix.update(b"");
        assert_eq!(prefix.finish().get(Algo::Crc32).map(hex).as_deref(), Some("352441c2"));
    }
}
