//! Certificates for the FTPS tests, made with rcgen in a temporary directory: a test CA and
//! leaf certificates it signs (good, expired, for another host name), written as PEM files
//! that vsftpd, pyftpdlib and `--cacert` read.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// A leaf certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// `sha256:HEX` of the certificate, as `--pin` takes it.
    pub pin: String,
}

/// A test CA and the certificates it signed, in a directory removed on drop.
pub struct Certs {
    /// The directory holding the files, removed on drop.
    _dir: tempfile::TempDir,
    /// The CA certificate (PEM), for `--cacert`.
    pub ca: PathBuf,
    /// For 127.0.0.1, ::1 and localhost, valid now.
    pub good: Leaf,
    /// For 127.0.0.1 and localhost, expired in 2021.
    pub expired: Leaf,
    /// For other.example only, valid now.
    pub other_name: Leaf,
}

impl Certs {
    /// Makes the CA and its three leaves.
    pub fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "ft test ca");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, pem("CERTIFICATE", ca_cert.der())).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str, names: &[&str], expired: bool| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
            params.distinguished_name.push(DnType::CommonName, names[0]);
            if expired {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            let cert = params.signed_by(&key, &issuer).unwrap();
            let (cert_path, key_path) =
                (dir.path().join(format!("{name}.pem")), dir.path().join(format!("{name}.key")));
            std::fs::write(&cert_path, pem("CERTIFICATE", cert.der())).unwrap();
            std::fs::write(&key_path, pem("PRIVATE KEY", &key.serialize_der())).unwrap();
            let pin = format!("sha256:{}", hex(&Sha256::digest(cert.der())));
            Leaf { cert: cert_path, key: key_path, pin }
        };
        let good = leaf("good", &["localhost", "127.0.0.1", "::1"], false);
        let expired = leaf("expired", &["localhost", "127.0.0.1"], true);
        let other_name = leaf("other", &["other.example"], false);
        Certs { _dir: dir, ca, good, expired, other_name }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// PEM: base64 in 64-column lines between the BEGIN and END lines.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}
