//! The small commands: `hostname`, `ip addr`/`ip route`, `echo`, `cat`,
//! `sleep`.
//!
//! They describe the pod's emulated namespace in the formats of the real
//! tools (iproute2, GNU coreutils), so that troubleshooting steps read the
//! same. There is no filesystem: `cat` reads stdin and the files the kubelet
//! manages in every container ([`pod_file`]), nothing else.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::{Output, parse};
use crate::dns::{HostsFile, ResolverConfig};
use crate::netns::NetNs;

/// The longest `sleep`: exec commands are meant to finish; a pod that should
/// run for longer is a workload, not an exec.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The prefix length the pod's interface shows: a node's podCIDR is a /24.
const POD_PREFIX: u8 = 24;
/// The prefix of a dual-stack pod's IPv6 address: the IPv6 node mask
/// (`--node-cidr-mask-size-ipv6`, 64 by default).
const POD_PREFIX_V6: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "hostname",
    about = "Print the pod's host name (podnet toolbox)",
    disable_version_flag = true
)]
struct HostnameArgs {
    /// Print the pod's IP addresses instead.
    #[arg(short = 'i', long = "ip-address")]
    ip_address: bool,
}

pub(super) fn hostname(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args: HostnameArgs = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.ip_address {
        // Every address the hosts file gives the pod's name: both on a
        // dual-stack pod, IPv4 first.
        let addresses: Vec<String> = ns.addresses().map(|ip| ip.to_string()).collect();
        out.print(format!("{}\n", addresses.join(" ")));
    } else {
        out.print(format!("{}\n", ns.info().name));
    }
    0
}

#[derive(Debug, Parser)]
#[command(
    name = "ip",
    about = "Show the pod's addresses and routes (podnet toolbox)",
    disable_version_flag = true
)]
struct IpArgs {
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,
    #[command(subcommand)]
    object: IpObject,
}

#[derive(Debug, Subcommand)]
enum IpObject {
    /// Show addresses: `ip addr [show [dev] IFACE]`.
    #[command(name = "addr", aliases = ["a", "ad", "address"])]
    Addr {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        filter: Vec<String>,
    },
    /// Show routes: `ip route [show]`.
    #[command(name = "route", aliases = ["r", "ro", "rou", "rout"])]
    Route {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        filter: Vec<String>,
    },
}

pub(super) fn ip(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args: IpArgs = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match args.object {
        IpObject::Addr { filter } => {
            // `show`/`list` (or a prefix, as iproute2 allows) is the default
            // action; `dev` is optional before the name.
            let is_keyword = |w: &str| "show".starts_with(w) || "list".starts_with(w) || w == "dev";
            let device = filter.iter().map(String::as_str).find(|w| !is_keyword(w));
            match device {
                None | Some("lo") | Some("eth0") => {
                    let ip6 = ns.ip6().filter(|_| !args.ipv4);
                    let mut text = format_addr(ns.ip4(), ip6, device);
                    if args.ipv6 {
                        // `ip -6 addr`: the interfaces without their inet lines.
                        text = text
                            .lines()
                            .filter(|l| !l.trim_start().starts_with("inet "))
                            .map(|l| format!("{l}\n"))
                            .collect();
                    }
                    out.print(text);
                    0
                }
                Some(other) => out.fail(1, format!("Device \"{other}\" does not exist.\n")),
            }
        }
        IpObject::Route { .. } if args.ipv6 => {
            out.print(ns.ip6().map(format_route_v6).unwrap_or_default());
            0
        }
        IpObject::Route { .. } => {
            out.print(ns.ip4().map(format_route).unwrap_or_default());
            0
        }
    }
}

/// The network part of `ip` under the pod prefix.
fn pod_network(ip: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) & (u32::MAX << (32 - POD_PREFIX)))
}

