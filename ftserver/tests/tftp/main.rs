//! TFTP server tests: real clients (curl, atftp, tftp-hpa) and a raw UDP client against the
//! in-process server on 127.0.0.1:0, and transfers under netem loss inside a network namespace.

mod client;
mod loss;
mod raw;
mod real_clients;
mod support;
mod transfers;
mod writes;

// The peers the tests run and the one-line failure when one is missing (shared with the FTP
// tests).
#[path = "../ftp/peers.rs"]
mod peers;
