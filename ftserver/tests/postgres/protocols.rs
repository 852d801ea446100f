//! FTP and TFTP through real `ftserver` servers on the PostgreSQL storage: two instances (each
//! an FTP server and a TFTP server with a storage of its own) on one database, driven by a
//! raw control connection and a minimal TFTP client.

use super::{database, pattern, sql};
use common::hostport::parse_229;
use common::tftp::{Direction, Packet, Request};
use common::{Control, Reply, MAX_REPLY_LINE};
use ftserver::storage::postgres::PgStorage;
use ftserver::tftp::{TftpConfig, TftpHandle};
use ftserver::{Config, Server, ServerHandle};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

/// One ftserver instance: FTP and TFTP over its own connections to the shared database.
struct Instance {
    ftp: ServerHandle,
    tftp: TftpHandle,
}

impl Instance {
    fn start(url: &str, overwrite: bool) -> Instance {
        let storage = Arc::new(PgStorage::connect(url, 8).unwrap_or_else(|e| panic!("{e}")));
        let mut config = Config::new(std::env::temp_dir()).unwrap();
        config.writable = true;
        config.overwrite = overwrite;
        config.data_timeout = Duration::from_secs(10);
        // Every test client comes from 127.0.0.1.
        config.max_per_ip = config.max_clients;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ftp = Server::spawn_with(listener, config, storage.clone(), None).unwrap();
        let tftp_config = TftpConfig { writable: true, overwrite, ..TftpConfig::default() };
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tftp = ftserver::tftp::spawn_with(socket, tftp_config, storage).unwrap();
        Instance { ftp, tftp }
    }

    fn login(&self) -> Ftp {
        Ftp::login(self.ftp.local_addr())
    }

    /// Waits (bounded) until every FTP session has ended.
    fn wait_idle(&self) {
        let deadline = Instant::now() + TIMEOUT;
        while self.ftp.active_sessions() > 0 {
            assert!(Instant::now() < deadline, "sessions still open after {TIMEOUT:?}");
            std::thread::yield_now();
        }
    }
}

/// A raw FTP control connection.
struct Ftp {
    ctrl: Control<TcpStream>,
}

impl Ftp {
    fn login(addr: SocketAddr) -> Ftp {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut ftp = Ftp { ctrl: Control::new(stream, MAX_REPLY_LINE) };
        assert_eq!(ftp.ctrl.read_reply().unwrap().code, 220);
        ftp.expect("USER anonymous", 331);
        ftp.expect("PASS guest@", 230);
        ftp.expect("TYPE I", 200);
        ftp
    }

    fn cmd(&mut self, line: &str) -> Reply {
        self.ctrl.get_mut().write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.ctrl.read_reply().unwrap()
    }

    fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line} -> {reply:?}");
        reply
    }

    fn data(&mut self) -> TcpStream {
        let port = parse_229(&self.expect("EPSV", 229).text()).unwrap();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream
    }

    fn download(&mut self, line: &str) -> Vec<u8> {
        let mut data = self.data();
        self.expect(line, 150);
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).unwrap();
        assert_eq!(self.ctrl.read_reply().unwrap().code, 226, "{line}");
        bytes
    }

    /// An upload command: the code of its first reply, else of its final one.
    fn upload(&mut self, line: &str, bytes: &[u8]) -> u16 {
        let mut data = self.data();
        let first = self.cmd(line);
        if first.code != 150 {
            return first.code;
        }
        data.write_all(bytes).unwrap();
        drop(data);
        self.ctrl.read_reply().unwrap().code
    }
}

