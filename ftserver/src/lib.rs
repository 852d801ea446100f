//! The ftserver library: FTP sessions over blocking `std::net` sockets, one thread per
//! connection, serving a directory tree read-only unless told otherwise (`Config::writable`).
//!
//! Run a server in-process (tests bind port 0):
//!
//! ```no_run
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let config = ftserver::Config::new(".")?;
//! let server = ftserver::Server::spawn(listener, config)?;
//! println!("serving on {}", server.local_addr());
//! server.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conn;
mod context;
pub mod data;
pub mod hash;
pub mod listing;
pub mod server;
mod session;
pub mod storage;
pub mod tftp;
pub mod tls;

pub use config::Config;
pub use server::{Server, ServerHandle};
