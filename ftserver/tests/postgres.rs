//! The PostgreSQL storage backend against a real PostgreSQL: a throwaway cluster per test
//! binary (`TestCluster`), a fresh database per test, the `Storage` trait driven directly.
//! A missing PostgreSQL fails every test with one line; nothing is skipped.

use common::path::VirtualPath;
use ftserver::storage::postgres::cluster::TestCluster;
use ftserver::storage::postgres::{ConnectError, PgStorage};
use ftserver::storage::{Kind, Protocol, Start, Storage, StorageError, Upload, UploadSpec, Uploader};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::sync::{Arc, Barrier};

const CHUNK: usize = ftserver::storage::postgres::schema::CHUNK;

/// A shared cluster and a new database on it.
fn database() -> (Arc<TestCluster>, String) {
    let cluster = TestCluster::shared().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database().unwrap_or_else(|e| panic!("{e}"));
    (cluster, url)
}

fn connect(url: &str) -> PgStorage {
    PgStorage::connect(url, 4).unwrap_or_else(|e| panic!("{e}"))
}

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect for checking")
}

fn p(path: &str) -> VirtualPath {
    VirtualPath::parse(path).unwrap()
}

fn uploader(protocol: Protocol) -> Uploader {
    Uploader {
        peer: "192.0.2.7:1234".parse().unwrap(),
        user: (protocol == Protocol::Ftp).then(|| "anonymous".to_owned()),
        protocol,
    }
}

fn spec(start: Start, overwrite: bool) -> UploadSpec {
    let protocol = if start == Start::Private { Protocol::Tftp } else { Protocol::Ftp };
    UploadSpec { start, overwrite, uploader: uploader(protocol) }
}

/// Bytes that differ at every offset, so a misplaced chunk shows.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn write_all(upload: &mut Box<dyn Upload>, bytes: &[u8]) {
    for piece in bytes.chunks(65_536 + 17) {
        upload.write_all(piece).unwrap();
    }
}

fn put(storage: &PgStorage, path: &str, bytes: &[u8], overwrite: bool) -> Result<(), StorageError> {
    let mut upload = storage.begin_upload(&p(path), spec(Start::Fresh, overwrite))?;
    write_all(&mut upload, bytes);
    upload.commit().map(drop)
}

fn get(storage: &PgStorage, path: &str, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    storage.open_read(&p(path), offset).unwrap().reader.read_to_end(&mut out).unwrap();
    out
}

fn count(url: &str, query: &str) -> i64 {
    sql(url).query_one(query, &[]).unwrap().get(0)
}

#[test]
fn a_multi_mib_file_round_trips_from_any_offset() {
    let (_cluster, url) = database();
    let storage = connect(&url);
    let data = pattern(5 * 1024 * 1024 + 123, 1);
    put(&storage, "/big.bin", &data, false).unwrap();
    let meta = storage.stat(&p("/big.bin")).unwrap();
    assert_eq!((meta.kind, meta.len), (Kind::File, data.len() as u64));
    for offset in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * 1024 * 1024 + 7, data.len() - 1, data.len()] {
        assert!(get(&storage, "/big.bin", offset as u64) == data[offset..], "offset {offset}");
    }
    let opened = storage.open_read(&p("/big.bin"), 0).unwrap();
    assert_eq!(opened.reader.stored_digest("SHA-256").unwrap(), Sha256::digest(&data).to_vec());
    assert!(opened.reader.stored_digest("MD5").is_none());
    assert!(opened.reader.identity().is_some());
    let beyond = storage.open_read(&p("/big.bin"), data.len() as u64 + 1);
    assert!(matches!(beyond, Err(StorageError::BeyondEnd { .. })), "{beyond:?}");

    put(&storage, "/empty", b"", false).unwrap();
    assert_eq!(get(&storage, "/empty", 0), b"");
    assert_eq!(storage.stat(&p("/empty")).unwrap().len, 0);
    put(&storage, "/one-chunk", &data[..CHUNK], false).unwrap();
    assert!(get(&storage, "/one-chunk", 0) == data[..CHUNK]);
}

