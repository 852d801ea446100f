//! Uploads into the database: a row in `ft.uploads` that no listing shows, chunk rows written
//! as the bytes arrive (each with the row's new size, in one statement, so an interrupted
//! upload is resumable from exactly what was stored), and the commit: one transaction that
//! gives the contents a name in `ft.entries` and writes the upload log.
//!
//! The connection an upload writes with holds a session advisory lock on its row for as long
//! as the upload lasts: a second writer of the same name, through any instance, gets `Busy`,
//! and if the instance dies the server drops the lock with the connection, so the interrupted
//! upload can be resumed elsewhere.

use super::pool::{db_error, is_foreign_key_violation, Conn, Pool};
use super::schema::{CHUNK, UPLOAD_LOCK};
use crate::storage::{Identity, Start, StorageError, Upload, UploadSpec, Uploader};
use common::path::VirtualPath;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::sync::Arc;

/// A storage error carried through `io::Write` and `io::Read`: a full database keeps the
/// `StorageFull` kind the session recognises; everything else wraps the [`StorageError`],
/// which a caller can get back with `get_ref()` and `downcast_ref`.
pub(super) fn to_io(e: StorageError) -> io::Error {
    match e {
        StorageError::Full(e) => e,
        StorageError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// The second advisory lock key for an upload row.
fn lock_key(id: i64) -> i32 {
    (id % i64::from(i32::MAX)) as i32
}

/// Removes the rows of TFTP uploads whose writer is gone (an instance that crashed): those
/// whose lock nobody holds. Returns how many.
pub(super) fn sweep_private(client: &mut postgres::Client) -> Result<u64, StorageError> {
    let mut tx = client.transaction().map_err(db_error)?;
    let gone = tx
        .execute(
            "DELETE FROM ft.uploads WHERE private AND pg_try_advisory_xact_lock($1, (id % 2147483647)::integer)",
            &[&UPLOAD_LOCK],
        )
        .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(gone)
}

/// Removes interrupted uploads started more than `age` ago whose lock nobody holds (no
/// instance is writing them). Returns how many.
pub(super) fn expire(client: &mut postgres::Client, age: std::time::Duration) -> Result<u64, StorageError> {
    let mut tx = client.transaction().map_err(db_error)?;
    let gone = tx
        .execute(
            "DELETE FROM ft.uploads WHERE started < now() - make_interval(secs => $2) \
             AND pg_try_advisory_xact_lock($1, (id % 2147483647)::integer)",
            &[&UPLOAD_LOCK, &age.as_secs_f64()],
        )
        .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(gone)
}

/// An upload in progress; see the module documentation.
pub(super) struct PgUpload {
    /// Present until the upload ends (commit, discard or drop).
    conn: Option<Conn>,
    /// The `ft.uploads` row.
    id: i64,
    content: i64,
    dir: i64,
    name: String,
    /// The final path, for the upload log.
    path: String,
    overwrite: bool,
    uploader: Uploader,
    offset: u64,
    /// The bytes of the upload so far, from byte 0.
    written: u64,
    /// The chunk row `buf` becomes.
    seq: i32,
    /// At most [`CHUNK`] bytes not stored yet.
    buf: Vec<u8>,
    /// The digest, when the upload started at byte 0; a resumed one reads its contents once at
    /// commit instead.
    hasher: Option<Sha256>,
    /// Remove the row when the upload ends without a commit (private, or failed to start).
    remove: bool,
    /// A write failed: nothing more is stored through this upload.
    failed: bool,
}

impl PgUpload {
    /// Begins an upload to `path` as [`crate::storage::Storage::begin_upload`] describes.
    pub(super) fn begin(pool: &Arc<Pool>, path: &VirtualPath, spec: UploadSpec) -> Result<PgUpload, StorageError> {
        let name = path.file_name().ok_or(StorageError::IsRoot)?.to_owned();
        if name.len() > 255 {
            return Err(StorageError::NameTooLong);
        }
        let mut conn = pool.get()?;
        let parent = path.parent();
        let parts: Vec<&str> = parent.components().collect();
        let row = conn
            .query_opt_p(
                "SELECT d.id, d.kind, e.kind, e.content, e.size FROM ft.entries d \
                 LEFT JOIN ft.entries e ON e.parent = d.id AND e.name = $2 \
                 WHERE d.id = ft.lookup($1::text[])",
                &[&parts, &name],
            )
            .map_err(db_error)?
            .ok_or(StorageError::NotFound)?;
        if row.get::<_, &str>(1) != "d" {
            return Err(StorageError::NotFound);
        }
        let dir: i64 = row.get(0);
        let existing: Option<String> = row.get(2);
        let file = match existing.as_deref() {
            Some("f") if !spec.overwrite => return Err(StorageError::Exists),
            Some("f") => Some((row.get::<_, i64>(3), row.get::<_, i64>(4) as u64)),
            Some(_) => return Err(StorageError::ExistsNotAFile),
            None => None,
        };
        let private = spec.start == Start::Private;
        let (id, content, size, created) = if private {
            // Locked in the statement that creates it, so no other instance's sweep (see
            // `sweep_private`) ever sees it unlocked.
            let row = conn
                .query_one_p(
                    "INSERT INTO ft.uploads (parent, name, private) VALUES ($1, $2, true) \
                     RETURNING id, content, pg_try_advisory_lock($3, (id % 2147483647)::integer)",
                    &[&dir, &name, &UPLOAD_LOCK],
                )
                .map_err(insert_error)?;
            let (id, locked): (i64, bool) = (row.get(0), row.get(2));
            if !locked {
                // Only another row whose id has the same lock key: vanishingly rare.
                let _ = conn.execute_p("DELETE FROM ft.uploads WHERE id = $1", &[&id]);
                return Err(StorageError::Busy);
            }
            (id, row.get(1), 0, true)
        } else {
            claim(&mut conn, dir, &name)?
        };
        let mut upload = PgUpload {
            conn: Some(conn),
            id,
            content,
            dir,
            name,
            path: path.to_string(),
            overwrite: spec.overwrite,
            uploader: spec.uploader,
            offset: 0,
            written: 0,
            seq: 0,
            buf: Vec::new(),
            hasher: None,
            // Until the start is settled: a failed start leaves no row it created.
            remove: created,
            failed: false,
        };
        let offset = match (spec.start, created, file) {
            (Start::Private | Start::Fresh | Start::Resume(0), _, _) => 0,
            (Start::Resume(_), true, None) => return Err(StorageError::NothingToResume),
            (Start::Append, false, Some(_)) => return Err(StorageError::PartialPending { size }),
            // Only reachable with `overwrite`: change a copy, never the file in place.
            (Start::Resume(_) | Start::Append, true, Some((content, size))) => {
                upload.copy_from(content, size)?;
                match spec.start {
                    Start::Resume(offset) => offset,
                    _ => size,
                }
            }
            (Start::Resume(offset), false, _) => offset,
            (Start::Append, _, None) => size,
        };
        let stored = if created && file.is_none() { 0 } else { upload.stored_size()? };
        if offset > stored {
            return Err(StorageError::BeyondPartial { offset, size: stored });
        }
        upload.cut(offset, stored)?;
        upload.remove = private;
        Ok(upload)
    }

    fn conn(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until the upload ends")
    }

    /// The size the row records now.
    fn stored_size(&mut self) -> Result<u64, StorageError> {
        let id = self.id;
        let row = self.conn().query_one_p("SELECT size FROM ft.uploads WHERE id = $1", &[&id]).map_err(db_error)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Copies a complete file's chunks into this upload (APPE or REST onto a file, with
    /// `overwrite`): server-side, the bytes never leave the database.
    fn copy_from(&mut self, source: i64, size: u64) -> Result<(), StorageError> {
        let (id, content) = (self.id, self.content);
        self.conn()
            .execute_p(
                "WITH u AS (UPDATE ft.uploads SET size = $3 WHERE id = $4 RETURNING id) \
                 INSERT INTO ft.chunks (content, seq, data) \
                 SELECT $1, c.seq, c.data FROM ft.chunks c, u WHERE c.content = $2",
                &[&content, &source, &(size as i64), &id],
            )
            .map_err(db_error)?;
        Ok(())
    }

    /// Cuts the stored upload to `offset` bytes and positions writing there: the chunk that
    /// holds `offset`, if it is not a whole one, comes back into the buffer.
    fn cut(&mut self, offset: u64, stored: u64) -> Result<(), StorageError> {
        let chunk = CHUNK as u64;
        let seq = (offset / chunk) as i32;
        let keep = (offset % chunk) as i32;
        let (id, content) = (self.id, self.content);
        self.buf = Vec::with_capacity(CHUNK);
        if keep > 0 {
            let row = self
                .conn
                .as_mut()
                .expect("present")
                .query_one_p(
                    "SELECT substring(data FROM 1 FOR $3) FROM ft.chunks WHERE content = $1 AND seq = $2",
                    &[&content, &seq, &keep],
                )
                .map_err(db_error)?;
            self.buf.extend_from_slice(row.get::<_, &[u8]>(0));
        }
        if offset < stored || keep > 0 {
            self.conn()
                .execute_p(
                    "WITH d AS (DELETE FROM ft.chunks WHERE content = $1 AND seq >= $2) \
                     UPDATE ft.uploads SET size = $3 WHERE id = $4",
                    &[&content, &seq, &(i64::from(seq) * CHUNK as i64), &id],
                )
                .map_err(db_error)?;
        }
        self.seq = seq;
        self.offset = offset;
        self.written = offset;
        self.hasher = (offset == 0).then(Sha256::new);
        Ok(())
    }

    /// Stores the buffer as the next chunk row, with the row's new size, in one statement.
    fn store(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let size = i64::from(self.seq) * CHUNK as i64 + self.buf.len() as i64;
        let conn = self.conn.as_mut().expect("present until the upload ends");
        let stored = conn
            .execute_p(
                "WITH u AS (UPDATE ft.uploads SET size = $4 WHERE id = $5 RETURNING id) \
                 INSERT INTO ft.chunks (content, seq, data) SELECT $1, $2, $3 FROM u",
                &[&self.content, &self.seq, &self.buf, &size, &self.id],
            )
            .map_err(db_error)?;
        if stored == 0 {
            // The row went: its directory was removed.
            return Err(StorageError::NotFound);
        }
        self.seq += 1;
        self.buf.clear();
        Ok(())
    }

    /// Ends the upload: removes the row if asked, gives up the lock, returns the connection.
    fn finish(&mut self, remove: bool) {
        let Some(mut conn) = self.conn.take() else { return };
        if remove {
            let _ = conn.execute_p("DELETE FROM ft.uploads WHERE id = $1", &[&self.id]);
        }
        match conn.execute_p("SELECT pg_advisory_unlock($1, $2)", &[&UPLOAD_LOCK, &lock_key(self.id)]) {
            Ok(_) => drop(conn),
            // Only closing the connection frees the lock now.
            Err(_) => conn.discard(),
        }
    }

    fn commit_inner(&mut self) -> Result<Identity, StorageError> {
        if self.failed {
            return Err(StorageError::Io(io::Error::other("the upload failed earlier")));
        }
        self.store()?;
        let (content, written) = (self.content, self.written);
        let digest = match self.hasher.take() {
            Some(hasher) => hasher.finalize().to_vec(),
            None => digest_stored(self.conn(), content, written)?,
        };
        let size = written as i64;
        let (id, dir, name, overwrite) = (self.id, self.dir, self.name.clone(), self.overwrite);
        let (path, uploader) = (self.path.clone(), self.uploader.clone());
        // One statement, so one transaction: the name, the end of the upload row (whose
        // contents the file now owns) and the log row, or none of them.
        let commit = if overwrite {
            "WITH e AS ( \
                 INSERT INTO ft.entries (parent, name, kind, size, sha256, content) \
                 VALUES ($1, $2, 'f', $3, $4, $5) \
                 ON CONFLICT (parent, name) DO UPDATE \
                 SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256, content = EXCLUDED.content, mtime = now() \
                 WHERE ft.entries.kind = 'f' RETURNING id), \
             d AS (DELETE FROM ft.uploads WHERE id = $6 AND EXISTS (SELECT 1 FROM e)), \
             l AS (INSERT INTO ft.upload_log (path, size, sha256, client, port, username, protocol) \
                   SELECT $7::text, $3, $4, $8::inet, $9::integer, $10::text, $11::text FROM e) \
             SELECT id FROM e"
        } else {
            "WITH e AS ( \
                 INSERT INTO ft.entries (parent, name, kind, size, sha256, content) \
                 VALUES ($1, $2, 'f', $3, $4, $5) \
                 ON CONFLICT (parent, name) DO NOTHING RETURNING id), \
             d AS (DELETE FROM ft.uploads WHERE id = $6 AND EXISTS (SELECT 1 FROM e)), \
             l AS (INSERT INTO ft.upload_log (path, size, sha256, client, port, username, protocol) \
                   SELECT $7::text, $3, $4, $8::inet, $9::integer, $10::text, $11::text FROM e) \
             SELECT id FROM e"
        };
        let row = self
            .conn()
            .query_opt_p(
                commit,
                &[
                    &dir,
                    &name,
                    &size,
                    &digest,
                    &content,
                    &id,
                    &path,
                    &uploader.peer.ip(),
                    &i32::from(uploader.peer.port()),
                    &uploader.user,
                    &uploader.protocol.name(),
                ],
            )
            .map_err(insert_error)?;
        let Some(row) = row else {
            if overwrite {
                return Err(StorageError::ExistsNotAFile);
            }
            self.remove = true;
            return Err(StorageError::Exists);
        };
        let entry: i64 = row.get(0);
        Ok(Identity(vec![entry as u64, content as u64]))
    }
}

/// Takes the upload row of a name (creating it if there is none) and locks it; `Busy` if
/// another connection holds it. Returns `(id, content, size, created)`.
fn claim(conn: &mut Conn, dir: i64, name: &str) -> Result<(i64, i64, u64, bool), StorageError> {
    // A row may go between finding and locking it (its upload committed): look again.
    for _ in 0..3 {
        let created = conn
            .query_opt_p(
                "INSERT INTO ft.uploads (parent, name, private) VALUES ($1, $2, false) \
                 ON CONFLICT (parent, name) WHERE NOT private DO NOTHING RETURNING id",
                &[&dir, &name],
            )
            .map_err(insert_error)?
            .is_some();
        let Some(row) = conn
            .query_opt_p(
                "SELECT id, pg_try_advisory_lock($3, (id % 2147483647)::integer) FROM ft.uploads \
                 WHERE parent = $1 AND name = $2 AND NOT private",
                &[&dir, &name, &UPLOAD_LOCK],
            )
            .map_err(db_error)?
        else {
            continue;
        };
        let (id, locked): (i64, bool) = (row.get(0), row.get(1));
        if !locked {
            return Err(StorageError::Busy);
        }
        // Read after the lock: what the previous writer stored is complete now.
        match conn.query_opt_p("SELECT content, size FROM ft.uploads WHERE id = $1", &[&id]).map_err(db_error)? {
            Some(row) => return Ok((id, row.get(0), row.get::<_, i64>(1) as u64, created)),
            None => {
                conn.execute_p("SELECT pg_advisory_unlock($1, $2)", &[&UPLOAD_LOCK, &lock_key(id)])
                    .map_err(db_error)?;
            }
        }
    }
    Err(StorageError::Busy)
}

/// A directory removed meanwhile makes inserts below it fail their foreign key.
fn insert_error(e: postgres::Error) -> StorageError {
    if is_foreign_key_violation(&e) {
        StorageError::NotFound
    } else {
        db_error(e)
    }
}

/// The SHA-256 of stored contents (`size` bytes), read once in chunk batches.
fn digest_stored(conn: &mut Conn, content: i64, size: u64) -> Result<Vec<u8>, StorageError> {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(4 * CHUNK);
    let mut seq = 0;
    let mut read = 0u64;
    while read < size {
        buf.clear();
        let got = super::read::fetch(conn, content, seq, 4, &mut buf)?;
        if got == 0 {
            return Err(StorageError::Io(io::Error::other("the upload's stored bytes are incomplete")));
        }
        hasher.update(&buf);
        read += buf.len() as u64;
        seq += got;
    }
    Ok(hasher.finalize().to_vec())
}

impl Write for PgUpload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("the upload failed earlier"));
        }
        let take = (CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&data[..take]);
        }
        self.written += take as u64;
        if self.buf.len() == CHUNK {
            self.store().map_err(|e| {
                self.failed = true;
                to_io(e)
            })?;
        }
        Ok(take)
    }

    /// Chunk rows are whole chunks but the last: a short buffer is stored when the upload
    /// ends, not here.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Upload for PgUpload {
    fn offset(&self) -> u64 {
        self.offset
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn commit(mut self: Box<Self>) -> Result<Option<Identity>, StorageError> {
        let result = self.commit_inner();
        let remove = self.remove;
        self.finish(remove);
        result.map(Some)
    }

    fn discard(mut self: Box<Self>) {
        self.finish(true);
    }
}

impl Drop for PgUpload {
    /// Without a commit: a private upload goes; a resumable one keeps every byte received.
    fn drop(&mut self) {
        if self.conn.is_none() {
            return;
        }
        if !self.remove && !self.failed && self.store().is_err() {
            self.failed = true;
        }
        let remove = self.remove;
        self.finish(remove);
    }
}
