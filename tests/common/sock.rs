//! The blocking socket under [`super::TestClient`]: TCP, a Unix domain socket, or either of
//! them behind the crate's TLS client filter (`wampring::net::tls::TlsFilter`), all with the
//! same `Read`/`Write` and read-timeout calls, so the test client's code is one for all of
//! them. TLS reads and writes are done through the filter in the calling thread: a write
//! encrypts and writes all the ciphertext; a read reads the socket until plaintext (or EOF)
//! comes out. Every read still has the caller's timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wampring::net::tls::{self, ServerTrust, TlsFilter};

/// A socket a test client talks through.
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsSock>),
}

/// A plain socket (`Sock::Tcp` or `Sock::Unix`) behind a TLS client filter.
pub struct TlsSock {
    inner: Sock,
    filter: TlsFilter,
    /// Decrypted bytes not yet read by the caller.
    plain: Vec<u8>,
}

/// What can wait for input with a timeout (the std sockets and [`Sock`]).
pub trait ReadTimeout: Read {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl ReadTimeout for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl ReadTimeout for Sock {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(timeout),
            Sock::Unix(s) => s.set_read_timeout(timeout),
            Sock::Tls(s) => s.inner.set_read_timeout(timeout),
        }
    }
}

impl Sock {
    pub fn tcp(addr: SocketAddr, timeout: Duration) -> io::Result<Sock> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Sock::Tcp(stream))
    }

    pub fn unix(path: &Path, timeout: Duration) -> io::Result<Sock> {
        let stream = UnixStream::connect(path)?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Sock::Unix(stream))
    }

    /// `self` behind a TLS client that trusts the PEM certificates in `ca` (`None`: any
    /// certificate) and checks them against `server_name`. The handshake runs with the first
    /// read or write (or [`Sock::handshake`]).
    pub fn tls(self, ca: Option<&Path>, server_name: &str) -> Sock {
        let trust = match ca {
            Some(ca) => ServerTrust::CaFile(ca.to_path_buf()),
            None => ServerTrust::Insecure,
        };
        let config: Arc<_> = tls::client_config(&trust).expect("test bug: TLS client config");
        let name = tls::server_name(server_name).expect("test bug: server name");
        let filter = TlsFilter::client(config, name).expect("test bug: TLS client");
        Sock::Tls(Box::new(TlsSock {
            inner: self,
            filter,
            plain: Vec::new(),
        }))
    }

    /// Completes the TLS handshake (a no-op for plain sockets); the error says why it failed.
    pub fn handshake(&mut self, timeout: Duration) -> io::Result<()> {
        let Sock::Tls(tls) = self else {
            return Ok(());
        };
        tls.inner.set_read_timeout(Some(timeout))?;
        let deadline = std::time::Instant::now() + timeout;
        while tls.filter.is_handshaking() {
            if std::time::Instant::now() >= deadline {
                return Err(io::ErrorKind::TimedOut.into());
            }
            tls.flush_ciphertext()?;
            if tls.read_some()? == 0 && tls.filter.is_handshaking() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed during the TLS handshake",
                ));
            }
        }
        tls.flush_ciphertext()
    }

    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            Sock::Unix(s) => s.shutdown(how),
            Sock::Tls(s) => {
                s.filter.close();
                let _ = s.flush_ciphertext();
                s.inner.shutdown(how)
            }
        }
    }
}

impl TlsSock {
    fn flush_ciphertext(&mut self) -> io::Result<()> {
        while !self.filter.ciphertext().is_empty() {
            let n = self.inner.write(self.filter.ciphertext())?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.filter.consume_ciphertext(n);
        }
        Ok(())
    }

    /// One socket read through the filter; the socket's count (0: EOF).
    fn read_some(&mut self) -> io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.inner.read(&mut buf)?;
        if n > 0 {
            let plain = &mut self.plain;
            self.filter
                .receive(&buf[..n], |p| plain.extend_from_slice(p))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        // Handshake replies, alerts.
        self.flush_ciphertext()?;
        Ok(n)
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
            Sock::Tls(s) => {
                // Records without plaintext (handshake, tickets) are read past; each socket
                // read has the caller's timeout.
                while s.plain.is_empty() {
                    if s.filter.peer_closed() || s.read_some()? == 0 {
                        return Ok(0);
                    }
                }
                let n = buf.len().min(s.plain.len());
                buf[..n].copy_from_slice(&s.plain[..n]);
                s.plain.drain(..n);
                Ok(n)
            }
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
            Sock::Tls(s) => {
                let mut taken = s.filter.send(buf);
                s.flush_ciphertext()?;
                if taken == 0 && !buf.is_empty() {
                    // The ciphertext bound was full; it is flushed now.
                    taken = s.filter.send(buf);
                    s.flush_ciphertext()?;
                }
                if taken == 0 && !buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the TLS session takes no more data",
                    ));
                }
                Ok(taken)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
            Sock::Tls(s) => s.flush_ciphertext(),
        }
    }
}
