//! The ftclient library: everything the `ftclient` binary does, in modules (the binary parses
//! its arguments and calls them). `xtask` uses [`cli`] to generate the man page and shell
//! completions from the same definitions.

pub mod cli;
pub mod conn;
pub mod credentials;
pub mod digest;
pub mod get;
pub mod interrupt;
pub mod list;
pub mod localfile;
pub mod netrc;
pub mod pool;
pub mod progress;
pub mod put;
pub mod report;
pub mod segments;
pub mod session;
pub mod tftp;
pub mod tftpfile;
pub mod tls;
pub mod transfer;
pub mod tree;
pub mod url;
pub mod verify;