#[test]
fn directories_list_sorted_and_are_created_removed_and_renamed() {
    let (_cluster, url) = database();
    let s = connect(&url);
    s.mkdir(&p("/a")).unwrap();
    s.mkdir(&p("/a/b")).unwrap();
    for name in ["/a/z file", "/a/émoji 🦀", "/a/c"] {
        put(&s, name, name.as_bytes(), false).unwrap();
    }
    let names = |dir: &str| s.list(&p(dir)).unwrap().into_iter().map(|(n, m)| (n, m.kind)).collect::<Vec<_>>();
    assert_eq!(names("/"), [("a".to_owned(), Kind::Dir)]);
    assert_eq!(
        names("/a"),
        [
            ("b".to_owned(), Kind::Dir),
            ("c".to_owned(), Kind::File),
            ("z file".to_owned(), Kind::File),
            ("émoji 🦀".to_owned(), Kind::File)
        ]
    );
    assert!(matches!(s.list(&p("/a/c")), Err(StorageError::NotADirectory)));
    assert!(matches!(s.list(&p("/nope")), Err(StorageError::NotFound)));
    assert!(matches!(s.stat(&p("/a/c/x")), Err(StorageError::NotFound)));
    s.require_dir(&p("/a/b")).unwrap();
    assert!(matches!(s.require_dir(&p("/a/c")), Err(StorageError::NotADirectory)));
    assert!(matches!(s.require_dir(&p("/a/none")), Err(StorageError::NotFound)));

    assert!(matches!(s.mkdir(&p("/a")), Err(StorageError::AlreadyExists)));
    assert!(matches!(s.mkdir(&p("/a/c")), Err(StorageError::AlreadyExists)));
    assert!(matches!(s.mkdir(&p("/x/y")), Err(StorageError::NotFound)));
    assert!(matches!(s.mkdir(&p("/")), Err(StorageError::IsRoot)));
    assert!(matches!(s.remove_dir(&p("/a")), Err(StorageError::DirectoryNotEmpty)));
    assert!(matches!(s.remove_dir(&p("/a/c")), Err(StorageError::NotADirectory)));
    assert!(matches!(s.remove_file(&p("/a/b")), Err(StorageError::NotAFile)));
    assert!(matches!(s.remove_file(&p("/a/gone")), Err(StorageError::NotFound)));
    assert!(matches!(s.remove_dir(&p("/")), Err(StorageError::IsRoot)));

    // Renames: a file onto a file replaces it, a directory moves with its contents, never
    // below itself; the root never moves.
    s.rename(&p("/a/c"), &p("/a/z file")).unwrap();
    assert_eq!(get(&s, "/a/z file", 0), b"/a/c");
    assert!(matches!(s.stat(&p("/a/c")), Err(StorageError::NotFound)));
    s.rename(&p("/a"), &p("/moved")).unwrap();
    assert_eq!(get(&s, "/moved/émoji 🦀", 0), "/a/émoji 🦀".as_bytes());
    assert!(s.rename(&p("/moved"), &p("/moved/b/inside")).is_err());
    assert!(matches!(s.rename(&p("/moved/z file"), &p("/moved/b")), Err(StorageError::Io(_))));
    assert!(matches!(s.rename(&p("/moved/b"), &p("/moved/z file")), Err(StorageError::NotADirectory)));
    assert!(matches!(s.check_rename_source(&p("/")), Err(StorageError::IsRoot)));
    assert!(matches!(s.check_rename_source(&p("/none")), Err(StorageError::NotFound)));
    s.check_rename_source(&p("/moved/b")).unwrap();

    for file in ["/moved/z file", "/moved/émoji 🦀"] {
        s.remove_file(&p(file)).unwrap();
    }
    s.remove_dir(&p("/moved/b")).unwrap();
    s.remove_dir(&p("/moved")).unwrap();
    assert!(s.list(&p("/")).unwrap().is_empty());
    // Deleting files deleted their contents too (the triggers).
    assert_eq!(count(&url, "SELECT count(*) FROM ft.chunks"), 0);
}

