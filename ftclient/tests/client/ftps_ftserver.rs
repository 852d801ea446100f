//! ftclient against ftserver's own FTPS, in-process, with `--require-tls`: a self-signed
//! certificate pinned by the fingerprint the server prints or trusted with `--cacert`,
//! explicit and implicit TLS, HASH checks, trees in both modes with parallel connections,
//! and named users from the users file.

use crate::ftps::{run_env, FailsSaying};
use crate::trees::{assert_same, build_tree, digest, run_fresh};
use ftserver::accounts::{hash_password, Accounts, LoginPolicy, RootExists};
use ftserver::auth::{Access, Authenticator};
use ftserver::storage::{LocalStorage, Storage};
use ftserver::tls::{Identity, ServerTls, TlsSource};
use ftserver::{Config, Server, ServerHandle};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

/// A running ftserver with TLS required.
struct Secure {
    handle: Option<ServerHandle>,
    root: tempfile::TempDir,
    files: tempfile::TempDir,
    /// `sha256:HEX`, as `--tls-self-signed` prints it.
    fingerprint: String,
}

impl Secure {
    /// Serves a fresh tree (`pub/a.txt`, `alice/`) writable by anonymous users, or with
    /// `users` only to alice (`write`, root `alice`, password `alice-pw`).
    fn start(users: bool) -> Secure {
        let root = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("pub")).unwrap();
        std::fs::create_dir_all(root.path().join("alice")).unwrap();
        std::fs::write(root.path().join("pub/a.txt"), b"over ftserver's tls\n").unwrap();
        let identity = Identity::self_signed(&[]).unwrap();
        let fingerprint = identity.fingerprint();
        std::fs::write(files.path().join("cert.pem"), identity.certificate_pem()).unwrap();
        let tls = Arc::new(ServerTls::new(TlsSource::SelfSigned(identity)).unwrap());
        let mut config = Config::new(root.path()).unwrap();
        config.writable = !users;
        config.tls = Some(tls);
        config.require_tls = true;
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root.path()).unwrap());
        let auth = users.then(|| {
            let path = files.path().join("users.toml");
            let hash = hash_password("alice-pw");
            let text =
                format!("[[user]]\nname = \"alice\"\npassword = \"{hash}\"\nroot = \"alice\"\naccess = \"write\"\n");
            std::fs::write(&path, text).unwrap();
            let tree = Arc::clone(&storage);
            let exists: RootExists = Box::new(move |root| tree.require_dir(root).map_err(|e| e.to_string()));
            let anonymous: Option<Access> = None;
            Arc::new(Accounts::load_checked(&path, anonymous, LoginPolicy::default(), exists).unwrap())
                as Arc<dyn Authenticator>
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let implicit = TcpListener::bind("127.0.0.1:0").unwrap();
        let handle = Server::spawn_with_implicit(listener, Some(implicit), config, storage, auth).unwrap();
        Secure { handle: Some(handle), root, files, fingerprint }
    }

    fn port(&self) -> u16 {
        self.handle.as_ref().unwrap().local_addr().port()
    }

    fn implicit_port(&self) -> u16 {
        self.handle.as_ref().unwrap().implicit_addr().unwrap().port()
    }

    fn cert_pem(&self) -> PathBuf {
        self.files.path().join("cert.pem")
    }
}

