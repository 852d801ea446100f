//! Block mode (`MODE B`, RFC 959 3.4.2) and the data connection kept between transfers, driven
//! by a raw client: downloads, listings and uploads one after another (and pipelined) over one
//! connection, `125` on a kept connection and `250` after each transfer, what drops a kept
//! connection, uploads published at their EOF block and not at a cut connection, and block
//! mode inside TLS.

use crate::support::{awkward_bytes, Raw, TestServer};
use crate::tls::{Secure, Setup};
use crate::upload::partial;
use common::block::{frame, BlockReader, END, HEADER, MAX_BLOCK};
use common::hostport::parse_229;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The final reply of a complete block-mode transfer.
const KEPT: &str = "Transfer complete; data connection kept open (block mode).";

/// One file's data, read from its blocks.
fn read_file(data: &mut impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    BlockReader::new(data).read_to_end(&mut bytes).unwrap();
    bytes
}

/// `bytes` as blocks (of `size` bytes at most) and the EOF block.
fn blocks(bytes: &[u8], size: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    for piece in bytes.chunks(size.min(MAX_BLOCK)) {
        let mut block = vec![0u8; HEADER + piece.len()];
        block[HEADER..].copy_from_slice(piece);
        wire.extend_from_slice(frame(&mut block, piece.len()));
    }
    wire.extend_from_slice(&END);
    wire
}

/// Does the client's end of a data connection the server dropped see its end?
fn assert_closed(data: &mut TcpStream) {
    data.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut rest = Vec::new();
    // A reset (the server had unread bytes) is a closed connection as well as a FIN.
    let n = data.read_to_end(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "the dropped data connection still carried {n} bytes");
}

/// A logged-in client in TYPE I and MODE B, with a data connection made with EPSV.
fn block_session(server: &TestServer) -> (Raw, TcpStream) {
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    assert_eq!(raw.expect("MODE B", 200).text(), "Mode set to B.");
    let data = raw.epsv_connect();
    data.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (raw, data)
}

/// Reads a download's replies and blocks: `first` (150 or 125), the file, 250.
fn download(raw: &mut Raw, data: &mut TcpStream, first: u16) -> (String, Vec<u8>) {
    let opening = raw.expect_reply(first).text();
    let bytes = read_file(data);
    assert_eq!(raw.expect_reply(250).text(), KEPT);
    (opening, bytes)
}

#[test]
fn downloads_one_after_another_and_pipelined_share_one_data_connection() {
    let server = TestServer::start();
    let sizes = [("zero.bin", 0), ("a.bin", 100 << 10), ("b.bin", 200 << 10)];
    for (name, len) in sizes {
        std::fs::write(server.root.path().join(name), awkward_bytes(len)).unwrap();
    }
    let (mut raw, mut data) = block_session(&server);
    for (i, (name, len)) in sizes.into_iter().enumerate() {
        raw.send(format!("RETR {name}").as_bytes());
        let (opening, bytes) = download(&mut raw, &mut data, if i == 0 { 150 } else { 125 });
        assert!(bytes == awkward_bytes(len), "{name}: {} bytes, not the file's {len}", bytes.len());
        if i > 0 {
            let expected = format!("Data connection already open; transfer starting for {name} ({len} bytes).");
            assert_eq!(opening, expected);
        }
    }
    // Both commands in one write: each file's blocks come between its 125 and its 250.
    raw.send(b"RETR b.bin\r\nRETR hello.txt");
    assert!(download(&mut raw, &mut data, 125).1 == awkward_bytes(200 << 10));
    assert_eq!(download(&mut raw, &mut data, 125).1, b"hello, world\n");
    // TYPE A converts before framing: the same bytes as stream mode sends.
    raw.expect("TYPE A", 200);
    raw.send(b"RETR lines.txt");
    let ascii = download(&mut raw, &mut data, 125).1;
    let stat = raw.expect("STAT", 211).text();
    assert!(stat.contains("Mode: block"), "{stat}");
    raw.expect("MODE S", 200);
    assert_closed(&mut data);
    assert!(raw.expect("STAT", 211).text().contains("Mode: stream"));
    // Stream mode as before: a new connection, 150, its end is the file's end, 226.
    assert_eq!(raw.passive_transfer("RETR lines.txt"), ascii);
}

