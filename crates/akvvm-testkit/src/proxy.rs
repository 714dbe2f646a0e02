//! A minimal HTTP CONNECT proxy on 127.0.0.1:0 (what a corporate proxy does for HTTPS): it
//! tunnels every target to one upstream address (a stand-in for resolving the target's name,
//! which would reach beyond this machine) and records each tunnel's target, so tests count the
//! tunnels and see that IMDS never went through it. Anything but CONNECT gets a 405.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A minimal HTTP CONNECT proxy on 127.0.0.1:0 that tunnels every target to `upstream` and
/// records the targets it was asked for.
pub async fn connect_proxy(upstream: SocketAddr) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let targets: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = targets.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let mut words = head.split_whitespace();
                if words.next() != Some("CONNECT") {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                seen.lock()
                    .unwrap()
                    .push(words.next().unwrap_or_default().to_owned());
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (format!("http://{addr}"), targets)
}
