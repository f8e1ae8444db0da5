//! Noticing that a client went away while its request waits.
//!
//! actix-web keeps a handler running after its client disconnects; only a
//! failed write reveals it. A request waiting for its job (queued, or a
//! non-streaming one until the answer is done, or a stream before its
//! headers) writes nothing, so the handler peeks at the connection's socket
//! instead: an orderly end-of-stream or a reset means the client is gone,
//! and closing the job's receiver drops a queued job and makes a worker
//! interrupt a running turn.

use std::any::Any;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use actix::{Addr, Recipient};
use actix_web::dev::Extensions;
use actix_web::HttpRequest;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::dispatch::messages::ClientLeft;
use crate::dispatch::Dispatcher;
use crate::job::JobEvent;

/// How often a waiting request peeks at its client's socket: a departed
/// client's queued job leaves the queue this soon (a non-blocking `recv`
/// per waiting request each time, cheap next to the job itself).
pub const WATCH_EVERY: Duration = Duration::from_millis(50);

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

/// Resolves once the client of `socket` has gone; never without a socket
/// (a connection that is not plain TCP).
pub async fn departed(socket: Option<PeerSocket>) {
    let Some(socket) = socket else {
        return std::future::pending().await;
    };
    let mut every = tokio::time::interval(WATCH_EVERY);
    loop {
        every.tick().await;
        if socket.is_closed() {
            return;
        }
    }
}

/// The client a job's events go to, watched while it waits for them.
#[derive(Clone)]
pub struct Client {
    socket: Option<PeerSocket>,
    /// Told when the client leaves (the dispatcher).
    dispatcher: Option<Recipient<ClientLeft>>,
}

impl Client {
    pub fn of(req: &HttpRequest, dispatcher: &Addr<Dispatcher>) -> Self {
        Self {
            socket: socket_of(req),
            dispatcher: Some(dispatcher.clone().recipient()),
        }
    }

    /// A client nobody watches (unit tests): it never leaves.
    pub fn unwatched() -> Self {
        Self {
            socket: None,
            dispatcher: None,
        }
    }

    /// Resolves once the client has gone.
    pub async fn departed(&self) {
        departed(self.socket).await
    }

    /// Whether the client has gone (checked now).
    pub fn is_gone(&self) -> bool {
        self.socket.is_some_and(PeerSocket::is_closed)
    }

    /// The client left: its job's events are refused from now on (a worker
    /// running the job interrupts the turn), and the dispatcher is told at
    /// once, so that a job still queued leaves the queue now rather than at
    /// its next look at the queue.
    pub fn withdraw(&self, events: &mut UnboundedReceiver<JobEvent>) {
        events.close();
        // Best effort: a full mailbox means the queue tick sees it instead.
        if let Some(dispatcher) = &self.dispatcher {
            let _ = dispatcher.try_send(ClientLeft);
        }
    }
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
