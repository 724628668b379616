//! Connection limits for the web server's two ports, against a LAN host
//! holding connections open until the page stops answering (security
//! review, issue 15 findings 3 and 4).
//!
//! - Each port admits at most [`PortLimits::max_connections`] connections
//!   at once, and at most [`PortLimits::max_per_address`] from one client
//!   address. TLS handshakes in flight count as connections. A connection
//!   over a limit is closed as soon as it is accepted; open ones are never
//!   closed to make room, so a flood cannot push out the admin's page.
//! - A connection with no bytes moving either way for
//!   [`PortLimits::idle_timeout`] is closed; a TLS handshake gets
//!   [`WebLimits::tls_handshake_timeout`] in all.
//! - An address reaching its limit, or a port reaching its ceiling, is
//!   logged as a warning at most once per [`WebLimits::warn_interval`].
//! - When accepting fails for want of file descriptors (`EMFILE`), the
//!   listener says so once and retries with a growing pause until it
//!   accepts again, instead of spinning and logging each try.
//!
//! Addresses are counted whole, IPv6 too (not per /64 as on the internet):
//! the device sits on the clients' own link, where every IPv6 client shares
//! the link's /64, so one prefix-wide limit would let one host lock out the
//! whole room. A host that takes many addresses gets past the per-address
//! limit; the per-port ceiling and the idle timeout still bound what it holds.
//!
//! `ConnectionTable` decides (no I/O; the time is passed in);
//! `LimitedListener` and [`LimitedStream`] do the sockets.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

use super::lock;
use crate::ApplianceError;

/// The web server's connection limits. [`Default`] is what the daemon uses;
/// tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebLimits {
    /// The HTTPS port (the page and the API).
    pub https: PortLimits,
    /// The plain HTTP port, which only redirects.
    pub http: PortLimits,
    /// How long a TLS handshake may take from the connection's accept.
    pub tls_handshake_timeout: Duration,
    /// How often one address (or a full port) may be warned about.
    pub warn_interval: Duration,
}

/// Limits of one port.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortLimits {
    /// Connections open at once, from everyone.
    pub max_connections: usize,
    /// Connections open at once from one client address.
    pub max_per_address: usize,
    /// A connection with no bytes read or written for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for WebLimits {
    fn default() -> Self {
        Self {
            // A few people use the page at a time; a browser opens up to 6
            // connections to a host. 256 idle TLS connections are a few MB.
            https: PortLimits {
                max_connections: 256,
                max_per_address: 8,
                // The page polls every 2 s, so its connections never idle this long.
                idle_timeout: Duration::from_secs(30),
            },
            // One request and a redirect per visit.
            http: PortLimits { max_connections: 64, max_per_address: 8, idle_timeout: Duration::from_secs(10) },
            // A handshake is two round trips on a LAN.
            tls_handshake_timeout: Duration::from_secs(5),
            warn_interval: Duration::from_secs(60),
        }
    }
}

impl WebLimits {
    /// Refuses limits that would stop the server from serving anyone.
    pub fn check(&self) -> Result<(), ApplianceError> {
        for (port, l) in [("https", &self.https), ("http", &self.http)] {
            if l.max_connections == 0 || l.max_per_address == 0 {
                return Err(ApplianceError::invalid(
                    &format!("web limits ({port})"),
                    "connection limits must be at least 1",
                ));
            }
            if l.idle_timeout.is_zero() {
                return Err(ApplianceError::invalid(&format!("web limits ({port})"), "the idle timeout must not be 0"));
            }
        }
        if self.tls_handshake_timeout.is_zero() {
            return Err(ApplianceError::invalid("web limits", "the TLS handshake timeout must not be 0"));
        }
        Ok(())
    }
}

/// What [`ConnectionTable::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Serve it; call [`ConnectionTable::release`] when it closes.
    Admitted,
    /// Close it; `warn` says whether this refusal is to be logged.
    Refused { reason: Refusal, warn: bool },
}

/// Which limit a refused connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address has [`PortLimits::max_per_address`] open.
    AddressFull,
    /// The port has [`PortLimits::max_connections`] open.
    PortFull,
}

/// The connections open on one port, by client address. No I/O.
#[derive(Debug)]
pub(crate) struct ConnectionTable {
    max_connections: usize,
    max_per_address: usize,
    warn_interval: Duration,
    open: usize,
    by_address: HashMap<IpAddr, usize>,
    /// When each address was last warned about (kept for `warn_interval`).
    warned: HashMap<IpAddr, Instant>,
    port_warned: Option<Instant>,
}

/// Addresses remembered as recently warned about; beyond this, only the
/// port-wide warning is logged (a host cycling through addresses cannot
/// grow the table without bound).
const MAX_WARNED: usize = 256;

impl ConnectionTable {
    pub(crate) fn new(limits: &PortLimits, warn_interval: Duration) -> Self {
        Self {
            max_connections: limits.max_connections,
            max_per_address: limits.max_per_address,
            warn_interval,
            open: 0,
            by_address: HashMap::new(),
            warned: HashMap::new(),
            port_warned: None,
        }
    }

