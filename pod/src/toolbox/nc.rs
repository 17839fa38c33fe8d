//! `nc`: port checks (`-z`) and simple TCP/UDP/SCTP conversations, with
//! OpenBSD netcat's messages (the one Debian and Ubuntu ship).
//!
//! OpenBSD nc has no SCTP; `--sctp` is nmap ncat's flag for it, and makes
//! the check or conversation an SCTP association (a one-to-one socket, as
//! ncat opens), reported in OpenBSD nc's words with `sctp` for the
//! protocol. An association nothing accepts (ABORT) is Connection refused.
//!
//! Not here: listening (`-l`), proxies, port ranges, source addresses;
//! stdin is sent whole and then the sending side is closed (like `nc -N`),
//! since exec hands over a finished stdin.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Output, parse, parse_seconds, resolve_family, strerror};
use crate::netns::{NetNs, StreamProtocol};

/// Without `-w`, OpenBSD nc waits for the OS connect timeout (about two
/// minutes on Linux), and an emulated silent destination never answers at
/// all; podnet's nc gives up connecting after 5 s. The same bound is how
/// long a UDP check or UDP conversation waits for a reply.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// What a UDP check sends, as OpenBSD nc does.
const UDP_PROBE: &[u8] = b"X";

#[derive(Debug, Parser)]
#[command(
    name = "nc",
    about = "Open TCP connections or SCTP associations, or send UDP datagrams (podnet toolbox)",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    family: super::FamilyArgs,
    /// Only check that the port answers; send no data.
    #[arg(short = 'z')]
    zero_io: bool,
    /// Report successes and failures on stderr.
    #[arg(short = 'v', action = ArgAction::Count)]
    verbose: u8,
    /// UDP instead of TCP.
    #[arg(short = 'u')]
    udp: bool,
    /// SCTP instead of TCP (ncat's flag; OpenBSD nc has none).
    #[arg(long = "sctp", conflicts_with = "udp")]
    sctp: bool,
    /// Accepted for compatibility: names are never looked up in reverse here.
    #[arg(short = 'n')]
    _numeric: bool,
    /// Accepted for compatibility: the sending side is always closed after stdin.
    #[arg(short = 'N')]
    _shutdown: bool,
    /// Connect timeout, and idle timeout once connected (seconds).
    #[arg(short = 'w', value_name = "SECONDS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
    host: String,
    port: String,
}

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], stdin: &[u8], out: &mut Output) -> i32 {
    let args: Args = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let port = match args.port.parse::<u16>() {
        Ok(port) if port != 0 => port,
        _ => return out.fail(1, format!("nc: port number invalid: {}\n", args.port)),
    };
    let ip = match resolve_family(ns, &args.host, args.family.family()).await {
        Ok(ip) => ip,
        Err(error) => {
            return out.fail(
                1,
                format!(
                    "nc: getaddrinfo for host \"{}\" port {port}: {}\n",
                    args.host,
                    error.gai_message()
                ),
            );
        }
    };
    let target = Target {
        host: &args.host,
        port,
        addr: SocketAddr::new(ip, port),
        verbose: args.verbose > 0,
    };
    let stream = if args.sctp {
        StreamProtocol::Sctp
    } else {
        StreamProtocol::Tcp
    };
    match (args.udp, args.zero_io) {
        (false, true) => stream_check(ns, stream, &target, args.timeout, out).await,
        (true, true) => udp_check(ns, &target, args.timeout, out).await,
        (false, false) => stream_talk(ns, stream, &target, args.timeout, stdin, out).await,
        (true, false) => udp_talk(ns, &target, args.timeout, stdin, out).await,
    }
}

struct Target<'a> {
    host: &'a str,
    port: u16,
    addr: SocketAddr,
    verbose: bool,
}

