//! Reading a file's contents from its chunk rows: a few chunks per query, from the offset on,
//! so memory stays flat and a read at an offset never fetches what lies before it.

use super::pool::{db_error, Conn, Pool};
use super::schema::CHUNK;
use crate::storage::{FileReader, Identity, StorageError};
use postgres::types::ToSql;
use std::io::{self, Read};
use std::sync::Arc;

/// How many chunk rows one query fetches (1 MiB): enough that a query's round trip costs
/// little next to the bytes it brings, few enough that a reader holds little memory.
const READ_CHUNKS: i32 = 4;

/// Appends the chunks `first..first + count` of `content` to `out`, checking that they follow
/// each other; returns how many there were (fewer at the end of the contents).
pub(super) fn fetch(
    conn: &mut Conn,
    content: i64,
    first: i32,
    count: i32,
    out: &mut Vec<u8>,
) -> Result<i32, StorageError> {
    let params: [&(dyn ToSql + Sync); 3] = [&content, &first, &(first + count)];
    let statement = conn
        .prepared("SELECT seq, data FROM ft.chunks WHERE content = $1 AND seq >= $2 AND seq < $3 ORDER BY seq")
        .map_err(db_error)?;
    let mut rows = conn.query_raw(&statement, params).map_err(db_error)?;
    let mut expected = first;
    while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows).map_err(db_error)? {
        if row.get::<_, i32>(0) != expected {
            return Err(changed());
        }
        out.extend_from_slice(row.get::<_, &[u8]>(1));
        expected += 1;
    }
    Ok(expected - first)
}

/// The error for contents that vanished while being read (the file was deleted or replaced).
fn changed() -> StorageError {
    StorageError::Io(io::Error::other("the file was replaced or deleted while being read"))
}

/// A file being read: fetches [`READ_CHUNKS`] chunks at a time with a pooled connection it
/// holds only for the query, so a slow client pins no connection.
pub(super) struct PgReader {
    pool: Arc<Pool>,
    content: i64,
    size: u64,
    /// The file offset just past what `buf` holds.
    fetched: u64,
    buf: Vec<u8>,
    /// How much of `buf` has been read.
    taken: usize,
    sha256: Option<Vec<u8>>,
    id: i64,
}

impl PgReader {
    /// A reader of `content` (`size` bytes) from `offset`; `sha256` and `id` are the file's.
    pub(super) fn new(pool: Arc<Pool>, content: i64, size: u64, offset: u64, sha256: Option<Vec<u8>>, id: i64) -> Self {
        PgReader { pool, content, size, fetched: offset, buf: Vec::new(), taken: 0, sha256, id }
    }

    fn refill(&mut self) -> Result<(), StorageError> {
        let chunk = CHUNK as u64;
        let first = (self.fetched / chunk) as i32;
        let skip = (self.fetched % chunk) as usize;
        self.buf.clear();
        let mut conn = self.pool.get()?;
        fetch(&mut conn, self.content, first, READ_CHUNKS, &mut self.buf)?;
        drop(conn);
        let end = (first as u64 * chunk + self.buf.len() as u64).min(self.size);
        if end <= self.fetched {
            return Err(changed());
        }
        self.buf.truncate((end - first as u64 * chunk) as usize);
        self.taken = skip;
        self.fetched = end;
        Ok(())
    }
}

impl Read for PgReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.taken == self.buf.len() {
            if self.fetched >= self.size {
                return Ok(0);
            }
            self.refill().map_err(super::upload::to_io)?;
        }
        let n = out.len().min(self.buf.len() - self.taken);
        out[..n].copy_from_slice(&self.buf[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

impl FileReader for PgReader {
    fn identity(&self) -> Option<Identity> {
        Some(Identity(vec![self.id as u64, self.content as u64]))
    }

    fn stored_digest(&self, algorithm: &str) -> Option<Vec<u8>> {
        algorithm.eq_ignore_ascii_case("SHA-256").then(|| self.sha256.clone()).flatten()
    }
}