    /// A connection from `peer` was accepted at `now`: count it, or refuse it.
    pub(crate) fn admit(&mut self, now: Instant, peer: IpAddr) -> Admission {
        let peer = client_key(peer);
        let from_peer = self.by_address.get(&peer).copied().unwrap_or(0);
        if from_peer >= self.max_per_address {
            let warn = self.should_warn(now, peer);
            return Admission::Refused { reason: Refusal::AddressFull, warn };
        }
        if self.open >= self.max_connections {
            let warn = self.port_warned.is_none_or(|t| now.saturating_duration_since(t) >= self.warn_interval);
            if warn {
                self.port_warned = Some(now);
            }
            return Admission::Refused { reason: Refusal::PortFull, warn };
        }
        self.open += 1;
        *self.by_address.entry(peer).or_insert(0) += 1;
        Admission::Admitted
    }

    /// An admitted connection from `peer` closed.
    pub(crate) fn release(&mut self, peer: IpAddr) {
        let peer = client_key(peer);
        if let Some(n) = self.by_address.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&peer);
            }
            self.open -= 1;
        }
    }

    /// Connections open now (all addresses).
    pub(crate) fn open(&self) -> usize {
        self.open
    }

    fn should_warn(&mut self, now: Instant, peer: IpAddr) -> bool {
        if let Some(last) = self.warned.get(&peer) {
            if now.saturating_duration_since(*last) < self.warn_interval {
                return false;
            }
        }
        if self.warned.len() >= MAX_WARNED && !self.warned.contains_key(&peer) {
            let interval = self.warn_interval;
            self.warned.retain(|_, t| now.saturating_duration_since(*t) < interval);
            if self.warned.len() >= MAX_WARNED {
                return false;
            }
        }
        self.warned.insert(peer, now);
        true
    }
}

/// The address a connection is counted under: IPv4-mapped IPv6 addresses
/// (a dual-stack socket's view of IPv4 clients) as their IPv4 address.
fn client_key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A TCP listener that admits connections within a port's limits and hands
/// them out as [`LimitedStream`]s.
#[derive(Debug)]
pub(crate) struct LimitedListener {
    tcp: TcpListener,
    /// "https" or "http", for the log.
    port: &'static str,
    table: Arc<Mutex<ConnectionTable>>,
    idle_timeout: Duration,
    max_per_address: usize,
    /// Set while accepting fails for want of file descriptors.
    starved: bool,
}

/// First and longest pause after accepting failed for a lack of resources.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(20);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

impl LimitedListener {
    pub(crate) fn new(tcp: TcpListener, port: &'static str, limits: &PortLimits, warn_interval: Duration) -> Self {
        Self {
            tcp,
            port,
            table: Arc::new(Mutex::new(ConnectionTable::new(limits, warn_interval))),
            idle_timeout: limits.idle_timeout,
            max_per_address: limits.max_per_address,
            starved: false,
        }
    }

