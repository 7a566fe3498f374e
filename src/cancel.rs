//! Query cancellation that returns only once the server has acted on the request.
//!
//! libpq's `PQcancel` waits for the server to close the cancel connection: by then the
//! cancel signal has reached the backend, so it cannot hit a statement sent afterwards.
//! tokio-postgres's `cancel_query` returns as soon as the request is written, so a
//! statement issued right after `cancel()` returned could be cancelled instead. We hand
//! `cancel_query_raw` a stream whose shutdown waits for the server's end of file.

use crate::pool::ConnectSpec;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::CancelToken;

/// Never wait longer than this for a server to take a cancel request.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A socket whose `shutdown` closes the write half, then reads until the peer closes.
pub struct EofOnShutdown {
    socket: Socket,
    write_closed: bool,
}

impl AsyncRead for EofOnShutdown {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EofOnShutdown {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            ready!(match &mut this.socket {
                Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
                Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            })?;
            this.write_closed = true;
        }
        let mut scratch = [0u8; 256];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut *this).poll_read(cx, &mut buf))?;
            if buf.filled().is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

async fn open(host: &str, port: u16) -> io::Result<EofOnShutdown> {
    let socket = if host.starts_with('/') {
        Socket::Unix(UnixStream::connect(format!("{host}/.s.PGSQL.{port}")).await?)
    } else {
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        Socket::Tcp(tcp)
    };
    Ok(EofOnShutdown { socket, write_closed: false })
}

/// Sends a cancel request for `token`'s backend to the server its session is on (`peer`:
/// address dialled, host name given, port) and waits until the server has handled it.
/// `Err` is a user-facing message.
pub async fn cancel(
    token: CancelToken,
    peer: (String, Option<String>, u16),
    spec: &ConnectSpec,
    tls: crate::tls::Connector,
) -> Result<(), String> {
    let (host, hostname, port) = peer;
    let tls_required = !matches!(spec.sslmode.as_str(), "disable" | "allow" | "prefer");
    let attempt = async {
        let stream = open(&host, port).await.map_err(|e| e.to_string())?;
        if !tls_required {
            // As libpq before 17: the cancel request goes in clear (the postmaster
            // reads it before any authentication), so no TLS close races the
            // server's own close.
            return token.cancel_query_raw(stream, tokio_postgres::NoTls).await.map_err(|e| e.to_string());
        }
        let tls = tls.for_stream::<EofOnShutdown>(hostname.as_deref().unwrap_or(&host)).map_err(|e| e.to_string())?;
        match token.cancel_query_raw(stream, tls).await {
            // The server closed first, after reading the request: it was handled.
            Err(e) if closed_by_peer(&e) => Ok(()),
            other => other.map_err(|e| e.to_string()),
        }
    };
    match tokio::time::timeout(CANCEL_TIMEOUT, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cancel request to \"{host}\", port {port} failed: {e}")),
        Err(_) => Err(format!("cancel request to \"{host}\", port {port} timed out")),
    }
}

fn closed_by_peer(e: &tokio_postgres::Error) -> bool {
    crate::errors::io_cause(e).is_some_and(|io| {
        matches!(io.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof)
    })
}
