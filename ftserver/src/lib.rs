//! The ftserver library: FTP sessions over blocking `std::net` sockets, one thread per
//! connection, serving a directory tree read-only unless told otherwise.

pub mod tftp;