/// `ip addr` as iproute2 prints it in a pod: loopback and eth0. The MAC is
/// derived from the IP the way many CNIs do (`0a:58:` + the IP's bytes).
/// A dual-stack pod's eth0 also has its IPv6 address (`/64`, the
/// default IPv6 node mask) and lo `::1`.
fn format_addr(ip: Option<Ipv4Addr>, ip6: Option<Ipv6Addr>, device: Option<&str>) -> String {
    // An IPv6-only pod's MAC comes from the low bytes of its address.
    let [a, b, c, d] = match (ip, ip6) {
        (Some(ip), _) => ip.octets(),
        (None, Some(ip6)) => (u128::from(ip6) as u32).to_be_bytes(),
        (None, None) => [0; 4],
    };
    let mut lo = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN group default qlen 1000\n    \
              link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n    \
              inet 127.0.0.1/8 scope host lo\n       \
              valid_lft forever preferred_lft forever\n"
        .to_owned();
    let mut eth0 = format!(
        "2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default\n    \
         link/ether 0a:58:{a:02x}:{b:02x}:{c:02x}:{d:02x} brd ff:ff:ff:ff:ff:ff\n"
    );
    if let Some(ip) = ip {
        let broadcast = Ipv4Addr::from(u32::from(ip) | !(u32::MAX << (32 - POD_PREFIX)));
        eth0.push_str(&format!(
            "    inet {ip}/{POD_PREFIX} brd {broadcast} scope global eth0\n       \
             valid_lft forever preferred_lft forever\n"
        ));
    }
    if let Some(ip6) = ip6 {
        lo.push_str(
            "    inet6 ::1/128 scope host\n       \
             valid_lft forever preferred_lft forever\n",
        );
        eth0.push_str(&format!(
            "    inet6 {ip6}/{POD_PREFIX_V6} scope global\n       \
             valid_lft forever preferred_lft forever\n"
        ));
    }
    match device {
        Some("lo") => lo,
        Some(_) => eth0,
        None => lo + &eth0,
    }
}

/// `ip route` in a pod: the pod subnet on eth0 and a default route via its
/// first address, the gateway most CNIs configure.
fn format_route(ip: Ipv4Addr) -> String {
    let network = pod_network(ip);
    let gateway = Ipv4Addr::from(u32::from(network) + 1);
    format!(
        "default via {gateway} dev eth0\n\
         {network}/{POD_PREFIX} dev eth0 proto kernel scope link src {ip}\n"
    )
}

/// `ip -6 route` in a dual-stack pod: its IPv6 subnet and the default
/// route via the subnet's first address.
fn format_route_v6(ip: Ipv6Addr) -> String {
    let network = Ipv6Addr::from(u128::from(ip) & (u128::MAX << (128 - POD_PREFIX_V6)));
    let gateway = Ipv6Addr::from(u128::from(network) + 1);
    format!(
        "{network}/{POD_PREFIX_V6} dev eth0 proto kernel metric 256 pref medium\n\
         default via {gateway} dev eth0 metric 1024 pref medium\n"
    )
}

#[derive(Debug, Parser)]
#[command(name = "echo", disable_help_flag = true, disable_version_flag = true)]
struct EchoArgs {
    /// Do not print the trailing newline.
    #[arg(short = 'n')]
    no_newline: bool,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    words: Vec<String>,
}

pub(super) fn echo(argv: &[String], out: &mut Output) -> i32 {
    let args: EchoArgs = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let mut text = args.words.join(" ");
    if !args.no_newline {
        text.push('\n');
    }
    out.print(text);
    0
}

#[derive(Debug, Parser)]
#[command(
    name = "cat",
    about = "Print stdin or the pod's /etc/resolv.conf, /etc/hosts, /etc/hostname (podnet toolbox)",
    disable_version_flag = true
)]
struct CatArgs {
    /// `-` (stdin), or one of the files the kubelet writes into a container.
    files: Vec<String>,
}

/// The files of a container that podnet has: the ones the kubelet writes
/// (the resolv.conf the node generated for the pod, the managed hosts file, the
/// host name), from the values the pod's resolver and `hostname` use. A
/// relative path is taken from `/`, a container's usual working directory.
pub(super) fn pod_file(ns: &NetNs, path: &str) -> Option<String> {
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    match absolute.as_str() {
        "/etc/resolv.conf" => Some(ResolverConfig::for_pod(ns).resolv_conf()),
        "/etc/hosts" => Some(HostsFile::for_pod(ns).render()),
        "/etc/hostname" => Some(format!("{}\n", ns.info().name)),
        _ => None,
    }
}

pub(super) fn cat(ns: &Arc<NetNs>, argv: &[String], stdin: &[u8], out: &mut Output) -> i32 {
    let args: CatArgs = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if args.files.is_empty() {
        out.print(stdin);
        return 0;
    }
    let mut code = 0;
    for file in &args.files {
        if file == "-" {
            out.print(stdin);
        } else if let Some(text) = pod_file(ns, file) {
            out.print(text);
        } else {
            code = out.fail(1, format!("cat: {file}: No such file or directory\n"));
        }
    }
    code
}

