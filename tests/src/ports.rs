//! Loopback ports for the servers tests start.
//!
//! Ports come from below Linux's ephemeral range (32768–60999 by default), so the kernel does
//! not hand the same port to an outgoing connection or to a server bound to port 0 (workerd's
//! internal sockets, a test ETL) between our check and the server's own bind.

use std::net::TcpListener;

const FIRST: u16 = 20_000;
const COUNT: u16 = 12_000;

/// A port that was free on 127.0.0.1 just now.
pub fn free_port() -> u16 {
    loop {
        let offset = u16::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..2].try_into().unwrap());
        let port = FIRST + offset % COUNT;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
