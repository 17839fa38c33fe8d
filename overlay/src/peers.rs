//! One QUIC connection per peer, shared by every flow to it: made on first
//! use, made again once it has closed or the peer moved to another
//! address, or after [`Peers::close`]. Each peer has its own slot, so a
//! slow handshake with one peer never holds up flows to the others.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

type Slot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

#[derive(Default)]
pub struct Peers {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Peers {
    /// The connection to peer `name` at `addr`, and whether it was just
    /// made (the caller then starts serving what the peer sends on it).
    /// Flows to one peer wait for its one handshake.
    pub async fn connect(
        &self,
        endpoint: &quinn::Endpoint,
        config: &quinn::ClientConfig,
        name: &str,
        addr: SocketAddr,
    ) -> io::Result<(quinn::Connection, bool)> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref()
            && conn.close_reason().is_none()
            && conn.remote_address() == addr
        {
            return Ok((conn.clone(), false));
        }
        let conn = endpoint
            .connect_with(config.clone(), addr, name)
            .map_err(|e| io::Error::new(io::ErrorKind::NotConnected, e))?
            .await
            .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))?;
        tracing::debug!(peer.node = %name, peer.addr = %addr, "overlay connection up");
        *slot = Some(conn.clone());
        Ok((conn, true))
    }

    /// Closes the connection to peer `name`, if there is one, so the next
    /// [`Peers::connect`] makes a new one (a caller that found it wedged).
    pub fn close(&self, name: &str, reason: &'static [u8]) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        // A slot held by a handshake in progress is left to it: what it
        // makes is new.
        if let Some(slot) = slot
            && let Ok(mut slot) = slot.try_lock()
            && let Some(conn) = slot.take()
        {
            conn.close(1u32.into(), reason);
        }
    }
}