#[test]
fn listings_are_framed_and_keep_the_connection() {
    let server = TestServer::start();
    let (mut raw, mut data) = block_session(&server);
    raw.send(b"NLST");
    let opening = raw.expect_reply(150).text();
    assert_eq!(opening, "Here comes the directory listing.");
    let names = read_file(&mut data);
    assert_eq!(raw.expect_reply(250).text(), "Directory send OK; data connection kept open (block mode).");
    assert!(String::from_utf8(names).unwrap().contains("hello.txt\r\n"));
    raw.send(b"MLSD sub");
    assert_eq!(raw.expect_reply(125).text(), "Data connection already open; transfer starting.");
    let facts = String::from_utf8(read_file(&mut data)).unwrap();
    assert!(facts.contains("type=file") && facts.contains("; nested.txt\r\n"), "{facts}");
    raw.expect_reply(250);
    raw.send(b"LIST");
    raw.expect_reply(125);
    let long = String::from_utf8(read_file(&mut data)).unwrap();
    assert!(long.contains(" with space.txt\r\n"), "{long}");
    raw.expect_reply(250);
    raw.send(b"RETR sub/nested.txt");
    assert_eq!(download(&mut raw, &mut data, 125).1, b"nested\n");
}

#[test]
fn a_refused_download_keeps_the_connection_and_a_new_one_drops_it() {
    let server = TestServer::start();
    let (mut raw, mut data) = block_session(&server);
    raw.send(b"RETR hello.txt");
    download(&mut raw, &mut data, 150);
    raw.expect("RETR missing.txt", 550);
    raw.send(b"RETR hello.txt");
    assert_eq!(download(&mut raw, &mut data, 125).1, b"hello, world\n");
    // EPSV asks for a new connection: the kept one is closed, the new one gets a 150.
    let mut second = raw.epsv_connect();
    assert_closed(&mut data);
    raw.send(b"RETR hello.txt");
    assert_eq!(download(&mut raw, &mut second, 150).1, b"hello, world\n");
    // ABOR closes it too, and nothing is left to transfer over.
    raw.expect("ABOR", 225);
    assert_closed(&mut second);
    raw.expect("RETR hello.txt", 425);
    // A kept connection the client closed is refused, not written into.
    let mut third = raw.epsv_connect();
    raw.send(b"RETR hello.txt");
    download(&mut raw, &mut third, 150);
    drop(third);
    raw.expect("RETR hello.txt", 426);
    raw.expect("RETR hello.txt", 425);
}

