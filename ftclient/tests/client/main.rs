//! Integration tests: the real ftclient binary against pyftpdlib, vsftpd, ftserver and small
//! scripted servers that misbehave on purpose.

mod pyftpd;
mod scenarios;
mod support;
mod usage;
