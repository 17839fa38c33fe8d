//! `traceroute`: the path a packet takes from the pod, hop by hop, printed
//! the way Linux traceroute (Butskoy's 2.x, what distribution images ship)
//! prints it: the header, then one line per TTL with up to `-q` answers.
//!
//! The hops are measured, not listed: each probe is an ICMP echo request
//! with a TTL, sent through the pod's [`Egress`](crate::netns::Egress) like
//! any ping. Every node it passes is a router that takes one off the TTL;
//! the one where it runs out answers time exceeded from its own address,
//! the destination answers the echo. So across nodes the hops are the
//! source node's pod gateway (its podCIDR's `.1`, the bridge address
//! kindnet or flannel show), the destination node's IP, then the pod, and
//! each answer's RTT crosses the emulated link as the probe did (a delay
//! shows, a partition is `* * *`). Nothing here knows the route.
//!
//! Services, as iptables kube-proxy treats traceroute's probes: kube-proxy
//! DNATs only TCP/UDP/SCTP to a Service's ports. Linux traceroute's
//! default UDP probes go to ports 33434 and up, which no Service has, and
//! `-I` probes are ICMP: neither is DNATed, so toward a ClusterIP the
//! first router (the gateway) still answers time exceeded and nothing
//! after it does (`* * *` to the last hop). That is what the emulated
//! probes give too, because the datapath's service proxy translates only
//! TCP and UDP to a Service port; so UDP mode (the default) and `-I` both
//! send echo requests, and the destination's answer is the echo reply
//! where a real UDP probe would get port unreachable (same output).
//!
//! Deliberately not here: `-T` (TCP SYN probes, which kube-proxy would
//! DNAT to an endpoint: the pod's TCP path has no TTL to carry) and UDP
//! probes to a chosen `-p` Service port (also DNATed by a real kube-proxy);
//! `-p` is accepted and, as with `-I` in real traceroute, does not change
//! the probes. Names are not reverse-resolved: without `-n` a hop prints
//! its address as its name, which is what traceroute shows for an address
//! with no PTR record. Probes are sent 16 at a time (traceroute's `-N`
//! default) and each waits the whole `-w`; traceroute's shorter waits
//! once a later hop has answered are not emulated.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use super::{Output, USAGE, parse, parse_seconds, resolve_family, strerror};
use crate::netns::{IcmpReply, NetNs, ProbeReply};

/// Probes in flight at once, traceroute's `-N` default.
const SIMULTANEOUS: u8 = 16;

#[derive(Debug, Parser)]
#[command(
    name = "traceroute",
    about = "Print the route packets take to a host (podnet toolbox)",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    family: super::FamilyArgs,
    /// Print hop addresses numerically.
    #[arg(short = 'n')]
    numeric: bool,
    /// The TTL to start from.
    #[arg(short = 'f', value_name = "FIRST_TTL", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    first_ttl: u8,
    /// The largest TTL (number of hops) to probe.
    #[arg(short = 'm', value_name = "MAX_TTL", default_value_t = 30, value_parser = clap::value_parser!(u8).range(1..))]
    max_ttl: u8,
    /// Probes per hop (at most 10, as traceroute allows).
    #[arg(short = 'q', value_name = "NQUERIES", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=10))]
    queries: u8,
    /// Seconds to wait for each probe's answer (fractions allowed).
    #[arg(short = 'w', value_name = "WAIT", default_value = "5", value_parser = parse_seconds)]
    wait: Duration,
    /// Destination port (accepted; the probes do not depend on it).
    #[arg(short = 'p', value_name = "PORT")]
    port: Option<u16>,
    /// ICMP echo probes.
    #[arg(short = 'I', conflicts_with_all = ["udp", "tcp"])]
    icmp: bool,
    /// UDP probes (the default).
    #[arg(short = 'U', conflicts_with = "tcp")]
    udp: bool,
    /// TCP SYN probes (not supported here).
    #[arg(short = 'T')]
    tcp: bool,
    host: String,
    /// The probe packet length, as printed in the header.
    #[arg(value_name = "PACKETLEN", default_value_t = 60)]
    packet_len: u16,
}