impl Target<'_> {
    fn succeeded(&self, protocol: &str, out: &mut Output) {
        if self.verbose {
            out.eprint(format!(
                "Connection to {} {} port [{protocol}/*] succeeded!\n",
                self.host, self.port
            ));
        }
    }

    /// OpenBSD nc reports connect failures only with -v; the exit code (1)
    /// always tells.
    fn failed(&self, protocol: &str, how: &str, out: &mut Output) -> i32 {
        if self.verbose {
            out.eprint(format!(
                "nc: connect to {} port {} ({protocol}) {how}\n",
                self.host, self.port
            ));
        }
        1
    }
}

/// A TCP connection or an SCTP association to the target.
async fn connect(
    ns: &Arc<NetNs>,
    protocol: StreamProtocol,
    target: &Target<'_>,
    timeout: Option<Duration>,
    out: &mut Output,
) -> Result<crate::netns::PodStream, i32> {
    let name = protocol.as_str();
    match tokio::time::timeout(
        timeout.unwrap_or(DEFAULT_TIMEOUT),
        ns.connect_stream(protocol, target.addr, 0),
    )
    .await
    {
        Ok(Ok(stream)) => {
            target.succeeded(name, out);
            Ok(stream)
        }
        Ok(Err(error)) => Err(target.failed(name, &format!("failed: {}", strerror(&error)), out)),
        Err(_) => Err(target.failed(name, "timed out: Operation now in progress", out)),
    }
}

async fn stream_check(
    ns: &Arc<NetNs>,
    protocol: StreamProtocol,
    target: &Target<'_>,
    timeout: Option<Duration>,
    out: &mut Output,
) -> i32 {
    match connect(ns, protocol, target, timeout, out).await {
        Ok(_stream) => 0,
        Err(code) => code,
    }
}

/// A UDP port check. OpenBSD nc reports any UDP port that does not send
/// back a port-unreachable as open, silence included; podnet counts only an
/// actual reply as success, so that `nc -zu` against a dropped or
/// partitioned destination fails, which is what a reachability check means.
async fn udp_check(
    ns: &Arc<NetNs>,
    target: &Target<'_>,
    timeout: Option<Duration>,
    out: &mut Output,
) -> i32 {
    let socket = match ns.bind_udp(0) {
        Ok(socket) => socket,
        Err(error) => return out.fail(1, format!("nc: socket: {}\n", strerror(&error))),
    };
    if let Err(error) = socket.send_to(UDP_PROBE, target.addr).await {
        return target.failed("udp", &format!("failed: {}", strerror(&error)), out);
    }
    // nc connects its UDP socket: datagrams from any other address than the
    // one asked are not for it (this is what makes a Service's reply have to
    // come back from the ClusterIP or NodePort, not from the pod).
    let deadline = tokio::time::Instant::now() + timeout.unwrap_or(DEFAULT_TIMEOUT);
    loop {
        match tokio::time::timeout_at(deadline, socket.recv_from()).await {
            Ok(Ok((_, from))) if from == target.addr => {
                target.succeeded("udp", out);
                return 0;
            }
            Ok(Ok(_)) => continue,
            Ok(Err(error)) => {
                return target.failed("udp", &format!("failed: {}", strerror(&error)), out);
            }
            Err(_) => return target.failed("udp", "timed out: no reply", out),
        }
    }
}

fn output_full(out: &mut Output) -> i32 {
    out.fail(
        1,
        format!(
            "nc: output exceeds the {} bytes podnet exec keeps\n",
            super::MAX_OUTPUT
        ),
    )
}