#[test]
fn an_upload_is_invisible_until_its_commit_and_never_replaces_a_file() {
    let (_cluster, url) = database();
    let s = connect(&url);
    let mut upload = s.begin_upload(&p("/f"), spec(Start::Fresh, false)).unwrap();
    write_all(&mut upload, &pattern(CHUNK * 2 + 5, 2));
    assert!(s.list(&p("/")).unwrap().is_empty());
    assert!(matches!(s.stat(&p("/f")), Err(StorageError::NotFound)));
    assert_eq!(s.partial_size(&p("/f")), Some(CHUNK as u64 * 2));
    // Another writer of the name, meanwhile, is told to come back later.
    assert!(matches!(s.begin_upload(&p("/f"), spec(Start::Fresh, false)), Err(StorageError::Busy)));
    upload.commit().unwrap();
    assert_eq!(s.partial_size(&p("/f")), None);
    assert_eq!(s.stat(&p("/f")).unwrap().len, CHUNK as u64 * 2 + 5);

    assert!(matches!(put(&s, "/f", b"other", false), Err(StorageError::Exists)));
    s.mkdir(&p("/d")).unwrap();
    assert!(matches!(put(&s, "/d", b"x", true), Err(StorageError::ExistsNotAFile)));
    assert!(matches!(put(&s, "/none/f", b"x", false), Err(StorageError::NotFound)));
    assert!(matches!(s.begin_upload(&p("/"), spec(Start::Fresh, false)), Err(StorageError::IsRoot)));

    // With overwrite the new contents replace the old, whose chunks go.
    put(&s, "/f", b"new", true).unwrap();
    assert_eq!(get(&s, "/f", 0), b"new");
    assert_eq!(count(&url, "SELECT count(*) FROM ft.chunks"), 1);

    // STOU: the name, then NAME.1.
    let first = s.begin_unique(&p("/f"), uploader(Protocol::Ftp)).unwrap();
    assert_eq!(first.name(), "f.1");
    let second = s.begin_unique(&p("/f"), uploader(Protocol::Ftp)).unwrap();
    assert_eq!(second.name(), "f.2");
    first.commit().unwrap();
    second.discard();
    assert_eq!(s.partial_size(&p("/f.2")), None);
    assert_eq!(get(&s, "/f.1", 0), b"");
}

