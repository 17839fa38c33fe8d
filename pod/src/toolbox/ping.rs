//! `ping`: ICMP echo over the pod's ICMP socket, printed the way iputils
//! ping prints (header, one line per reply, statistics), exit 0 if any reply
//! arrived and 1 if none did.
//!
//! Simplifications: one request is outstanding at a time (the next is sent
//! after the reply or -W, whichever comes first, and no sooner than -i after
//! the previous one), the payload size is fixed at 56 bytes, and the TTL
//! shown is always 64: requests leave with TTL 64 and count the routers
//! they pass (see `traceroute`), but replies do not carry a TTL back.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use super::{Output, USAGE, parse, parse_seconds, resolve_family, strerror};
use crate::netns::NetNs;

/// The smallest -i accepted: faster would be a flood, which iputils
/// reserves for root, and would make the emulated network the bottleneck.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Parser)]
#[command(
    name = "ping",
    about = "Send ICMP echo requests (podnet toolbox)",
    disable_version_flag = true
)]
struct Args {
    #[command(flatten)]
    family: super::FamilyArgs,
    /// Stop after sending COUNT requests.
    #[arg(short = 'c', value_name = "COUNT", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Seconds to wait for each reply.
    #[arg(short = 'W', value_name = "TIMEOUT", default_value = "1", value_parser = parse_seconds)]
    timeout: Duration,
    /// Seconds between requests (fractions allowed, at least 0.01).
    #[arg(short = 'i', value_name = "INTERVAL", default_value = "1", value_parser = parse_seconds)]
    interval: Duration,
    /// Print only the header and the statistics.
    #[arg(short = 'q')]
    quiet: bool,
    host: String,
}

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args: Args = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.interval < MIN_INTERVAL {
        return out.fail(
            USAGE,
            format!(
                "ping: bad timing interval: {} (the minimum is {})\n",
                args.interval.as_secs_f64(),
                MIN_INTERVAL.as_secs_f64()
            ),
        );
    }
    let ip = match resolve_family(ns, &args.host, args.family.family()).await {
        Ok(ip) => ip,
        // iputils' wording and exit code for a name that does not resolve.
        Err(error) => {
            return out.fail(2, format!("ping: {}: {}\n", args.host, error.gai_message()));
        }
    };
    out.print(format_header(&args.host, ip));
    let mut socket = ns.icmp_socket();
    let mut stats = Stats::default();
    let started = Instant::now();
    for i in 0..args.count {
        let sent_at = Instant::now();
        // iputils numbers from 1 and wraps the 16-bit field.
        let seq = ((i + 1) % 65536) as u16;
        stats.transmitted += 1;
        match socket.echo(ip, seq, args.timeout).await {
            Ok(Some(rtt)) => {
                stats.rtts.push(rtt);
                if !args.quiet {
                    out.print(format_reply(ip, seq, rtt));
                }
            }
            // No reply within -W: iputils prints nothing for it.
            Ok(None) => {}
            Err(error) => {
                stats.errors += 1;
                out.eprint(format!("ping: sendmsg: {}\n", strerror(&error)));
            }
        }
        if i + 1 < args.count {
            tokio::time::sleep_until(sent_at + args.interval).await;
        }
    }
    stats.elapsed = started.elapsed();
    out.print(format!("\n{}", format_stats(&args.host, &stats)));
    if stats.rtts.is_empty() { 1 } else { 0 }
}

/// What the statistics block is computed from.
#[derive(Debug, Default, Clone, PartialEq)]
struct Stats {
    transmitted: u32,
    errors: u32,
    rtts: Vec<Duration>,
    /// From the first request to the end.
    elapsed: Duration,
}

/// A round-trip time in iputils' precision: three significant decimals
/// below 1 ms, fewer as it grows, whole milliseconds from 100 ms.
fn format_rtt(rtt: Duration) -> String {
    let us = rtt.as_micros();
    if us >= 100_000 - 50 {
        format!("{}", (us + 500) / 1000)
    } else if us >= 10_000 - 5 {
        let t = us + 50;
        format!("{}.{:01}", t / 1000, (t % 1000) / 100)
    } else if us >= 1000 {
        let t = us + 5;
        format!("{}.{:02}", t / 1000, (t % 1000) / 10)
    } else {
        format!("{}.{:03}", us / 1000, us % 1000)
    }
}

/// iputils' first line: the IPv4 packet size counts the 20-byte IP and
/// 8-byte ICMP headers, the IPv6 one only the data.
fn format_header(host: &str, ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("PING {host} ({ip}) 56(84) bytes of data.\n"),
        IpAddr::V6(_) => format!("PING {host} ({ip}) 56 data bytes\n"),
    }
}

fn format_reply(ip: IpAddr, seq: u16, rtt: Duration) -> String {
    format!(
        "64 bytes from {ip}: icmp_seq={seq} ttl=64 time={} ms\n",
        format_rtt(rtt)
    )
}