/// A TFTP upload in octet mode with 512-byte blocks: `Ok` after the final ACK, else the
/// server's error code.
fn tftp_put(server: SocketAddr, name: &str, bytes: &[u8]) -> Result<(), u16> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let request = Request { direction: Direction::Write, filename: name.into(), mode: "octet".into(), options: vec![] };
    socket.send_to(&Packet::Request(request).to_bytes(), server).unwrap();
    let mut buf = [0u8; 1024];
    let blocks: Vec<&[u8]> = bytes.chunks(512).chain((bytes.len() % 512 == 0).then_some(&[][..])).collect();
    for block in 0..=blocks.len() {
        let (n, peer) = socket.recv_from(&mut buf).unwrap();
        match Packet::parse(&buf[..n]).unwrap() {
            Packet::Ack(acked) if usize::from(acked) == block => {}
            Packet::Error { code, .. } => return Err(code),
            other => panic!("block {block}: {other:?}"),
        }
        if let Some(data) = blocks.get(block) {
            let mut packet = vec![0, 3];
            packet.extend_from_slice(&(block as u16 + 1).to_be_bytes());
            packet.extend_from_slice(data);
            socket.send_to(&packet, peer).unwrap();
        }
    }
    Ok(())
}

/// A TFTP download in octet mode with 512-byte blocks.
fn tftp_get(server: SocketAddr, name: &str) -> Vec<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let request = Request { direction: Direction::Read, filename: name.into(), mode: "octet".into(), options: vec![] };
    socket.send_to(&Packet::Request(request).to_bytes(), server).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        match Packet::parse(&buf[..n]).unwrap() {
            Packet::Data { block, data } => {
                out.extend_from_slice(data);
                socket.send_to(&common::tftp::ack_bytes(block), from).unwrap();
                if data.len() < 512 {
                    return out;
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_file_uploaded_through_one_instance_is_served_whole_by_the_other() {
    let (_cluster, url) = database();
    let (a, b) = (Instance::start(&url, false), Instance::start(&url, true));
    let data = pattern(1024 * 1024 + 333, 20);
    let mut ftp_a = a.login();
    ftp_a.expect("MKD dir", 257);
    assert_eq!(ftp_a.upload("STOR dir/up.bin", &data), 226);
    assert_eq!(ftp_a.upload("STOR dir/up.bin", b"again"), 553, "no replacement without --overwrite");

    let mut ftp_b = b.login();
    assert_eq!(ftp_b.expect("SIZE dir/up.bin", 213).text(), data.len().to_string());
    ftp_b.expect("MDTM dir/up.bin", 213);
    assert!(ftp_b.download("RETR dir/up.bin") == data);
    ftp_b.expect("REST 300001", 350);
    assert!(ftp_b.download("RETR dir/up.bin") == data[300_001..]);
    let hash = ftp_b.cmd("HASH dir/up.bin");
    assert!(hash.text().contains(&format!("{:x}", Sha256::digest(&data))), "{hash:?}");
    let nlst = String::from_utf8(ftp_b.download("NLST dir")).unwrap();
    assert!(nlst.lines().any(|l| l.ends_with("up.bin")), "{nlst}");
    let mlsd = String::from_utf8(ftp_b.download("MLSD dir")).unwrap();
    assert!(mlsd.contains(&format!("size={};", data.len())) && mlsd.contains("type=file;"), "{mlsd}");

    // Changes through the second instance (which may replace and delete).
    ftp_b.expect("RNFR dir/up.bin", 350);
    ftp_b.expect("RNTO dir/moved.bin", 250);
    assert_eq!(ftp_b.upload("STOR dir/moved.bin", b"replaced"), 226);
    assert_eq!(ftp_a.download("RETR dir/moved.bin"), b"replaced");
    ftp_a.expect("RMD dir", 550);
    ftp_b.expect("DELE dir/moved.bin", 250);
    ftp_b.expect("RMD dir", 250);
    let list = ftp_a.download("LIST");
    assert!(list.is_empty(), "{}", String::from_utf8_lossy(&list));
}

#[test]
fn same_name_uploads_through_two_instances_at_once_store_one_unmixed_file() {
    let (_cluster, url) = database();
    let instances = [Instance::start(&url, false), Instance::start(&url, false)];
    for round in 0..4u32 {
        let name = format!("race{round}.bin");
        let barrier = Barrier::new(2);
        let results: Vec<(u16, Vec<u8>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = instances
                .iter()
                .enumerate()
                .map(|(i, instance)| {
                    let (name, barrier) = (&name, &barrier);
                    scope.spawn(move || {
                        let data = pattern(600 * 1024 + i, round * 2 + i as u32 + 100);
                        let mut ftp = instance.login();
                        barrier.wait();
                        (ftp.upload(&format!("STOR {name}"), &data), data)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let codes: Vec<u16> = results.iter().map(|r| r.0).collect();
        let winners: Vec<_> = results.iter().filter(|r| r.0 == 226).collect();
        assert_eq!(winners.len(), 1, "round {round}: {codes:?}");
        // The other was told the name is taken (553) or being uploaded right now (450).
        assert!(codes.iter().all(|c| [226, 450, 553].contains(c)), "round {round}: {codes:?}");
        let stored = instances[round as usize % 2].login().download(&format!("RETR {name}"));
        assert!(stored == winners[0].1, "round {round}: the stored file is not the winner's");
    }
}

#[test]
fn an_interrupted_ftp_upload_resumes_through_the_other_instance() {
    let (_cluster, url) = database();
    let (a, b) = (Instance::start(&url, false), Instance::start(&url, false));
    let data = pattern(900 * 1024 + 5, 21);
    let mut ftp = a.login();
    let mut conn = ftp.data();
    ftp.expect("STOR resumed.bin", 150);
    conn.write_all(&data[..700 * 1024]).unwrap();
    // The client dies: its control connection goes, then its data connection.
    ftp.ctrl.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(ftp);
    drop(conn);
    a.wait_idle();

    let mut ftp = b.login();
    ftp.expect("STAT", 211);
    let size: usize = ftp.expect("SIZE resumed.bin", 213).text().trim().parse().unwrap();
    assert!(size <= 700 * 1024, "{size}");
    ftp.expect(&format!("REST {size}"), 350);
    assert_eq!(ftp.upload("STOR resumed.bin", &data[size..]), 226);
    assert!(ftp.download("RETR resumed.bin") == data);
    let hash = ftp.cmd("HASH resumed.bin");
    assert!(hash.text().contains(&format!("{:x}", Sha256::digest(&data))), "{hash:?}");
}

#[test]
fn a_device_backup_over_tftp_is_logged_and_read_back_everywhere() {
    let (_cluster, url) = database();
    let (a, b) = (Instance::start(&url, false), Instance::start(&url, false));
    let config = pattern(20 * 512 + 17, 22);
    tftp_put(a.tftp.local_addr(), "fw1.conf", &config).unwrap();
    assert_eq!(tftp_put(b.tftp.local_addr(), "fw1.conf", b"second"), Err(6), "file exists");

    let row = sql(&url)
        .query_one("SELECT host(client), sha256, size, protocol FROM ft.upload_log WHERE path = '/fw1.conf'", &[])
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "127.0.0.1");
    assert_eq!(row.get::<_, Vec<u8>>(1), Sha256::digest(&config).to_vec());
    assert_eq!(row.get::<_, i64>(2), config.len() as i64);
    assert_eq!(row.get::<_, &str>(3), "tftp");

    assert!(tftp_get(b.tftp.local_addr(), "fw1.conf") == config);
    assert!(b.login().download("RETR fw1.conf") == config);
}

#[test]
fn fifty_clients_spread_over_two_instances_each_get_their_own_file_back() {
    let (_cluster, url) = database();
    let instances = [Instance::start(&url, false), Instance::start(&url, false)];
    let barrier = Barrier::new(50);
    std::thread::scope(|scope| {
        for i in 0..50u32 {
            let (instances, barrier) = (&instances, &barrier);
            scope.spawn(move || {
                let data = pattern(8 * 1024 + i as usize, 200 + i);
                let mut ftp = instances[i as usize % 2].login();
                barrier.wait();
                assert_eq!(ftp.upload(&format!("STOR client{i}"), &data), 226, "client {i}");
                let mut other = instances[(i as usize + 1) % 2].login();
                assert!(other.download(&format!("RETR client{i}")) == data, "client {i}");
            });
        }
    });
    let names = String::from_utf8(instances[0].login().download("NLST")).unwrap();
    assert_eq!(names.lines().count(), 50, "{names}");
}