    /// The next connection within the limits. Connections over a limit are
    /// closed here (dropped) and never reach the server.
    pub(crate) async fn accept_limited(&mut self) -> (LimitedStream, SocketAddr) {
        let mut pause = ACCEPT_PAUSE_MIN;
        loop {
            let (stream, peer) = match self.tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors (EMFILE, ENFILE) or memory: the
                    // connection waits in the backlog; try again after a pause.
                    if !self.starved {
                        tracing::warn!("{} port: cannot accept connections ({e}); retrying", self.port);
                        self.starved = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                    continue;
                }
            };
            if self.starved {
                tracing::info!("{} port: accepting connections again", self.port);
                self.starved = false;
            }
            pause = ACCEPT_PAUSE_MIN;
            let admission = lock(&self.table).admit(tokio::time::Instant::now().into_std(), peer.ip());
            match admission {
                Admission::Admitted => {
                    let slot = ConnectionSlot { table: self.table.clone(), peer: peer.ip() };
                    return (LimitedStream::new(stream, self.idle_timeout, slot), peer);
                }
                Admission::Refused { reason, warn } => {
                    if warn {
                        match reason {
                            Refusal::AddressFull => tracing::warn!(
                                "{} port: {} has {} connections open, the most one address may; closing its new ones",
                                self.port,
                                client_key(peer.ip()),
                                self.max_per_address
                            ),
                            Refusal::PortFull => tracing::warn!(
                                "{} port: {} connections open, the most it takes; closing new ones (the last from {})",
                                self.port,
                                lock(&self.table).open(),
                                client_key(peer.ip())
                            ),
                        }
                    }
                    // Dropping the stream closes it; with SO_LINGER unset the
                    // kernel finishes the close without holding our descriptor.
                    drop(stream);
                }
            }
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.accept_limited().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Errors of one connection (gone before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// An admitted connection's place in its port's [`ConnectionTable`],
/// given back when the connection is dropped.
#[derive(Debug)]
struct ConnectionSlot {
    table: Arc<Mutex<ConnectionTable>>,
    peer: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        lock(&self.table).release(self.peer);
    }
}

/// An admitted TCP connection that fails with [`io::ErrorKind::TimedOut`]
/// once no bytes have moved either way for the idle timeout, so the server
/// closes it; dropping it frees its place under the limits.
#[derive(Debug)]
pub struct LimitedStream {
    inner: TcpStream,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    _slot: ConnectionSlot,
}

impl LimitedStream {
    fn new(inner: TcpStream, idle_timeout: Duration, slot: ConnectionSlot) -> Self {
        let deadline = Box::pin(tokio::time::sleep(idle_timeout));
        Self { inner, idle_timeout, deadline, _slot: slot }
    }

    fn moved(&mut self) {
        let next = tokio::time::Instant::now() + self.idle_timeout;
        self.deadline.as_mut().reset(next);
    }

    /// `Pending` from the socket: still within the idle timeout?
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl AsyncRead for LimitedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max_connections: usize, max_per_address: usize) -> ConnectionTable {
        let limits = PortLimits { max_connections, max_per_address, idle_timeout: Duration::from_secs(1) };
        ConnectionTable::new(&limits, Duration::from_secs(60))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn an_address_at_its_limit_is_refused_and_others_are_not() {
        let now = Instant::now();
        let mut t = table(10, 3);
        for _ in 0..3 {
            assert_eq!(t.admit(now, ip("192.0.2.1")), Admission::Admitted);
        }
        assert_eq!(t.admit(now, ip("192.0.2.1")), Admission::Refused { reason: Refusal::AddressFull, warn: true });
        assert_eq!(t.admit(now, ip("192.0.2.2")), Admission::Admitted);
        // Its connections closing make room for it again.
        t.release(ip("192.0.2.1"));
        assert_eq!(t.admit(now, ip("192.0.2.1")), Admission::Admitted);
        assert_eq!(t.open(), 4);
    }

    #[test]
    fn the_port_ceiling_holds_across_addresses() {
        let now = Instant::now();
        let mut t = table(4, 3);
        for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
            assert_eq!(t.admit(now, ip(a)), Admission::Admitted);
        }
        assert_eq!(t.admit(now, ip("192.0.2.5")), Admission::Refused { reason: Refusal::PortFull, warn: true });
        assert_eq!(t.admit(now, ip("192.0.2.6")), Admission::Refused { reason: Refusal::PortFull, warn: false });
        t.release(ip("192.0.2.2"));
        assert_eq!(t.admit(now, ip("192.0.2.5")), Admission::Admitted);
    }

    #[test]
    fn warnings_about_an_address_come_once_per_interval() {
        let start = Instant::now();
        let mut t = table(10, 1);
        assert_eq!(t.admit(start, ip("192.0.2.1")), Admission::Admitted);
        let refused = |warn| Admission::Refused { reason: Refusal::AddressFull, warn };
        assert_eq!(t.admit(start, ip("192.0.2.1")), refused(true));
        assert_eq!(t.admit(start + Duration::from_secs(59), ip("192.0.2.1")), refused(false));
        assert_eq!(t.admit(start + Duration::from_secs(60), ip("192.0.2.1")), refused(true));
    }

    #[test]
    fn ipv6_addresses_count_alone_and_mapped_ipv4_counts_as_ipv4() {
        let now = Instant::now();
        let mut t = table(10, 1);
        // Two hosts on the same link share its /64; each has its own limit.
        assert_eq!(t.admit(now, ip("2001:db8::1")), Admission::Admitted);
        assert_eq!(t.admit(now, ip("2001:db8::2")), Admission::Admitted);
        assert_eq!(t.admit(now, ip("192.0.2.1")), Admission::Admitted);
        assert!(matches!(t.admit(now, ip("::ffff:192.0.2.1")), Admission::Refused { .. }));
        t.release(ip("::ffff:192.0.2.1"));
        assert_eq!(t.admit(now, ip("192.0.2.1")), Admission::Admitted);
    }

    #[test]
    fn the_warned_table_stays_bounded() {
        let now = Instant::now();
        let mut t = table(100_000, 1);
        let mut warned = 0;
        for i in 0..(MAX_WARNED as u32 + 50) {
            let a = IpAddr::from(0x0a00_0000u32.wrapping_add(i).to_be_bytes());
            assert_eq!(t.admit(now, a), Admission::Admitted);
            if t.admit(now, a) == (Admission::Refused { reason: Refusal::AddressFull, warn: true }) {
                warned += 1;
            }
        }
        assert_eq!(warned, MAX_WARNED);
        assert!(t.warned.len() <= MAX_WARNED);
    }

    #[test]
    fn limits_that_would_serve_nobody_are_refused() {
        assert!(WebLimits::default().check().is_ok());
        let mut l = WebLimits::default();
        l.http.max_per_address = 0;
        assert!(l.check().is_err());
        let mut l = WebLimits::default();
        l.https.idle_timeout = Duration::ZERO;
        assert!(l.check().is_err());
    }
}
