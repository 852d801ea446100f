//! Wire framing shared by `ftserver` and `ftclient`: FTP command lines, replies, host/port
//! arguments, directory listings, virtual paths, and the control-channel buffer.
//!
//! Everything here parses from `&[u8]`/`&str` and formats into bytes or strings. The crate never
//! opens a socket: addresses are `core::net` values, and [`control::Control`] works over any
//! `Read + Write`, so every piece is testable on in-memory buffers.

pub mod ascii;
pub mod block;
pub mod command;
pub mod control;
pub mod hostport;
pub mod line;
pub mod listing;
pub mod path;
pub mod reply;
pub mod telnet;
pub mod text;
pub mod tftp;
pub mod timer;

pub use command::{Command, ParseError};
pub use control::{Control, ControlError};
pub use reply::Reply;

/// The longest command or reply line accepted, in bytes, not counting the line ending.
///
/// vsftpd uses 4096 for commands; Python's ftplib allows 8192 for replies, so we accept up to
/// that when reading replies from other servers.
pub const MAX_COMMAND_LINE: usize = 4096;

/// The longest reply line a client accepts from a server.
pub const MAX_REPLY_LINE: usize = 8192;
