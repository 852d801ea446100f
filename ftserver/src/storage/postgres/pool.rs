//! Database connections: a bounded pool that drops broken connections and opens new ones when
//! asked again, and the one place a database error becomes a [`StorageError`].

use crate::storage::StorageError;
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a request waits for a free connection when all `--storage-pool` are in use.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How long opening a connection may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle connection older than this is checked with a round trip before it is handed out:
/// the driver notices a server that went away only when it next uses a connection, and a
/// database restarted during a quiet spell should not fail the first operation after it.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);

/// How long that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// At most `max` connections to one database, shared by every session of a server. A
/// connection is checked out for one operation (or for one upload, which holds the lock on its
/// name through it) and comes back when its [`Conn`] is dropped, unless it broke; one broken
/// connection closes every idle one too (the server restarted, so they are all gone).
pub(super) struct Pool {
    config: Config,
    max: usize,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    /// Idle connections, each with when it was given back.
    idle: Vec<(Session, Instant)>,
    /// Connections open, idle or checked out.
    open: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the config: it holds the password.
        f.debug_struct("Pool").field("max", &self.max).finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of at most `max` (at least 1) connections made with `config`; none is opened yet.
    pub(super) fn new(mut config: Config, max: usize) -> Arc<Pool> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ftserver");
        }
        let state = Mutex::new(State { idle: Vec::new(), open: 0 });
        Arc::new(Pool { config, max: max.max(1), state, freed: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection: an idle one that is still open, else a new one while fewer than `max` are
    /// open, else the first one given back within [`POOL_WAIT`].
    pub(super) fn get(self: &Arc<Self>) -> Result<Conn, StorageError> {
        let mut state = self.lock();
        let deadline = Instant::now() + POOL_WAIT;
        loop {
            while let Some((mut session, since)) = state.idle.pop() {
                if !session.client.is_closed() && since.elapsed() < CHECK_AFTER_IDLE {
                    return Ok(Conn { pool: Arc::clone(self), session: Some(session) });
                }
                if session.client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                drop(state);
                if session.client.is_valid(CHECK_TIMEOUT).is_ok() {
                    return Ok(Conn { pool: Arc::clone(self), session: Some(session) });
                }
                drop(session);
                state = self.lock();
                state.open -= 1;
                self.freed.notify_one();
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.config.connect(NoTls) {
                    Ok(client) => {
                        let session = Session { client, statements: HashMap::new() };
                        Ok(Conn { pool: Arc::clone(self), session: Some(session) })
                    }
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(StorageError::Unavailable(error_text(&e)))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StorageError::Unavailable(format!("all {} database connections are busy", self.max)));
            }
            state = self.freed.wait_timeout(state, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// A connection and the statements prepared on it.
struct Session {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// A checked-out connection; it goes back to the pool on drop (or is closed if it broke).
pub(super) struct Conn {
    pool: Arc<Pool>,
    session: Option<Session>,
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.session.as_ref().expect("present until drop").client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.session.as_mut().expect("present until drop").client
    }
}

/// Statements by their text, prepared once per connection: a query then costs one round trip
/// instead of two (prepare, execute).
impl Conn {
    /// The statement for `sql`, prepared on this connection at its first use.
    pub(super) fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        let session = self.session.as_mut().expect("present until drop");
        if let Some(statement) = session.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = session.client.prepare(sql)?;
        session.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// [`Client::query`] with a prepared statement.
    pub(super) fn query_p(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.query(&statement, params)
    }

    /// [`Client::query_opt`] with a prepared statement.
    pub(super) fn query_opt_p(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.query_opt(&statement, params)
    }

    /// [`Client::query_one`] with a prepared statement.
    pub(super) fn query_one_p(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.query_one(&statement, params)
    }

    /// [`Client::execute`] with a prepared statement.
    pub(super) fn execute_p(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.prepared(sql)?;
        self.execute(&statement, params)
    }
}

impl Conn {
    /// Closes the connection instead of giving it back (it may hold a lock or a transaction
    /// that could not be ended).
    pub(super) fn discard(mut self) {
        if let Some(session) = self.session.take() {
            drop(session);
            self.pool.lock().open -= 1;
            self.pool.freed.notify_one();
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else { return };
        let mut state = self.pool.lock();
        if session.client.is_closed() {
            state.open -= 1;
            let stale = state.idle.len();
            state.idle.clear();
            state.open -= stale;
            drop(state);
            self.pool.freed.notify_all();
        } else {
            state.idle.push((session, Instant::now()));
            drop(state);
            self.pool.freed.notify_one();
        }
    }
}

/// A database error as a client may read it: the server's message, or what broke the
/// connection, without Rust's "(os error N)" suffix. Never contains the password: neither the
/// driver nor the server repeats it.
pub(super) fn error_text(e: &postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        // The driver's text already ends with its cause ("error connecting to server: ...").
        None => e.to_string(),
    };
    strip_os_error(&text)
}

fn strip_os_error(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(at) = out.find(" (os error ") {
        match out[at..].find(')') {
            Some(end) => out.replace_range(at..at + end + 1, ""),
            None => break,
        }
    }
    out
}

/// Is this error the connection (or the server) going away, rather than a statement failing?
pub(super) fn is_connection_error(e: &postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [&SqlState::ADMIN_SHUTDOWN, &SqlState::CRASH_SHUTDOWN, &SqlState::CANNOT_CONNECT_NOW].contains(&code)
        }
        None => true,
    }
}

/// The storage error for a database error that has no more specific meaning where it
/// happened: the database gone is [`StorageError::Unavailable`], a full disk is
/// [`StorageError::Full`], anything else is [`StorageError::Io`] with the server's words.
pub(super) fn db_error(e: postgres::Error) -> StorageError {
    if is_connection_error(&e) {
        return StorageError::Unavailable(error_text(&e));
    }
    match e.code() {
        Some(code) if *code == SqlState::DISK_FULL => {
            log::warn!("database: {}", error_text(&e));
            StorageError::Full(std::io::Error::from_raw_os_error(nix::libc::ENOSPC))
        }
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => StorageError::PermissionDenied,
        _ => StorageError::Io(std::io::Error::other(format!("database: {}", error_text(&e)))),
    }
}

/// Is this a unique constraint (the name is taken) failing?
pub(super) fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Is this a foreign key failing (a directory removed meanwhile, or one that still has entries)?
pub(super) fn is_foreign_key_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_are_dropped() {
        for (text, want) in [
            ("connection refused (os error 111)", "connection refused"),
            ("a (os error 2): b (os error 3)", "a: b"),
            ("plain", "plain"),
        ] {
            assert_eq!(strip_os_error(text), want, "{text}");
        }
    }
}
