//! `ss` (iproute2) and `netstat` (net-tools): the pod's TCP and SCTP
//! listeners, bound UDP sockets, TCP connections and SCTP associations,
//! from the namespace's own socket table ([`NetNs::sockets`]), in the real
//! tools' column layouts (SCTP rows as `sctp`, with TCP's states).
//!
//! Options: `-t`, `-u`, `-S` (none of them: all three), `-l` (listening only), `-a` (all;
//! neither: connections only), `-n`, `-4` and `-p` are accepted. Addresses
//! are always numeric (there are no service names to look up), the Process
//! column is empty (a pod's containers share one table), and a connection's
//! queues are shown as 0 (its buffers are not counted). Deliberately not
//! here: `ss -s`, filters (`sport = :80`), `-e`, `-m`, `-i`, UNIX sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use clap::Parser;
use podnet_proto::model::view::Protocol;

use super::{Output, parse};
use crate::netns::{NetNs, SocketInfo, SocketState};

#[derive(Debug, Parser)]
#[command(
    about = "List the pod's sockets (podnet toolbox)",
    disable_version_flag = true
)]
struct Args {
    /// TCP sockets.
    #[arg(short = 't', long = "tcp")]
    tcp: bool,
    /// UDP sockets.
    #[arg(short = 'u', long = "udp")]
    udp: bool,
    /// SCTP sockets.
    #[arg(short = 'S', long = "sctp")]
    sctp: bool,
    /// Listening sockets only.
    #[arg(short = 'l', long = "listening")]
    listening: bool,
    /// Listening and connected sockets.
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Accepted: addresses are always numeric.
    #[arg(short = 'n', long = "numeric")]
    _numeric: bool,
    /// Accepted: the pod's processes are not told apart.
    #[arg(short = 'p', long = "processes", alias = "programs")]
    _processes: bool,
    /// IPv4 sockets only (a dual-stack pod's, on `[::]`, are IPv6 ones).
    #[arg(short = '4', long = "ipv4")]
    ipv4: bool,
    /// IPv6 sockets only.
    #[arg(short = '6', long = "ipv6", conflicts_with = "ipv4")]
    ipv6: bool,
}

/// Which rows a command line asks for.
#[derive(Debug, Clone, Copy)]
struct Selection {
    tcp: bool,
    udp: bool,
    sctp: bool,
    listening: bool,
    connected: bool,
    /// `Some(true)`: IPv6 sockets only; `Some(false)`: IPv4 only.
    ipv6: Option<bool>,
}

impl Selection {
    fn of(args: &Args) -> Selection {
        let all = !args.tcp && !args.udp && !args.sctp;
        Selection {
            tcp: args.tcp || all,
            udp: args.udp || all,
            sctp: args.sctp || all,
            listening: args.listening || args.all,
            connected: args.all || !args.listening,
            ipv6: match (args.ipv4, args.ipv6) {
                (true, _) => Some(false),
                (_, true) => Some(true),
                _ => None,
            },
        }
    }

    fn wants(&self, row: &SocketInfo) -> bool {
        let protocol = match row.protocol {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
            Protocol::Sctp => self.sctp,
        };
        let state = match row.state {
            SocketState::Listen | SocketState::Unconn => self.listening,
            SocketState::Established => self.connected,
        };
        let family = self.ipv6.is_none_or(|v6| row.local.is_ipv6() == v6);
        protocol && state && family
    }

    /// Are several protocols listed (ss then shows its Netid column)?
    fn several_protocols(&self) -> bool {
        [self.tcp, self.udp, self.sctp]
            .into_iter()
            .filter(|&p| p)
            .count()
            > 1
    }
}

fn netid(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// `ss`'s state names.
fn ss_state(state: SocketState) -> &'static str {
    match state {
        SocketState::Listen => "LISTEN",
        SocketState::Unconn => "UNCONN",
        SocketState::Established => "ESTAB",
    }
}

