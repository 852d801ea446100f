//! Integration tests: the server runs in-process on a loopback port and real clients (Python
//! ftplib, curl, lftp) or a raw control connection drive it, in clear or over TLS.

mod accounts;
mod binary;
mod block;
mod curl;
mod cutoff;
mod ftplib;
mod hash;
mod lftp;
mod lockouts;
mod protocol;
mod resume;
mod security;
mod support;
mod tls;
mod upload;