impl Drop for Secure {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

#[test]
fn ftserver_requiring_tls_serves_ftclient_with_hash_checks_trees_and_both_modes() {
    let server = Secure::start(false);
    let port = server.port().to_string();
    let tls = ["--tls", "--pin", server.fingerprint.as_str()];
    let dir = tempfile::tempdir().unwrap();
    let run = |more: &[&str]| run_env(dir.path(), &[&["127.0.0.1", port.as_str()][..], &tls, more].concat(), &[]);

    assert_eq!(run(&["-l"]).ok().out(), "alice/\npub/\n");
    // Uploads and downloads checked with the server's digest, small (asked ahead, in the same
    // write as the RETR) and large (after the transfer).
    let small = crate::support::bytes(5000, 1);
    let large = crate::support::bytes((3 << 20) + 5, 2);
    std::fs::write(dir.path().join("small.bin"), &small).unwrap();
    std::fs::write(dir.path().join("large.bin"), &large).unwrap();
    for name in ["small.bin", "large.bin"] {
        let up = run(&["-p", name, "--dir", "pub", "-v"]).ok();
        assert!(up.stderr.contains("matches the server's"), "{}", up.stderr);
        let down = run(&["-g", &format!("pub/{name}"), "-o", &format!("back-{name}"), "-v"]).ok();
        assert!(down.stderr.contains("matches the server's"), "{}", down.stderr);
    }
    assert_eq!(std::fs::read(dir.path().join("back-small.bin")).unwrap(), small);
    assert_eq!(std::fs::read(dir.path().join("back-large.bin")).unwrap(), large);

    // A tree up with one connection (many uploads resuming one session), back in both modes.
    build_tree(&dir.path().join("tree"), 40);
    let expected = digest(&dir.path().join("tree"));
    let up = run(&["-r", "-p", "tree", "--to", "pub/tree", "--parallel", "1"]).ok();
    assert!(up.stderr.contains("uploaded 48 of 48 files"), "{}", up.stderr);
    assert_same(&digest(&server.root.path().join("pub/tree")), &expected, "ftserver's copy");
    for active in [false, true] {
        let more = [&tls[..], &["-r", "-g", "pub/tree", "--parallel", "4"]].concat();
        let (back, down) = run_fresh("127.0.0.1", server.port(), &more, active);
        let down = down.ok();
        assert!(down.stderr.contains("downloaded 48 of 48 files"), "{}", down.stderr);
        assert_same(&digest(&back.path().join("tree")), &expected, "the downloaded copy");
    }

    // Implicit TLS, trusting the certificate file.
    let url = format!("ftps://localhost:{}/pub/a.txt", server.implicit_port());
    run_env(dir.path(), &[&url, "--cacert", server.cert_pem().to_str().unwrap(), "-o", "a.txt"], &[]).ok();
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"over ftserver's tls\n");

    // Without --tls the server refuses the login before any password is sent.
    let clear = run_env(dir.path(), &["127.0.0.1", &port, "-l", "-vv"], &[]);
    assert!(!clear.stderr.contains("> PASS"), "{}", clear.stderr);
    clear.fails_saying("login as anonymous failed: 530");
}

#[test]
fn named_users_log_in_over_ftservers_tls() {
    let server = Secure::start(true);
    let port = server.port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cert = server.cert_pem();
    let tls = ["--tls", "--cacert", cert.to_str().unwrap()];
    std::fs::write(dir.path().join("mine.txt"), b"alice's upload\n").unwrap();
    let args = [&["127.0.0.1", port.as_str(), "-p", "mine.txt", "--user", "alice", "-vv"][..], &tls].concat();
    let up = run_env(dir.path(), &args, &[("FTP_PASSWORD", "alice-pw")]).ok();
    assert!(!up.stderr.contains("alice-pw"), "{}", up.stderr);
    assert_eq!(std::fs::read(server.root.path().join("alice/mine.txt")).unwrap(), b"alice's upload\n");

    let netrc = dir.path().join("netrc");
    std::fs::write(&netrc, "machine localhost login alice password alice-pw\n").unwrap();
    let args = [&["localhost", port.as_str(), "-l"][..], &tls].concat();
    let listed = run_env(dir.path(), &args, &[("NETRC", netrc.to_str().unwrap())]).ok();
    assert_eq!(listed.out(), "mine.txt\n");

    let wrong = run_env(dir.path(), &[&args[..], &["--user", "alice"]].concat(), &[("FTP_PASSWORD", "alice-guess")]);
    assert!(!wrong.stderr.contains("alice-guess"), "{}", wrong.stderr);
    wrong.fails_saying("login as alice failed: 530");
}
