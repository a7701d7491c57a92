//! Bench-only: a userspace WAN link between a client and a server (this
//! kernel has no `netem` qdisc). Every TCP connection accepted on `--listen`
//! is relayed to `--to`; in each direction, each chunk read is delivered
//! `--rtt-ms / 2` later (a delay line: reading goes on while earlier chunks
//! wait, so the delay does not cap throughput), each direction of each
//! connection is paced by its own token bucket at `--rate-mib` MiB/s, and
//! the bytes in flight in one direction (sent, not yet "acknowledged", which
//! happens another half round trip after delivery) are bounded by a TCP-like
//! window, `--window-kib` (default: half the kernel's `tcp_rmem` maximum, the
//! receive window Linux autotuning grows a connection to with
//! `tcp_adv_win_scale = 1`). Connections are not limited in number.
//!
//!   cargo run --release --example wanproxy -- --listen 127.0.0.1:P --to 127.0.0.1:Q \
//!       --rtt-ms 50 --rate-mib 50 [--window-kib K]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, sleep_until};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Address to accept connections on.
    #[arg(long)]
    listen: String,
    /// Address to relay them to.
    #[arg(long)]
    to: String,
    /// Round-trip time added (half in each direction).
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// Rate cap of each direction of each connection, MiB/s (0: none).
    #[arg(long, default_value_t = 50.0)]
    rate_mib: f64,
    /// Bytes in flight per direction, KiB (default: tcp_rmem max / 2).
    #[arg(long)]
    window_kib: Option<usize>,
}

/// Largest chunk read (and delayed) at once.
const CHUNK: usize = 64 * 1024;

fn default_window() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2)?.parse::<usize>().ok())
        .map(|max| max / 2)
        .unwrap_or(3 << 20)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let window = args
        .window_kib
        .map(|k| k * 1024)
        .unwrap_or_else(default_window)
        .max(CHUNK);
    let listener = TcpListener::bind(&args.listen).await?;
    println!(
        "wanproxy {} -> {}: rtt {} ms, {} MiB/s per connection and direction, window {} KiB",
        listener.local_addr()?,
        args.to,
        args.rtt_ms,
        args.rate_mib,
        window / 1024
    );
    let link = Arc::new(Link {
        one_way: Duration::from_millis(args.rtt_ms) / 2,
        rate: args.rate_mib * 1024.0 * 1024.0,
        window,
    });
    loop {
        let (client, _) = listener.accept().await?;
        let (to, link) = (args.to.clone(), link.clone());
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(&to).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::join!(link.direction(cr, sw), link.direction(sr, cw));
        });
    }
}

struct Link {
    one_way: Duration,
    /// Bytes per second; 0 or less: unlimited.
    rate: f64,
    window: usize,
}

impl Link {
    /// Relay `from` to `to` through the delay line until EOF or an error.
    async fn direction(&self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
        let window = Arc::new(Semaphore::new(self.window));
        // Chunks with their delivery time; None: EOF (shut the write side).
        let (tx, mut rx) = mpsc::unbounded_channel::<Option<(Instant, Vec<u8>)>>();
        // Delivered bytes with the time their "acknowledgement" comes back.
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<(Instant, usize)>();
        let acks = {
            let window = window.clone();
            async move {
                while let Some((at, n)) = ack_rx.recv().await {
                    sleep_until(at).await;
                    window.add_permits(n);
                }
            }
        };
        let one_way = self.one_way;
        let closing = window.clone();
        let writer = async move {
            while let Some(Some((at, buf))) = rx.recv().await {
                sleep_until(at).await;
                if to.write_all(&buf).await.is_err() {
                    break;
                }
                let _ = ack_tx.send((Instant::now() + one_way, buf.len()));
            }
            let _ = to.shutdown().await;
            // A reader waiting for window frees it (the far end is gone).
            closing.close();
        };
        let reader = async move {
            // Token bucket as a pacing clock: the time the bytes read so
            // far may have left; at most 2 chunks of burst.
            let mut clock = Instant::now();
            loop {
                let Ok(permit) = window.acquire_many(CHUNK as u32).await else {
                    break;
                };
                permit.forget();
                let mut buf = vec![0u8; CHUNK];
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                window.add_permits(CHUNK - n);
                buf.truncate(n);
                if self.rate > 0.0 {
                    let now = Instant::now();
                    let burst = Duration::from_secs_f64(2.0 * CHUNK as f64 / self.rate);
                    clock = clock.max(now.checked_sub(burst).unwrap_or(now));
                    clock += Duration::from_secs_f64(n as f64 / self.rate);
                    sleep_until(clock).await;
                }
                if tx.send(Some((Instant::now() + one_way, buf))).is_err() {
                    break;
                }
            }
            let _ = tx.send(None);
        };
        tokio::join!(reader, writer, acks);
    }
}
