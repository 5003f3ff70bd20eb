//! A TCP relay for fault tests: forwards to a server, or turns into a black hole that accepts
//! connections and reads what it is sent but never answers, and counts what reaches it.
//!
//! Modes ([`RelayMode`]), switched at any time with [`Relay::set`]:
//! - `Forward`: new connections are relayed to the upstream address;
//! - `HoldNew`: new connections are held (read, counted, never answered); relayed ones go on;
//! - `HoldAll`: as `HoldNew`, and relayed connections stop relaying in both directions (what the
//!   client sends is read and counted, what the server sends is dropped).
//!
//! Back to `Forward`, every held or stopped connection is closed (a client that lost answers must
//! not get late ones), and new connections are relayed again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    Forward,
    HoldNew,
    HoldAll,
}

/// What reached the relay from clients, in any mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayCounts {
    /// Connections accepted.
    pub connections: u64,
    /// Bytes read from clients.
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// A running relay on `127.0.0.1:{port}`; stops when dropped.
pub struct Relay {
    pub port: u16,
    mode: watch::Sender<RelayMode>,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Start relaying to `upstream` (`host:port`) in `mode`. Call inside a tokio runtime.
    pub async fn start(upstream: &str, mode: RelayMode) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (tx, _) = watch::channel(mode);
        let counters = Arc::new(Counters::default());
        let upstream = upstream.to_owned();
        let (rx, c) = (tx.subscribe(), Arc::clone(&counters));
        let accept = tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                c.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(link(down, upstream.clone(), rx.clone(), Arc::clone(&c)));
            }
        });
        Ok(Self {
            port,
            mode: tx,
            counters,
            accept,
        })
    }

    /// `redis://127.0.0.1:{port}` (for a relay in front of Redis).
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: RelayMode) {
        self.mode.send_replace(mode);
    }

    pub fn counts(&self) -> RelayCounts {
        RelayCounts {
            connections: self.counters.connections.load(Ordering::SeqCst),
            bytes: self.counters.bytes.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn link(
    mut down: TcpStream,
    upstream: String,
    mut mode: watch::Receiver<RelayMode>,
    counters: Arc<Counters>,
) {
    let mut from_client = [0u8; 8192];
    let mut from_server = [0u8; 8192];
    let mut up = if *mode.borrow_and_update() == RelayMode::Forward {
        match TcpStream::connect(&upstream).await {
            Ok(up) => Some(up),
            Err(_) => return,
        }
    } else {
        None
    };
    // A held connection has no upstream; a stopped one keeps it but relays nothing.
    let mut relaying = up.is_some();
    loop {
        tokio::select! {
            r = down.read(&mut from_client) => {
                let n = match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                counters.bytes.fetch_add(n as u64, Ordering::SeqCst);
                if relaying {
                    if let Some(up) = up.as_mut() {
                        if up.write_all(&from_client[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
            r = async {
                match up.as_mut() {
                    Some(up) => up.read(&mut from_server).await,
                    None => std::future::pending().await,
                }
            } => {
                let n = match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if relaying && down.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                match *mode.borrow_and_update() {
                    RelayMode::Forward if !relaying => return,
                    RelayMode::HoldAll => relaying = false,
                    RelayMode::Forward | RelayMode::HoldNew => {}
                }
            }
        }
    }
}
