//! Integration tests: the real ftclient binary against pyftpdlib, vsftpd, ftserver and small
//! scripted servers that misbehave on purpose.

mod fake;
mod ftserver;
mod habits;
mod kill;
mod pyftpd;
mod scenarios;
mod scripted;
mod segments;
mod support;
mod tftp;
mod trees;
mod usage;
mod vsftpd;