#[test]
fn uploads_are_published_at_their_eof_block_without_settling() {
    // With 30 s of settling an upload would get its reply after the raw client's 20 s read
    // timeout: the 250s below come from the EOF blocks alone.
    let server = TestServer::start_with("127.0.0.1", |c| {
        c.writable = true;
        c.upload_settle = Duration::from_secs(30);
        c.unannounced_settle = Duration::from_secs(30);
    });
    let (mut raw, mut data) = block_session(&server);
    let one = awkward_bytes(150_000);
    raw.expect("STOR one.bin", 150);
    data.write_all(&blocks(&one, 1000)).unwrap();
    assert_eq!(raw.expect_reply(250).text(), KEPT);
    assert!(std::fs::read(server.root.path().join("one.bin")).unwrap() == one);
    // The next file's blocks right behind its command, before the 125; an empty file; ALLO.
    raw.expect("ALLO 5", 200);
    let mut wire = blocks(b"two!\n", MAX_BLOCK);
    wire.extend(blocks(b"", MAX_BLOCK));
    raw.send(b"STOR two.txt\r\nSTOR empty.bin");
    data.write_all(&wire).unwrap();
    let opening = raw.expect_reply(125).text();
    assert_eq!(opening, "Data connection already open; transfer starting for two.txt.");
    raw.expect_reply(250);
    raw.expect_reply(125);
    raw.expect_reply(250);
    assert_eq!(std::fs::read(server.root.path().join("two.txt")).unwrap(), b"two!\n");
    assert_eq!(std::fs::read(server.root.path().join("empty.bin")).unwrap(), b"");
    raw.send(b"STOU");
    let name = raw.expect_reply(125).text().strip_prefix("FILE: ").unwrap().to_owned();
    data.write_all(&blocks(b"unique", 2)).unwrap();
    let done = raw.expect_reply(250).text();
    assert_eq!(done, format!("Transfer complete, stored as {name}; data connection kept open (block mode)."));
    assert_eq!(std::fs::read(server.root.path().join(&name)).unwrap(), b"unique");
    // A refused upload closes the connection: the file's blocks may be on their way already,
    // and the next upload must not take them for its own.
    raw.expect("STOR no/such/dir.bin", 550);
    assert_closed(&mut data);
    raw.expect("STOR three.bin", 425);
}

#[test]
fn a_block_upload_cut_before_its_eof_block_is_kept_for_resuming_only() {
    let server = TestServer::start_with("127.0.0.1", |c| c.writable = true);
    let (mut raw, mut data) = block_session(&server);
    let bytes = awkward_bytes(5000);
    raw.expect("STOR cut.bin", 150);
    let wire = blocks(&bytes[..2000], 1000);
    // Both data blocks, not the EOF block; then the client is gone from the data connection.
    data.write_all(&wire[..wire.len() - END.len()]).unwrap();
    drop(data);
    assert_eq!(raw.expect_reply(426).code, 426);
    assert!(!server.root.path().join("cut.bin").exists(), "a cut block upload was published");
    assert_eq!(std::fs::metadata(partial(&server, "", "cut.bin")).unwrap().len(), 2000);
    // REST n is a byte offset in block mode too.
    assert_eq!(raw.expect("SIZE cut.bin", 213).text(), "2000");
    let mut data = raw.epsv_connect();
    raw.expect("REST 2000", 350);
    raw.expect("STOR cut.bin", 150);
    data.write_all(&blocks(&bytes[2000..], 700)).unwrap();
    raw.expect_reply(250);
    assert!(std::fs::read(server.root.path().join("cut.bin")).unwrap() == bytes);
    // Too few bytes for the ALLO: not published, and the connection goes.
    raw.expect("ALLO 10", 200);
    raw.expect("STOR short.bin", 125);
    data.write_all(&blocks(b"12345", 10)).unwrap();
    raw.expect_reply(451);
    assert_closed(&mut data);
    assert!(!server.root.path().join("short.bin").exists());
}

#[test]
fn block_mode_inside_tls_keeps_the_secured_connection() {
    let server = Secure::start(Setup { users: true, ..Setup::default() });
    let config = server.client();
    let mut tls = server.explicit(&config);
    tls.login("carol");
    tls.expect("PBSZ 0", 200);
    tls.expect("PROT P", 200);
    tls.expect("TYPE I", 200);
    tls.expect("MODE B", 200);
    let port = parse_229(&tls.expect("EPSV", 229).text()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tls.expect("RETR top.txt", 150);
    let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut data = rustls::StreamOwned::new(conn, tcp);
    assert_eq!(read_file(&mut data), b"at the top\n");
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 250);
    // The same TLS connection, no new handshake: an upload and a download.
    tls.expect("STOR up.txt", 125);
    data.write_all(&blocks(b"uploaded in tls\n", 4)).unwrap();
    data.flush().unwrap();
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 250);
    tls.expect("RETR up.txt", 125);
    assert_eq!(read_file(&mut data), b"uploaded in tls\n");
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 250);
}