/// Microseconds as iputils prints them in the rtt line: `ms.uuu`.
fn ms3(us: u128) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// C's `%g` for a percentage (six significant digits, no trailing zeros),
/// which is how iputils prints the packet loss: `0`, `25`, `33.3333`.
fn format_percent(value: f64) -> String {
    if value == value.trunc() {
        return format!("{value:.0}");
    }
    let exponent = value.abs().log10().floor() as i32;
    let decimals = (5 - exponent).clamp(0, 17) as usize;
    let text = format!("{value:.decimals$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The statistics block, from the `---` line on.
fn format_stats(host: &str, stats: &Stats) -> String {
    let received = stats.rtts.len() as u32;
    let mut text = format!("--- {host} ping statistics ---\n");
    text.push_str(&format!(
        "{} packets transmitted, {received} received, ",
        stats.transmitted
    ));
    if stats.errors > 0 {
        text.push_str(&format!("+{} errors, ", stats.errors));
    }
    let loss = if stats.transmitted == 0 {
        0.0
    } else {
        f64::from(stats.transmitted.saturating_sub(received)) * 100.0 / f64::from(stats.transmitted)
    };
    text.push_str(&format!(
        "{}% packet loss, time {}ms\n",
        format_percent(loss),
        stats.elapsed.as_millis()
    ));
    if received > 0 {
        // iputils' arithmetic: integer microseconds, mdev = sqrt(E[x²] - E[x]²).
        let us: Vec<u128> = stats.rtts.iter().map(Duration::as_micros).collect();
        let n = us.len() as u128;
        let min = us.iter().copied().min().unwrap_or(0);
        let max = us.iter().copied().max().unwrap_or(0);
        let avg = us.iter().sum::<u128>() / n;
        let mean_square = us.iter().map(|t| t * t).sum::<u128>() / n;
        let mdev = (mean_square.saturating_sub(avg * avg) as f64).sqrt() as u128;
        text.push_str(&format!(
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms\n",
            ms3(min),
            ms3(avg),
            ms3(max),
            ms3(mdev)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&us| Duration::from_micros(us)).collect()
    }

    #[test]
    fn statistics_formatting() {
        let check = |stats: Stats, expected: &str| {
            assert_eq!(format_stats("web", &stats), expected, "{stats:?}")
        };
        check(
            Stats {
                transmitted: 4,
                errors: 0,
                rtts: ms(&[45, 60, 80, 55]),
                elapsed: Duration::from_millis(3004),
            },
            "--- web ping statistics ---\n\
             4 packets transmitted, 4 received, 0% packet loss, time 3004ms\n\
             rtt min/avg/max/mdev = 0.045/0.060/0.080/0.012 ms\n",
        );
        check(
            Stats {
                transmitted: 3,
                errors: 0,
                rtts: ms(&[1500, 2500]),
                elapsed: Duration::from_millis(2001),
            },
            "--- web ping statistics ---\n\
             3 packets transmitted, 2 received, 33.3333% packet loss, time 2001ms\n\
             rtt min/avg/max/mdev = 1.500/2.000/2.500/0.500 ms\n",
        );
        check(
            Stats {
                transmitted: 2,
                errors: 0,
                rtts: vec![],
                elapsed: Duration::from_millis(1999),
            },
            "--- web ping statistics ---\n\
             2 packets transmitted, 0 received, 100% packet loss, time 1999ms\n",
        );
        check(
            Stats {
                transmitted: 4,
                errors: 4,
                rtts: vec![],
                elapsed: Duration::from_millis(3000),
            },
            "--- web ping statistics ---\n\
             4 packets transmitted, 0 received, +4 errors, 100% packet loss, time 3000ms\n",
        );
        check(
            Stats {
                transmitted: 1,
                errors: 0,
                rtts: ms(&[0]),
                elapsed: Duration::ZERO,
            },
            "--- web ping statistics ---\n\
             1 packets transmitted, 1 received, 0% packet loss, time 0ms\n\
             rtt min/avg/max/mdev = 0.000/0.000/0.000/0.000 ms\n",
        );
    }

    #[test]
    fn percent_like_printf_g() {
        let check =
            |value: f64, expected: &str| assert_eq!(format_percent(value), expected, "{value}");
        check(0.0, "0");
        check(25.0, "25");
        check(100.0, "100");
        check(100.0 / 3.0, "33.3333");
        check(200.0 / 3.0, "66.6667");
        check(0.5, "0.5");
        check(12.5, "12.5");
    }

    #[test]
    fn rtt_precision_follows_iputils() {
        let check = |us: u64, expected: &str| {
            assert_eq!(format_rtt(Duration::from_micros(us)), expected, "{us}")
        };
        check(45, "0.045");
        check(999, "0.999");
        check(1234, "1.23");
        check(9994, "9.99");
        check(12_345, "12.3");
        check(99_949, "99.9");
        check(123_456, "123");
    }

    #[test]
    fn reply_line() {
        assert_eq!(
            format_reply(
                Ipv4Addr::new(10, 244, 1, 5).into(),
                3,
                Duration::from_micros(45)
            ),
            "64 bytes from 10.244.1.5: icmp_seq=3 ttl=64 time=0.045 ms\n"
        );
    }

    #[test]
    fn arguments() {
        let args =
            Args::try_parse_from(["ping", "-c", "2", "-i", "0.2", "-W", "3", "h"]).expect("args");
        assert_eq!(
            (args.count, args.interval, args.timeout),
            (2, Duration::from_millis(200), Duration::from_secs(3))
        );
        let args = Args::try_parse_from(["ping", "h"]).expect("args");
        assert_eq!(
            (args.count, args.interval, args.timeout),
            (4, Duration::from_secs(1), Duration::from_secs(1))
        );
        assert!(Args::try_parse_from(["ping", "-c", "0", "h"]).is_err());
    }

    #[test]
    fn the_first_line_as_iputils_prints_it_per_family() {
        assert_eq!(
            format_header("web", Ipv4Addr::new(10, 96, 0, 12).into()),
            "PING web (10.96.0.12) 56(84) bytes of data.\n"
        );
        assert_eq!(
            format_header("fd00::5", "fd00::5".parse().unwrap()),
            "PING fd00::5 (fd00::5) 56 data bytes\n"
        );
    }
}
