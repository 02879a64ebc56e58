//! HTTPS in the process (`agenttrace serve --tls-cert … --tls-key …`): the edge reaches the ETL
//! over TLS without a proxy in front.
//!
//! Handshakes run on tasks of their own, each bounded in time and in number (overall and per
//! client address), so a client that opens connections and stalls holds a few slots for ten
//! seconds, not the accept loop and not every slot.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Longest a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; connections past it are closed at once. A stalled
/// handshake costs a task and a few KB, so the bound is generous.
const MAX_HANDSHAKES: usize = 8192;
/// Handshakes in progress from one address (an IPv6 /64 counts as one): one client that opens
/// connections and stalls cannot take every slot from the others. The edge's requests come
/// from a few Cloudflare addresses, so this stays well above a reconnecting edge's burst.
const MAX_HANDSHAKES_PER_ADDRESS: usize = 256;

/// Handshakes in progress, per client address.
#[derive(Default)]
struct InProgress(Mutex<HashMap<IpAddr, usize>>);

impl InProgress {
    /// A slot for `address`, or `None` when it has [`MAX_HANDSHAKES_PER_ADDRESS`] already.
    fn take(self: &Arc<Self>, address: IpAddr) -> Option<AddressSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(address).or_default();
        if *count >= MAX_HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            in_progress: self.clone(),
            address,
        })
    }
}

struct AddressSlot {
    in_progress: Arc<InProgress>,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.in_progress.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// The server side of TLS from a PEM certificate chain and its PEM private key, each error
/// naming the file and what is wrong with it.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "--tls-key {}: {e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert and --tls-key do not make a certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The address a client is counted by: itself for IPv4, its /64 for IPv6 (one host can hold a
/// whole /64).
fn client_network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// A listener that hands out connections once their TLS handshake is done.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let accepting = tokio::spawn(async move {
            let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
            let per_address = Arc::new(InProgress::default());
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, mostly: wait instead of spinning.
                        tracing::warn!(%error, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(address_slot) = per_address.take(client_network(peer.ip())) else {
                    tracing::debug!(%peer, "{MAX_HANDSHAKES_PER_ADDRESS} TLS handshakes in progress from this address: connection closed");
                    continue;
                };
                let Ok(slot) = handshakes.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "{MAX_HANDSHAKES} TLS handshakes in progress: connection closed");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    let _slots = (slot, address_slot);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            local,
            ready,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop holds a sender until this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_a_bounded_share_of_handshakes() {
        let in_progress = Arc::new(InProgress::default());
        let (one, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut held: Vec<AddressSlot> = (0..MAX_HANDSHAKES_PER_ADDRESS)
            .map(|_| in_progress.take(one).unwrap())
            .collect();
        assert!(in_progress.take(one).is_none());
        assert!(
            in_progress.take(other).is_some(),
            "another address is not held back"
        );
        held.pop();
        assert!(
            in_progress.take(one).is_some(),
            "a finished handshake frees its slot"
        );
        drop(held);
        assert!(
            in_progress.0.lock().unwrap().is_empty(),
            "no address left counted"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a), client_network(b));
        assert_ne!(client_network(a), client_network(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_network(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn unreadable_certificates_are_named() {
        let missing = server_config(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        );
        assert!(
            missing
                .unwrap_err()
                .starts_with("--tls-cert /nonexistent/cert.pem")
        );
        let not_pem = server_config(Path::new("/etc/hostname"), Path::new("/etc/hostname"));
        assert!(not_pem.unwrap_err().contains("no PEM certificate"));
    }
}
