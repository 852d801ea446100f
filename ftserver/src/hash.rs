//! File digests for `HASH` (draft-bryan-ftpext-hash) and the legacy `XSHA256`/`XSHA1`/`XMD5`/
//! `XCRC` commands: the algorithms, a limit on concurrent hash jobs, hashing that stops when
//! asked to (the client sent something or hung up, or the server is stopping), and a small
//! cache of recent digests of unchanged files (a client that verifies every download asks for
//! the same popular file again and again).

use crate::storage::{FileReader, Identity};
use sha2::Digest as _;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A digest algorithm a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256, the default (FEAT marks it with `*`).
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
    /// CRC-32 (IEEE), 8 hex digits.
    Crc32,
}

impl Algorithm {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [Algorithm; 4] = [Algorithm::Sha256, Algorithm::Sha1, Algorithm::Md5, Algorithm::Crc32];

    /// The name on the wire (IANA hash function textual names).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Md5 => "MD5",
            Algorithm::Crc32 => "CRC32",
        }
    }

    /// Looks an algorithm up by name, ignoring case.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The FEAT argument, the selected algorithm marked: `SHA-256*;SHA-1;MD5;CRC32`.
    pub fn feat_list(selected: Algorithm) -> String {
        let names: Vec<String> =
            Self::ALL.iter().map(|&a| format!("{}{}", a.name(), if a == selected { "*" } else { "" })).collect();
        names.join(";")
    }
}

/// A digest being computed, fed piece by piece (an upload hashed on its way to the disk).
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    /// Starts a digest.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            Algorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }

    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Crc32(h) => h.update(bytes),
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why hashing did not produce a digest.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Stopped early because `keep_going` said so.
    #[error("hashing aborted")]
    Aborted,
    /// Reading the file failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
}

/// Bytes read between two calls of `keep_going`.
const CHECK_EVERY: u64 = 8 << 20;

/// How many recent digests are remembered (a few hundred bytes each).
const CACHED: usize = 64;

/// The most recent digests of whole files, newest last, keyed on the contents' identity (see
/// [`Identity`]): a client that verifies every download asks for the same popular file again
/// and again. One per server, shared by its sessions.
#[derive(Debug, Default)]
pub struct DigestCache {
    entries: Mutex<VecDeque<(Identity, Algorithm, Vec<u8>)>>,
}

impl DigestCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<(Identity, Algorithm, Vec<u8>)>> {
        // Each update leaves the queue whole, so a poisoned one is still consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, id: &Identity, algorithm: Algorithm) -> Option<Vec<u8>> {
        let mut cache = self.entries();
        let at = cache.iter().position(|(i, a, _)| i == id && *a == algorithm)?;
        let entry = cache.remove(at)?;
        let digest = entry.2.clone();
        cache.push_back(entry);
        Some(digest)
    }

    /// Remembers `digest` as the digest of the contents `id` identifies (an upload hashed as
    /// it arrived, so the client's check afterwards costs no second read).
    pub fn remember(&self, id: Identity, algorithm: Algorithm, digest: &[u8]) {
        let mut cache = self.entries();
        cache.retain(|(i, a, _)| !(*i == id && *a == algorithm));
        if cache.len() >= CACHED {
            cache.pop_front();
        }
        cache.push_back((id, algorithm, digest.to_vec()));
    }

    /// The digest of a whole stored file of `size` bytes: the one its backend stored with it,
    /// else a remembered one of unchanged contents, else by reading it (see [`digest`]). A
    /// digest is only remembered when the file did not change while it was read.
    pub fn digest_file(
        &self,
        file: &mut dyn FileReader,
        size: u64,
        algorithm: Algorithm,
        keep_going: impl FnMut() -> bool,
    ) -> Result<(Vec<u8>, u64), HashError> {
        if let Some(stored) = file.stored_digest(algorithm.name()) {
            return Ok((stored, size));
        }
        let before = file.identity();
        if let Some(digest) = before.as_ref().and_then(|id| self.cached(id, algorithm)) {
            return Ok((digest, size));
        }
        let buffer = usize::try_from(size).map_or(HASH_BUFFER, |s| s.clamp(1, HASH_BUFFER));
        let (digest, total) = digest_all(file, algorithm, buffer, keep_going)?;
        if let Some(id) = before.filter(|id| total == size && file.identity().as_ref() == Some(id)) {
            self.remember(id, algorithm, &digest);
        }
        Ok((digest, total))
    }
}

/// Digests everything `input` yields. `keep_going` is asked every few MiB; when it returns false
/// hashing stops with [`HashError::Aborted`]. Memory use is one buffer of at most 1 MiB.
pub fn digest(
    input: &mut dyn Read,
    algorithm: Algorithm,
    keep_going: impl FnMut() -> bool,
) -> Result<(Vec<u8>, u64), HashError> {
    digest_all(input, algorithm, HASH_BUFFER, keep_going)
}

/// The read size for hashing; a smaller file gets a buffer of its own size (zeroing a megabyte
/// to hash 4 KiB showed in profiles of trees of small files).
const HASH_BUFFER: usize = 1 << 20;