/// One probe's outcome: who answered, how, and after how long; `None` when
/// nothing answered within `-w`.
type Probe = Option<ProbeReply>;

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args: Args = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.tcp {
        return out.fail(
            USAGE,
            "traceroute: TCP probes (-T) are not supported by the podnet toolbox (use -I or the default UDP mode)\n",
        );
    }
    if args.first_ttl > args.max_ttl {
        return out.fail(USAGE, "first hop out of range\n");
    }
    let ip = match resolve_family(ns, &args.host, args.family.family()).await {
        Ok(ip) => ip,
        // busybox's wording; exit 1.
        Err(_) => return out.fail(1, format!("traceroute: bad address '{}'\n", args.host)),
    };
    out.print(format_header(&args.host, ip, args.max_ttl, args.packet_len));
    let queries = usize::from(args.queries);
    let hops_per_round = (SIMULTANEOUS / args.queries).max(1);
    let mut seq: u16 = 0;
    let mut ttl = args.first_ttl;
    loop {
        let last = ttl.saturating_add(hops_per_round - 1).min(args.max_ttl);
        let mut probes = Vec::new();
        for hop in ttl..=last {
            for _ in 0..queries {
                seq = seq.wrapping_add(1);
                probes.push(probe(ns, ip, seq, hop, args.wait));
            }
        }
        let answers: Vec<Probe> = match futures::future::join_all(probes)
            .await
            .into_iter()
            .collect::<std::io::Result<_>>()
        {
            Ok(answers) => answers,
            Err(error) => {
                return out.fail(1, format!("traceroute: send: {}\n", strerror(&error)));
            }
        };
        for (hop, answers) in (ttl..=last).zip(answers.chunks(queries)) {
            out.print(format_hop(hop, answers, args.numeric));
            if reached(ip, answers) {
                return 0;
            }
        }
        if last == args.max_ttl {
            return 0;
        }
        ttl = last + 1;
    }
}

/// One probe on a socket of its own, so that probes in flight together
/// never see each other's answers.
async fn probe(
    ns: &Arc<NetNs>,
    dst: IpAddr,
    seq: u16,
    ttl: u8,
    wait: Duration,
) -> std::io::Result<Probe> {
    ns.icmp_socket().probe(dst, seq, ttl, wait).await
}

/// Did a probe of this hop get the destination's own answer? Then the
/// trace ends at this hop.
fn reached(dst: IpAddr, answers: &[Probe]) -> bool {
    answers
        .iter()
        .flatten()
        .any(|a| a.reply == IcmpReply::EchoReply && a.from == dst)
}

fn format_header(host: &str, ip: IpAddr, max_ttl: u8, packet_len: u16) -> String {
    format!("traceroute to {host} ({ip}), {max_ttl} hops max, {packet_len} byte packets\n")
}