/// An address as iproute2's `ss` prints it: IPv4 as is, IPv6 in
/// brackets, and the IPv6 wildcard of a socket that takes both families
/// (a dual-stack pod's, like a Linux socket on `[::]` without
/// `IPV6_V6ONLY`) as `*`.
fn ss_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => "*".to_owned(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

/// The peer as `(address, port)`; without one (a listener or an
/// unconnected UDP socket) the wildcard of the local address's family
/// and `*`.
fn peer_parts(local: SocketAddr, peer: Option<SocketAddr>) -> (String, String) {
    match peer {
        Some(peer) => (ss_address(peer.ip()), peer.port().to_string()),
        None => {
            let any = match local {
                SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            (ss_address(any), "*".to_owned())
        }
    }
}

/// `ss` output: columns as wide as their widest cell, addresses right- and
/// ports left-aligned around the `:`, a `Netid` column first when more than
/// one protocol is listed.
pub(super) fn format_ss(rows: &[SocketInfo], with_netid: bool) -> String {
    struct Line {
        netid: String,
        state: String,
        recv_q: String,
        send_q: String,
        local: (String, String),
        peer: (String, String),
    }
    let header = Line {
        netid: "Netid".into(),
        state: "State".into(),
        recv_q: "Recv-Q".into(),
        send_q: "Send-Q".into(),
        local: ("Local Address".into(), "Port".into()),
        peer: ("Peer Address".into(), "Port".into()),
    };
    let lines: Vec<Line> = std::iter::once(header)
        .chain(rows.iter().map(|row| Line {
            netid: netid(row.protocol).into(),
            state: ss_state(row.state).into(),
            recv_q: row.recv_q.to_string(),
            send_q: row.send_q.to_string(),
            local: (ss_address(row.local.ip()), row.local.port().to_string()),
            peer: peer_parts(row.local, row.peer),
        }))
        .collect();
    let width = |f: &dyn Fn(&Line) -> usize| lines.iter().map(f).max().unwrap_or(0);
    let w_netid = width(&|l| l.netid.len());
    let w_state = width(&|l| l.state.len());
    let w_recv = width(&|l| l.recv_q.len());
    let w_send = width(&|l| l.send_q.len());
    let w_local = width(&|l| l.local.0.len());
    let w_lport = width(&|l| l.local.1.len());
    let w_peer = width(&|l| l.peer.0.len());
    let w_pport = width(&|l| l.peer.1.len());
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        let mut line = String::new();
        if with_netid {
            line.push_str(&format!("{:<w_netid$} ", l.netid));
        }
        line.push_str(&format!(
            "{:<w_state$} {:<w_recv$} {:<w_send$} {:>w_local$}:{:<w_lport$} {:>w_peer$}:{:<w_pport$} {}",
            l.state,
            l.recv_q,
            l.send_q,
            l.local.0,
            l.local.1,
            l.peer.0,
            l.peer.1,
            if i == 0 { "Process" } else { "" },
        ));
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// net-tools' state names.
fn netstat_state(row: &SocketInfo) -> &'static str {
    match row.state {
        SocketState::Listen => "LISTEN",
        SocketState::Established => "ESTABLISHED",
        // Unconnected UDP sockets have no state in netstat.
        SocketState::Unconn => "",
    }
}

/// `netstat` output: net-tools' title and fixed columns (`%-5s %6d %6d
/// %-23s %-23s %s`).
pub(super) fn format_netstat(rows: &[SocketInfo], listening: bool, connected: bool) -> String {
    let title = match (listening, connected) {
        (true, true) => "servers and established",
        (true, false) => "only servers",
        _ => "w/o servers",
    };
    let mut text = format!("Active Internet connections ({title})\n");
    let line = |proto: &str, recv: &str, send: &str, local: &str, peer: &str, state: &str| {
        format!("{proto:<5} {recv:>6} {send:>6} {local:<23} {peer:<23} {state}")
            .trim_end()
            .to_owned()
            + "\n"
    };
    text.push_str(&line(
        "Proto",
        "Recv-Q",
        "Send-Q",
        "Local Address",
        "Foreign Address",
        "State",
    ));
    // net-tools prints IPv6 addresses bare (`:::8080`) and names their
    // protocol `tcp6`/`udp6`.
    let address = |ip: IpAddr, port: &str| format!("{ip}:{port}");
    for row in rows {
        let peer = match row.peer {
            Some(peer) => address(peer.ip(), &peer.port().to_string()),
            None if row.local.is_ipv6() => address(Ipv6Addr::UNSPECIFIED.into(), "*"),
            None => address(Ipv4Addr::UNSPECIFIED.into(), "*"),
        };
        let proto = match (row.protocol, row.local.is_ipv6()) {
            (protocol, false) => netid(protocol).to_owned(),
            (protocol, true) => format!("{}6", netid(protocol)),
        };
        // netstat reads /proc/net/tcp, whose tx_queue of a listener is 0;
        // only ss (inet_diag) shows the backlog there.
        let send_q = if row.state == SocketState::Listen {
            0
        } else {
            row.send_q
        };
        text.push_str(&line(
            &proto,
            &row.recv_q.to_string(),
            &send_q.to_string(),
            &address(row.local.ip(), &row.local.port().to_string()),
            &peer,
            netstat_state(row),
        ));
    }
    text
}

/// The sockets `argv`'s options select, and the selection; `Err` is the
/// exit code of a command line that does not parse.
fn selected(
    ns: &Arc<NetNs>,
    argv: &[String],
    out: &mut Output,
) -> Result<(Selection, Vec<SocketInfo>), i32> {
    let args: Args = parse(argv, out)?;
    let selection = Selection::of(&args);
    let rows = ns
        .sockets()
        .into_iter()
        .filter(|r| selection.wants(r))
        .collect();
    Ok((selection, rows))
}

pub(super) fn ss(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    match selected(ns, argv, out) {
        Ok((selection, rows)) => {
            out.print(format_ss(&rows, selection.several_protocols()));
            0
        }
        Err(code) => code,
    }
}

pub(super) fn netstat(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    match selected(ns, argv, out) {
        Ok((selection, rows)) => {
            out.print(format_netstat(
                &rows,
                selection.listening,
                selection.connected,
            ));
            0
        }
        Err(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP listener on `local` with the default backlog.
    fn listener(local: SocketAddr) -> SocketInfo {
        SocketInfo {
            protocol: Protocol::Tcp,
            state: SocketState::Listen,
            local,
            peer: None,
            recv_q: 0,
            send_q: 1024,
        }
    }

    /// An established TCP connection.
    fn connection(local: SocketAddr, peer: SocketAddr) -> SocketInfo {
        SocketInfo {
            protocol: Protocol::Tcp,
            state: SocketState::Established,
            local,
            peer: Some(peer),
            recv_q: 0,
            send_q: 0,
        }
    }

    fn rows() -> Vec<SocketInfo> {
        vec![
            listener(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080))),
            connection(
                SocketAddr::from((Ipv4Addr::new(10, 244, 1, 5), 8080)),
                SocketAddr::from((Ipv4Addr::new(10, 244, 2, 7), 40001)),
            ),
            SocketInfo {
                protocol: Protocol::Udp,
                state: SocketState::Unconn,
                local: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 53)),
                peer: None,
                recv_q: 0,
                send_q: 0,
            },
        ]
    }

    #[test]
    fn ss_columns() {
        assert_eq!(
            format_ss(&rows()[..2], false),
            "State  Recv-Q Send-Q Local Address:Port Peer Address:Port  Process\n\
             LISTEN 0      1024         0.0.0.0:8080      0.0.0.0:*\n\
             ESTAB  0      0         10.244.1.5:8080   10.244.2.7:40001\n"
        );
        assert_eq!(
            format_ss(&rows(), true),
            "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port  Process\n\
             tcp   LISTEN 0      1024         0.0.0.0:8080      0.0.0.0:*\n\
             tcp   ESTAB  0      0         10.244.1.5:8080   10.244.2.7:40001\n\
             udp   UNCONN 0      0            0.0.0.0:53        0.0.0.0:*\n"
        );
        assert_eq!(
            format_ss(&[], false),
            "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        );
    }

    #[test]
    fn netstat_columns() {
        assert_eq!(
            format_netstat(&rows(), true, true),
            "Active Internet connections (servers and established)\n\
             Proto Recv-Q Send-Q Local Address           Foreign Address         State\n\
             tcp        0      0 0.0.0.0:8080            0.0.0.0:*               LISTEN\n\
             tcp        0      0 10.244.1.5:8080         10.244.2.7:40001        ESTABLISHED\n\
             udp        0      0 0.0.0.0:53              0.0.0.0:*\n"
        );
        assert!(
            format_netstat(&[], true, false)
                .starts_with("Active Internet connections (only servers)\n")
        );
    }

    /// A dual-stack pod: its sockets take both families (`*` in ss,
    /// `tcp6 :::8080` in netstat), its IPv6 connections are bracketed.
    #[test]
    fn dual_stack_sockets_as_iproute2_and_net_tools_print_them() {
        let pod = Ipv6Addr::new(0xfd00, 0x10, 0x244, 1, 0, 0, 0, 5);
        let peer = Ipv6Addr::new(0xfd00, 0x10, 0x244, 2, 0, 0, 0, 7);
        let rows = [
            listener(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 8080))),
            connection(
                SocketAddr::from((pod, 8080)),
                SocketAddr::from((peer, 40001)),
            ),
        ];
        assert_eq!(
            format_ss(&rows, false),
            "State  Recv-Q Send-Q      Local Address:Port       Peer Address:Port  Process\n\
             LISTEN 0      1024                    *:8080                  *:*\n\
             ESTAB  0      0      [fd00:10:244:1::5]:8080 [fd00:10:244:2::7]:40001\n"
        );
        assert_eq!(
            format_netstat(&rows, true, true),
            "Active Internet connections (servers and established)\n\
             Proto Recv-Q Send-Q Local Address           Foreign Address         State\n\
             tcp6       0      0 :::8080                 :::*                    LISTEN\n\
             tcp6       0      0 fd00:10:244:1::5:8080   fd00:10:244:2::7:40001  ESTABLISHED\n"
        );
    }

    #[test]
    fn selections() {
        let check = |argv: &[&str], expected: &[SocketState]| {
            let args = Args::try_parse_from(argv).expect("args");
            let selection = Selection::of(&args);
            let got: Vec<SocketState> = rows()
                .iter()
                .filter(|r| selection.wants(r))
                .map(|r| r.state)
                .collect();
            assert_eq!(got, expected, "{argv:?}");
        };
        use SocketState::*;
        check(&["ss", "-tln"], &[Listen]);
        check(&["ss", "-tuln"], &[Listen, Unconn]);
        check(&["ss", "-tan"], &[Listen, Established]);
        check(&["ss", "-t"], &[Established]);
        check(&["netstat", "-an"], &[Listen, Established, Unconn]);
        check(&["ss", "-ul"], &[Unconn]);
        // The rows here are IPv4 sockets.
        check(&["ss", "-4", "-tan"], &[Listen, Established]);
        check(&["ss", "-6", "-tan"], &[]);
    }
}