fn digest_all(
    input: &mut dyn Read,
    algorithm: Algorithm,
    buffer: usize,
    mut keep_going: impl FnMut() -> bool,
) -> Result<(Vec<u8>, u64), HashError> {
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; buffer];
    let mut total = 0u64;
    let mut next_check = CHECK_EVERY;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok((hasher.finish(), total)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        if total >= next_check {
            next_check += CHECK_EVERY;
            if !keep_going() {
                return Err(HashError::Aborted);
            }
        }
    }
}

/// A limit on simultaneous hash jobs, so clients cannot keep every core busy.
#[derive(Debug)]
pub struct JobSlots {
    max: usize,
    used: AtomicUsize,
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot<'a>(&'a JobSlots);

impl JobSlots {
    /// Allows `max` jobs at once.
    pub fn new(max: usize) -> JobSlots {
        JobSlots { max, used: AtomicUsize::new(0) }
    }

    /// Takes a slot, or `None` when all are in use.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1)).ok()?;
        Some(Slot(self))
    }

    /// How many jobs are running now.
    pub fn running(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(algorithm: Algorithm, input: &[u8], expected: &str) {
        let (digest, len) = super::digest(&mut &input[..], algorithm, || true).unwrap();
        assert_eq!((hex(&digest), len), (expected.to_owned(), input.len() as u64), "{algorithm:?}");
    }

    #[test]
    fn digests_known_vectors() {
        check(Algorithm::Sha256, b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        check(Algorithm::Sha256, b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        check(Algorithm::Sha1, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d");
        check(Algorithm::Md5, b"abc", "900150983cd24fb0d6963f7d28e17f72");
        check(Algorithm::Crc32, b"123456789", "cbf43926");
        check(Algorithm::Crc32, b"", "00000000");
    }

    #[test]
    fn names_and_feat() {
        assert_eq!(Algorithm::feat_list(Algorithm::Sha256), "SHA-256*;SHA-1;MD5;CRC32");
        assert_eq!(Algorithm::feat_list(Algorithm::Crc32), "SHA-256;SHA-1;MD5;CRC32*");
        assert_eq!(Algorithm::from_name("sha-1"), Some(Algorithm::Sha1));
        assert_eq!(Algorithm::from_name("SHA-512"), None);
    }

    #[test]
    fn aborts_when_asked() {
        let big = vec![0u8; (CHECK_EVERY * 2) as usize];
        let mut asked = 0;
        let result = digest(&mut &big[..], Algorithm::Crc32, || {
            asked += 1;
            false
        });
        assert!(matches!(result, Err(HashError::Aborted)));
        assert_eq!(asked, 1);
    }

    /// Bytes whose identity a test sets, and that count how often they are read.
    struct Stored<'a> {
        bytes: &'a [u8],
        id: Option<Identity>,
        stored: Option<Vec<u8>>,
    }

    impl Read for Stored<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.bytes.read(buf)
        }
    }

    impl FileReader for Stored<'_> {
        fn identity(&self) -> Option<Identity> {
            self.id.clone()
        }

        fn stored_digest(&self, _algorithm: &str) -> Option<Vec<u8>> {
            self.stored.clone()
        }
    }

    #[test]
    fn remembers_digests_of_identified_contents_only() {
        let cache = DigestCache::default();
        let file = |bytes, id: Option<u64>| Stored { bytes, id: id.map(|i| Identity(vec![i])), stored: None };
        let (first, _) = cache.digest_file(&mut file(b"abc", Some(1)), 3, Algorithm::Crc32, || true).unwrap();
        assert_eq!(hex(&first), "352441c2");
        // The same identity is not read again (these bytes would give another digest).
        assert_eq!(cache.digest_file(&mut file(b"xyz", Some(1)), 3, Algorithm::Crc32, || true).unwrap().0, first);
        assert_eq!(cache.cached(&Identity(vec![1]), Algorithm::Md5), None);
        // Another identity, or none, is read.
        let (other, len) = cache.digest_file(&mut file(b"xyz", Some(2)), 3, Algorithm::Crc32, || true).unwrap();
        assert_eq!((other, len), (crc32fast::hash(b"xyz").to_be_bytes().to_vec(), 3));
        let (none, _) = cache.digest_file(&mut file(b"xyz", None), 3, Algorithm::Sha1, || true).unwrap();
        assert_eq!(hex(&none), "66b27417d37e024c46526c2f6d358a754fc552f3");
        assert_eq!(cache.entries().len(), 2);
        // A digest the backend stored wins without a read.
        let mut stored = Stored { bytes: b"", id: None, stored: Some(vec![7]) };
        assert_eq!(cache.digest_file(&mut stored, 3, Algorithm::Sha256, || true).unwrap(), (vec![7], 3));
        // The cache stays bounded.
        for i in 0..CACHED as u64 + 5 {
            cache.remember(Identity(vec![i]), Algorithm::Sha1, b"x");
        }
        assert!(cache.entries().len() <= CACHED);
    }

    #[test]
    fn limits_concurrent_jobs() {
        let slots = JobSlots::new(1);
        let first = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.running(), 1);
        drop(first);
        assert!(slots.try_acquire().is_some());
        assert_eq!(slots.running(), 0);
    }
}