#[derive(Debug, Parser)]
#[command(
    name = "sleep",
    about = "Wait for a while, at most 60 s (podnet toolbox)",
    disable_version_flag = true
)]
struct SleepArgs {
    /// Seconds, or a number with a suffix: s, m, h (`0.5`, `2s`, `1m`),
    /// or `infinity`.
    #[arg(value_parser = parse_sleep)]
    duration: Duration,
}

/// GNU sleep's syntax: a number with an optional s/m/h/d suffix.
fn parse_sleep(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1.0),
        Some((i, 'm')) => (&text[..i], 60.0),
        Some((i, 'h')) => (&text[..i], 3600.0),
        Some((i, 'd')) => (&text[..i], 86400.0),
        _ => (text, 1.0),
    };
    let seconds: f64 = number
        .parse()
        .map_err(|_| format!("invalid time interval {text:?}"))?;
    if seconds == f64::INFINITY {
        // GNU sleep's `infinity` (and `inf`): tokio's timer takes
        // Duration::MAX as "never".
        return Ok(Duration::MAX);
    }
    Duration::try_from_secs_f64(seconds * unit)
        .map_err(|_| format!("invalid time interval {text:?}"))
}

/// `sleep DURATION`; an exec's is at most [`MAX_SLEEP`], a container's
/// main process (`main`) may sleep for ever.
pub(super) async fn sleep(argv: &[String], main: bool, out: &mut Output) -> i32 {
    let args: SleepArgs = match parse(argv, out) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if !main && args.duration > MAX_SLEEP {
        return out.fail(
            1,
            format!(
                "sleep: {:?} is longer than the {}s podnet allows in exec\n",
                args.duration,
                MAX_SLEEP.as_secs()
            ),
        );
    }
    tokio::time::sleep(args.duration).await;
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_in_iproute2_format() {
        let text = format_addr(Some(Ipv4Addr::new(10, 244, 1, 5)), None, None);
        assert!(
            text.starts_with("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536"),
            "{text}"
        );
        assert!(
            text.contains("\n    inet 127.0.0.1/8 scope host lo\n"),
            "{text}"
        );
        assert!(
            text.contains("\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500"),
            "{text}"
        );
        assert!(
            text.contains("\n    link/ether 0a:58:0a:f4:01:05 brd ff:ff:ff:ff:ff:ff\n"),
            "{text}"
        );
        assert!(
            text.contains("\n    inet 10.244.1.5/24 brd 10.244.1.255 scope global eth0\n"),
            "{text}"
        );
        assert!(
            !format_addr(Some(Ipv4Addr::new(10, 244, 1, 5)), None, Some("eth0")).contains("lo:")
        );
    }

    #[test]
    fn route_via_first_address() {
        assert_eq!(
            format_route(Ipv4Addr::new(10, 244, 2, 9)),
            "default via 10.244.2.1 dev eth0\n10.244.2.0/24 dev eth0 proto kernel scope link src 10.244.2.9\n"
        );
    }

    #[test]
    fn sleep_durations() {
        let check = |text: &str, expected: Option<Duration>| {
            assert_eq!(parse_sleep(text).ok(), expected, "{text}")
        };
        check("1", Some(Duration::from_secs(1)));
        check("0.5", Some(Duration::from_millis(500)));
        check("2s", Some(Duration::from_secs(2)));
        check("1m", Some(Duration::from_secs(60)));
        check("-1", None);
        check("soon", None);
        check("", None);
    }

    #[test]
    fn a_dual_stack_pod_shows_its_ipv6_address_and_route() {
        let ip6: Ipv6Addr = "fd00:10:244:1::5".parse().unwrap();
        let text = format_addr(Some(Ipv4Addr::new(10, 244, 1, 5)), Some(ip6), None);
        assert!(text.contains("inet6 ::1/128 scope host"), "{text}");
        assert!(
            text.contains("inet6 fd00:10:244:1::5/64 scope global"),
            "{text}"
        );
        assert_eq!(
            format_route_v6(ip6),
            "fd00:10:244:1::/64 dev eth0 proto kernel metric 256 pref medium\n\
             default via fd00:10:244:1::1 dev eth0 metric 1024 pref medium\n"
        );
    }
}