/// One hop's line as traceroute prints it: the TTL right-aligned in two
/// columns, then per probe `*` or its RTT (`%.3f ms`), with the answering
/// address before the first answer and again whenever it changes.
fn format_hop(ttl: u8, answers: &[Probe], numeric: bool) -> String {
    let mut line = format!("{ttl:2} ");
    let mut previous: Option<IpAddr> = None;
    for answer in answers {
        let Some(answer) = answer else {
            line.push_str(" *");
            continue;
        };
        if previous != Some(answer.from) {
            if numeric {
                line.push_str(&format!(" {}", answer.from));
            } else {
                // No reverse lookup: the address is its own name.
                line.push_str(&format!(" {0} ({0})", answer.from));
            }
            previous = Some(answer.from);
        }
        let micros = answer.rtt.as_micros();
        line.push_str(&format!("  {}.{:03} ms", micros / 1000, micros % 1000));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const GW: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 244, 1, 1));
    const NODE: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 18, 0, 3));

    fn answer(from: IpAddr, us: u64) -> Probe {
        Some(ProbeReply {
            from,
            reply: IcmpReply::TimeExceeded,
            rtt: Duration::from_micros(us),
        })
    }

    #[test]
    fn hop_lines() {
        let check = |ttl: u8, answers: &[Probe], numeric: bool, expected: &str| {
            assert_eq!(format_hop(ttl, answers, numeric), expected, "{answers:?}")
        };
        check(
            1,
            &[answer(GW, 123), answer(GW, 101), answer(GW, 98)],
            false,
            " 1  10.244.1.1 (10.244.1.1)  0.123 ms  0.101 ms  0.098 ms\n",
        );
        check(
            2,
            &[
                answer(NODE, 2_345),
                answer(NODE, 2_301),
                answer(NODE, 2_298),
            ],
            true,
            " 2  172.18.0.3  2.345 ms  2.301 ms  2.298 ms\n",
        );
        check(12, &[None, None, None], true, "12  * * *\n");
        // A lost first probe, then the address before the first answer.
        check(
            3,
            &[None, answer(NODE, 40_000), answer(NODE, 1_234_567)],
            true,
            " 3  * 172.18.0.3  40.000 ms  1234.567 ms\n",
        );
        // A lost probe between two answers from one address: printed once.
        check(
            4,
            &[answer(NODE, 1_000), None, answer(NODE, 2_000)],
            true,
            " 4  172.18.0.3  1.000 ms *  2.000 ms\n",
        );
        // Another router answering a probe of the same hop is named again.
        check(
            5,
            &[answer(GW, 1), answer(NODE, 2)],
            false,
            " 5  10.244.1.1 (10.244.1.1)  0.001 ms 172.18.0.3 (172.18.0.3)  0.002 ms\n",
        );
    }

    #[test]
    fn header_line() {
        assert_eq!(
            format_header("web", Ipv4Addr::new(10, 96, 0, 12).into(), 30, 60),
            "traceroute to web (10.96.0.12), 30 hops max, 60 byte packets\n"
        );
    }

    #[test]
    fn the_trace_ends_at_the_destination_s_own_answer() {
        let dst = IpAddr::V4(Ipv4Addr::new(10, 244, 2, 5));
        let echo = |from| {
            Some(ProbeReply {
                from,
                reply: IcmpReply::EchoReply,
                rtt: Duration::ZERO,
            })
        };
        let check = |answers: &[Probe], expected: bool| {
            assert_eq!(reached(dst, answers), expected, "{answers:?}")
        };
        check(&[None, echo(dst), None], true);
        check(&[None, None, None], false);
        check(&[answer(NODE, 1), answer(NODE, 1)], false);
        // Time exceeded from the destination's address is not its answer.
        check(&[answer(dst, 1)], false);
        check(&[echo(NODE)], false);
    }

    #[test]
    fn arguments() {
        let check = |argv: &[&str], expected: Option<(bool, u8, u8, u8, Duration, u16)>| {
            let parsed = Args::try_parse_from(argv).ok().map(|a| {
                (
                    a.numeric,
                    a.first_ttl,
                    a.max_ttl,
                    a.queries,
                    a.wait,
                    a.packet_len,
                )
            });
            assert_eq!(parsed, expected, "{argv:?}");
        };
        let secs = Duration::from_secs;
        check(&["traceroute", "web"], Some((false, 1, 30, 3, secs(5), 60)));
        check(
            &[
                "traceroute",
                "-n",
                "-m",
                "5",
                "-q",
                "1",
                "-w",
                "0.5",
                "-f",
                "2",
                "web",
                "100",
            ],
            Some((true, 2, 5, 1, Duration::from_millis(500), 100)),
        );
        check(
            &["traceroute", "-I", "-p", "80", "-m3", "web"],
            Some((false, 1, 3, 3, secs(5), 60)),
        );
        check(&["traceroute", "-q", "11", "web"], None);
        check(&["traceroute", "-q", "0", "web"], None);
        check(&["traceroute", "-m", "0", "web"], None);
        check(&["traceroute", "-m", "256", "web"], None);
        check(&["traceroute", "-w", "-1", "web"], None);
        check(&["traceroute", "-I", "-T", "web"], None);
        check(&["traceroute"], None);
    }
}
