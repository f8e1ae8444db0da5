//! Noticing that a client went away while its non-streaming request waits.
//!
//! actix-web keeps a handler running after its client disconnects; only a
//! failed write (streams) reveals it. A non-streaming job writes nothing
//! until it is done, so the handler peeks at the connection's socket
//! instead: an orderly end-of-stream or a reset means the client is gone,
//! and dropping the job's receiver makes the worker interrupt the turn.

use std::any::Any;
use std::os::fd::{AsRawFd, RawFd};

use actix_web::dev::Extensions;
use actix_web::HttpRequest;

/// The raw socket of a plain TCP connection, stored per connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerSocket(RawFd);

/// `HttpServer::on_connect` hook: remembers the connection's socket.
pub fn remember_socket(connection: &dyn Any, data: &mut Extensions) {
    if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        data.insert(PeerSocket(stream.as_raw_fd()));
    }
}

/// The socket of the request's connection, if known.
pub fn socket_of(req: &HttpRequest) -> Option<PeerSocket> {
    req.conn_data::<PeerSocket>().copied()
}

impl PeerSocket {
    /// Whether the peer has closed or reset the connection. The socket stays
    /// open (owned by the connection) while a handler runs, so the fd is
    /// valid here. Pipelined bytes waiting to be read count as alive.
    pub fn is_closed(self) -> bool {
        let mut byte = 0u8;
        // SAFETY: a non-blocking peek of at most one byte into a local buffer.
        let n = unsafe {
            libc::recv(
                self.0,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return true;
        }
        if n > 0 {
            return false;
        }
        let errno = std::io::Error::last_os_error().raw_os_error();
        !matches!(errno, Some(libc::EAGAIN) | Some(libc::EINTR))
    }
}
