//! ftclient: list and get files from an FTP server in active or passive mode.

fn main() {}
