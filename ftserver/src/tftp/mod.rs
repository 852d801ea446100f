//! TFTP (RFC 1350 and its option extensions) over UDP, serving the same root as FTP.