#[test]
fn two_instances_uploading_one_name_at_once_give_exactly_one_file() {
    let (_cluster, url) = database();
    let instances = [connect(&url), connect(&url)];
    for round in 0..8u32 {
        let name = format!("/race{round}");
        let barrier = Barrier::new(2);
        let results: Vec<(Result<(), StorageError>, Vec<u8>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = instances
                .iter()
                .enumerate()
                .map(|(i, storage)| {
                    let (name, barrier) = (&name, &barrier);
                    scope.spawn(move || {
                        let data = pattern(CHUNK + 1000 * (i + 1), round * 2 + i as u32);
                        let mut upload = storage.begin_upload(&p(name), spec(Start::Private, false)).unwrap();
                        write_all(&mut upload, &data);
                        barrier.wait();
                        (upload.commit().map(drop), data)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = results.iter().filter(|(r, _)| r.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {:?}", results.iter().map(|r| &r.0).collect::<Vec<_>>());
        let loser = results.iter().find(|(r, _)| r.is_err()).unwrap();
        assert!(matches!(loser.0, Err(StorageError::Exists)), "{:?}", loser.0);
        assert!(get(&instances[1], &name, 0) == winners[0].1, "round {round}: contents not the winner's");
    }
    assert_eq!(count(&url, "SELECT count(*) FROM ft.uploads"), 0);
    assert_eq!(count(&url, "SELECT count(DISTINCT content) FROM ft.chunks"), 8);
}

#[test]
fn an_interrupted_upload_resumes_through_another_instance() {
    let (_cluster, url) = database();
    let (a, b) = (connect(&url), connect(&url));
    let data = pattern(3 * CHUNK + 77, 3);
    let cut = CHUNK + 300;
    let mut upload = a.begin_upload(&p("/r"), spec(Start::Fresh, false)).unwrap();
    write_all(&mut upload, &data[..cut + 1000]);
    drop(upload); // the connection broke: what arrived is kept
    assert_eq!(b.partial_size(&p("/r")), Some(cut as u64 + 1000));
    assert!(matches!(b.stat(&p("/r")), Err(StorageError::NotFound)));

    let beyond = b.begin_upload(&p("/r"), spec(Start::Resume(cut as u64 + 1001), false));
    assert!(matches!(beyond, Err(StorageError::BeyondPartial { size, .. }) if size == cut as u64 + 1000));
    let mut upload = b.begin_upload(&p("/r"), spec(Start::Resume(cut as u64), false)).unwrap();
    assert_eq!(upload.offset(), cut as u64);
    write_all(&mut upload, &data[cut..2 * CHUNK]);
    drop(upload);
    // APPE continues at the end of what is stored, through the first instance again.
    let mut upload = a.begin_upload(&p("/r"), spec(Start::Append, false)).unwrap();
    assert_eq!(upload.offset(), 2 * CHUNK as u64);
    write_all(&mut upload, &data[2 * CHUNK..]);
    upload.commit().unwrap();
    assert!(get(&b, "/r", 0) == data);
    let opened = b.open_read(&p("/r"), 0).unwrap();
    assert_eq!(opened.reader.stored_digest("SHA-256").unwrap(), Sha256::digest(&data).to_vec());

    assert!(matches!(a.begin_upload(&p("/never"), spec(Start::Resume(5), false)), Err(StorageError::NothingToResume)));
    assert_eq!(a.partial_size(&p("/never")), None);
    // With overwrite, APPE to a complete file changes a copy; the file stays as it was until
    // the commit.
    let mut upload = a.begin_upload(&p("/r"), spec(Start::Append, true)).unwrap();
    assert_eq!(upload.offset(), data.len() as u64);
    upload.write_all(b"tail").unwrap();
    assert!(get(&a, "/r", 0) == data);
    upload.commit().unwrap();
    assert!(get(&a, "/r", data.len() as u64) == b"tail");
    // An interrupted upload of a name that exists makes APPE ambiguous.
    drop(a.begin_upload(&p("/r"), spec(Start::Resume(3), true)).unwrap());
    assert!(matches!(
        a.begin_upload(&p("/r"), spec(Start::Append, true)),
        Err(StorageError::PartialPending { size: 3 })
    ));
}

#[test]
fn a_private_upload_that_ends_without_commit_leaves_nothing() {
    let (_cluster, url) = database();
    let s = connect(&url);
    let mut upload = s.begin_upload(&p("/fw1.conf"), spec(Start::Private, false)).unwrap();
    write_all(&mut upload, &pattern(CHUNK * 3 + 9, 4));
    assert_eq!(s.partial_size(&p("/fw1.conf")), None, "a TFTP upload is not resumable");
    drop(upload);
    let upload = s.begin_upload(&p("/fw1.conf"), spec(Start::Private, false)).unwrap();
    upload.discard();
    let mut upload = s.begin_upload(&p("/ftp"), spec(Start::Fresh, false)).unwrap();
    write_all(&mut upload, b"abc");
    upload.discard();
    assert_eq!(count(&url, "SELECT count(*) FROM ft.uploads"), 0);
    assert_eq!(count(&url, "SELECT count(*) FROM ft.chunks"), 0);
    assert!(s.list(&p("/")).unwrap().is_empty());
}

#[test]
fn a_completed_upload_is_logged_and_readable_with_plain_sql() {
    let (_cluster, url) = database();
    let s = connect(&url);
    s.mkdir(&p("/configs")).unwrap();
    let data = pattern(CHUNK + 4242, 5);
    let mut upload = s.begin_upload(&p("/configs/fw1.conf"), spec(Start::Private, false)).unwrap();
    write_all(&mut upload, &data);
    upload.commit().unwrap();
    let mut client = sql(&url);
    let rows = client
        .query("SELECT path, size, sha256, host(client), port, username, protocol FROM ft.upload_log", &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<_, &str>(0), "/configs/fw1.conf");
    assert_eq!(row.get::<_, i64>(1), data.len() as i64);
    assert_eq!(row.get::<_, Vec<u8>>(2), Sha256::digest(&data).to_vec());
    assert_eq!(row.get::<_, &str>(3), "192.0.2.7");
    assert_eq!(row.get::<_, i32>(4), 1234);
    assert_eq!(row.get::<_, Option<&str>>(5), None);
    assert_eq!(row.get::<_, &str>(6), "tftp");
    let bytes: Vec<u8> = client.query_one("SELECT ft.read_file('/configs/fw1.conf')", &[]).unwrap().get(0);
    assert!(bytes == data);
    let missing: Option<Vec<u8>> = client.query_one("SELECT ft.read_file('/configs/none')", &[]).unwrap().get(0);
    assert_eq!(missing, None);
    let file = client.query_one("SELECT path, size, sha256 FROM ft.files", &[]).unwrap();
    assert_eq!(file.get::<_, &str>(0), "/configs/fw1.conf");
    assert_eq!(file.get::<_, &str>(2), format!("{:x}", Sha256::digest(&data)));
}

#[test]
fn instances_starting_together_migrate_once() {
    let (_cluster, url) = database();
    let storages: Vec<PgStorage> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(|| PgStorage::connect(&url, 2))).collect();
        handles.into_iter().map(|h| h.join().unwrap().unwrap_or_else(|e| panic!("{e}"))).collect()
    });
    let version = ftserver::storage::postgres::schema::current_version();
    assert_eq!(count(&url, "SELECT count(*) FROM ft.version"), 1);
    assert_eq!(count(&url, "SELECT max(version)::bigint FROM ft.version"), i64::from(version));
    put(&storages[0], "/x", b"x", false).unwrap();
    assert_eq!(get(&storages[3], "/x", 0), b"x");
    assert!(storages[0].describe().starts_with("postgresql://ft@"), "{}", storages[0].describe());
}

#[test]
fn bad_urls_are_usage_errors_and_passwords_never_show() {
    for url in [
        "postgres://u@h:notaport/db",
        "host=/tmp sslmode=sometimes",
        "not a url ==",
        "postgres://:5432/db",
        "postgres://u@h/db?sslmode=require",
    ] {
        let err = PgStorage::connect(url, 1).unwrap_err();
        assert!(err.is_usage(), "{url}: {err}");
    }
    let err = PgStorage::connect("postgres://ft:s3cretpw@127.0.0.1:1/db?connect_timeout=5", 1).unwrap_err();
    assert!(matches!(err, ConnectError::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(!text.contains("s3cretpw") && !text.contains("os error") && !text.contains('\n'), "{text}");
    assert!(text.starts_with("cannot connect to postgresql://ft@127.0.0.1:1/db: "), "{text}");
}

#[test]
fn a_database_restart_fails_the_upload_and_the_server_recovers() {
    let cluster = TestCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.create_database().unwrap();
    let s = connect(&url);
    let quiet = connect(&url);
    put(&s, "/before", b"kept", false).unwrap();
    // Idle connections in `quiet`'s pool, unused while the database restarts.
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| quiet.stat(&p("/before")).unwrap());
        }
    });
    let mut upload = s.begin_upload(&p("/during"), spec(Start::Fresh, false)).unwrap();
    write_all(&mut upload, &pattern(CHUNK + 10, 6));
    cluster.stop().unwrap();
    // The next chunk or the commit finds the database gone.
    let failed = upload.write_all(&pattern(CHUNK, 7)).map_err(|e| e.to_string());
    let committed = upload.commit();
    assert!(failed.is_err() || matches!(committed, Err(StorageError::Unavailable(_))), "{committed:?}");
    assert!(committed.is_err());
    assert!(matches!(s.stat(&p("/before")), Err(StorageError::Unavailable(_))));
    let down = PgStorage::connect(&url, 1).unwrap_err();
    assert!(matches!(down, ConnectError::Unreachable { .. }) && !down.to_string().contains('\n'), "{down}");

    cluster.pg_ctl_start().unwrap();
    assert_eq!(get(&s, "/before", 0), b"kept");
    assert!(matches!(s.stat(&p("/during")), Err(StorageError::NotFound)), "nothing was committed");
    // What was stored before the restart is still there to resume.
    assert_eq!(s.partial_size(&p("/during")), Some(CHUNK as u64));
    put(&s, "/after", b"works", false).unwrap();
    assert_eq!(get(&s, "/after", 0), b"works");
    // One broken connection closes the pool's other idle ones: at most one operation fails.
    let first = quiet.stat(&p("/after"));
    assert!(matches!(first, Ok(_) | Err(StorageError::Unavailable(_))), "{first:?}");
    assert_eq!(quiet.stat(&p("/after")).unwrap().len, 5);
    assert_eq!(quiet.list(&p("/")).unwrap().len(), 2);
}

/// Cuts every ftserver connection to the database, as if the instances holding them died, and
/// waits until their server processes are gone (with their locks).
fn kill_instances(url: &str) {
    sql(url)
        .execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity \
             WHERE application_name = 'ftserver' AND datname = current_database() \
             AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
}

#[test]
fn an_instance_that_dies_mid_upload_leaves_a_resumable_ftp_upload_and_no_tftp_one() {
    let (_cluster, url) = database();
    let a = connect(&url);
    let data = pattern(2 * CHUNK + 99, 8);
    let mut ftp = a.begin_upload(&p("/ftp.bin"), spec(Start::Fresh, false)).unwrap();
    write_all(&mut ftp, &data[..CHUNK + 10]);
    let mut tftp = a.begin_upload(&p("/fw1.conf"), spec(Start::Private, false)).unwrap();
    write_all(&mut tftp, &data[..CHUNK + 10]);
    kill_instances(&url);
    // The dead instance's uploads fail and publish nothing.
    assert!(ftp.write_all(&data[CHUNK + 10..2 * CHUNK + 10]).is_err() || ftp.commit().is_err());
    drop(tftp);

    // Another instance starts: it removes the abandoned TFTP upload, and can resume the FTP
    // one, whose lock died with the connection.
    let b = connect(&url);
    assert!(b.list(&p("/")).unwrap().is_empty());
    assert_eq!(count(&url, "SELECT count(*) FROM ft.uploads WHERE private"), 0);
    assert_eq!(b.partial_size(&p("/ftp.bin")), Some(CHUNK as u64));
    let mut upload = b.begin_upload(&p("/ftp.bin"), spec(Start::Resume(CHUNK as u64), false)).unwrap();
    write_all(&mut upload, &data[CHUNK..]);
    upload.commit().unwrap();
    assert!(get(&b, "/ftp.bin", 0) == data);
    assert_eq!(count(&url, "SELECT count(DISTINCT content) FROM ft.chunks"), 1);
}

#[test]
fn removing_a_directory_takes_its_interrupted_uploads_and_fails_ones_in_progress() {
    let (_cluster, url) = database();
    let s = connect(&url);
    s.mkdir(&p("/d")).unwrap();
    let mut stale = s.begin_upload(&p("/d/stale"), spec(Start::Fresh, false)).unwrap();
    write_all(&mut stale, &pattern(CHUNK + 1, 9));
    drop(stale);
    let mut live = s.begin_upload(&p("/d/live"), spec(Start::Private, false)).unwrap();
    write_all(&mut live, b"partial");
    s.remove_dir(&p("/d")).unwrap();
    write_all(&mut live, b"more");
    assert!(matches!(live.commit(), Err(StorageError::NotFound)));
    assert_eq!(count(&url, "SELECT count(*) FROM ft.uploads"), 0);
    assert_eq!(count(&url, "SELECT count(*) FROM ft.chunks"), 0);
}

#[path = "postgres/protocols.rs"]
mod protocols;