/// Sends stdin, closes the sending side, prints what comes back until the
/// peer closes or, with -w, nothing arrives for that long.
async fn stream_talk(
    ns: &Arc<NetNs>,
    protocol: StreamProtocol,
    target: &Target<'_>,
    timeout: Option<Duration>,
    stdin: &[u8],
    out: &mut Output,
) -> i32 {
    let stream = match connect(ns, protocol, target, timeout, out).await {
        Ok(stream) => stream,
        Err(code) => return code,
    };
    // Sending and receiving run together: a peer that answers while it
    // reads (tcp-echo) would otherwise fill both pipes and stall.
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (code, sent) = {
        let mut send = std::pin::pin!(async {
            writer.write_all(stdin).await?;
            writer.shutdown().await
        });
        let mut receive = std::pin::pin!(receive(&mut reader, timeout, out));
        let mut sent = None;
        loop {
            tokio::select! {
                result = &mut send, if sent.is_none() => sent = Some(result),
                code = &mut receive => break (code, sent),
            }
        }
    };
    match sent {
        // Once the peer has closed, nc's remaining input has nowhere to go;
        // the peer's answer is what counts.
        Some(Err(error)) if code == 0 && error.kind() != io::ErrorKind::BrokenPipe => {
            out.fail(1, format!("nc: write failed: {}\n", strerror(&error)))
        }
        _ => code,
    }
}

async fn receive(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    timeout: Option<Duration>,
    out: &mut Output,
) -> i32 {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let read = match timeout {
            Some(t) => match tokio::time::timeout(t, reader.read(&mut buf)).await {
                Ok(read) => read,
                // Idle for -w: done, as nc is.
                Err(_) => return 0,
            },
            None => reader.read(&mut buf).await,
        };
        match read {
            Ok(0) => return 0,
            Ok(n) => {
                if !out.print(&buf[..n]) {
                    return output_full(out);
                }
            }
            Err(error) => return out.fail(1, format!("nc: read failed: {}\n", strerror(&error))),
        }
    }
}

/// Sends stdin as one datagram and prints every reply until none arrives
/// for -w (or 5 s): UDP has no end of stream to wait for.
async fn udp_talk(
    ns: &Arc<NetNs>,
    target: &Target<'_>,
    timeout: Option<Duration>,
    stdin: &[u8],
    out: &mut Output,
) -> i32 {
    let socket = match ns.bind_udp(0) {
        Ok(socket) => socket,
        Err(error) => return out.fail(1, format!("nc: socket: {}\n", strerror(&error))),
    };
    target.succeeded("udp", out);
    if !stdin.is_empty()
        && let Err(error) = socket.send_to(stdin, target.addr).await
    {
        return out.fail(1, format!("nc: write failed: {}\n", strerror(&error)));
    }
    loop {
        match tokio::time::timeout(timeout.unwrap_or(DEFAULT_TIMEOUT), socket.recv_from()).await {
            Err(_) => return 0,
            Ok(Ok((payload, _from))) => {
                if !out.print(&payload) {
                    return output_full(out);
                }
            }
            Ok(Err(error)) => return out.fail(1, format!("nc: read(net): {}\n", strerror(&error))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_short_flags_parse() {
        let args = Args::try_parse_from(["nc", "-zvw1", "10.0.0.1", "80"]).expect("args");
        assert!(args.zero_io);
        assert_eq!(args.verbose, 1);
        assert_eq!(args.timeout, Some(Duration::from_secs(1)));
        assert_eq!((args.host.as_str(), args.port.as_str()), ("10.0.0.1", "80"));

        let args = Args::try_parse_from(["nc", "-zu", "-w", "0.5", "h", "53"]).expect("args");
        assert!(args.zero_io && args.udp);
        assert_eq!(args.timeout, Some(Duration::from_millis(500)));

        assert!(Args::try_parse_from(["nc", "-z", "h"]).is_err());
    }

    #[test]
    fn sctp_is_ncats_long_flag_and_excludes_udp() {
        let args = Args::try_parse_from(["nc", "--sctp", "-zv", "h", "5000"]).expect("args");
        assert!(args.sctp && args.zero_io && !args.udp);
        assert!(!Args::try_parse_from(["nc", "h", "1"]).expect("args").sctp);
        assert!(Args::try_parse_from(["nc", "--sctp", "-u", "h", "1"]).is_err());
    }
}
