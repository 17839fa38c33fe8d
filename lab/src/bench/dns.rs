//! `podnet bench dns`: DNS queries per second from the host port, podnet's
//! cluster DNS against unbound serving the same names, both driven by
//! dnsperf in the same run, interleaved (podnet, unbound, podnet, ...).
//!
//! Reference method (BENCHMARKS.md): unbound from Debian, `num-threads: 1`,
//! a static `local-zone` with 1000 `local-data` A records
//! `svc-N.default.svc.cluster.local`; `dnsperf -c 4 -q 200 -l SECONDS` over
//! 10 000 queries drawn from those names. unbound is given the ClusterIPs
//! podnet allocated, so both servers give the same answers.
//!
//! Everything runs as processes: the cluster is this executable's `up`
//! (always followed by `down`), unbound and dnsperf are the Debian
//! binaries. Traffic goes to 127.0.0.1 only.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use podnet_proto::model::view::ServiceView;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::common::{Cluster, find_tools, in_scratch_dir, on_free_port, output, running};
use super::{BenchArgs, median, ratio};

/// Services (and names) both servers answer.
const SERVICES: usize = 1000;
/// Lines in dnsperf's query file.
const QUERIES: usize = 10_000;
const NAMESPACE: &str = "default";
/// TTL podnet's cluster DNS gives Service records; unbound gets the same.
const TTL: u32 = 5;
/// dnsperf `-c` and `-q`, as in the reference method.
const CLIENTS: u32 = 4;
const OUTSTANDING: u32 = 200;
const INSTALL: &str = "apt-get install -y dnsperf unbound";
/// How long a server may take to answer the names it should serve.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one probe query waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Attempts at starting unbound on a free port (a port picked free may be
/// taken again before unbound binds it).
const UNBOUND_ATTEMPTS: usize = 5;
/// Names compared between the two servers before measuring.
const SPOT_CHECKS: usize = 20;

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    ensure_flag!(args.rounds >= 1, "--rounds must be at least 1");
    ensure_flag!(
        args.seconds.is_finite() && args.seconds >= 1.0,
        "--seconds must be at least 1"
    );
    ensure_flag!(args.nodes() >= 1, "--nodes must be at least 1");
    let [dnsperf, unbound] = find_tools(["dnsperf", "unbound"], INSTALL)?;
    let tools = Tools { dnsperf, unbound };
    // Dropping the measurement (Ctrl-C) takes the cluster down and kills
    // unbound and dnsperf (guards).
    in_scratch_dir("dns", async |base| measure(args, &tools, base).await).await
}

struct Tools {
    dnsperf: PathBuf,
    unbound: PathBuf,
}

async fn measure(args: &BenchArgs, tools: &Tools, base: &Path) -> anyhow::Result<()> {
    println!(
        "dns benchmark: podnet bench dns --rounds {} --seconds {} --nodes {} --seed {}",
        args.rounds,
        args.seconds,
        args.nodes(),
        args.seed
    );
    println!(
        "{SERVICES} Services, {QUERIES} queries drawn from their names, dnsperf -c {CLIENTS} -q {OUTSTANDING} -l {}, interleaved podnet / unbound",
        args.seconds
    );
    let cluster = Cluster::new(base.join("state"))?;

    let start = Instant::now();
    cluster.up(args.nodes()).await?;
    cluster.apply(services_yaml(SERVICES)).await?;
    let list = cluster
        .podnet(&["get", "svc", "-n", NAMESPACE, "-o", "json"], None)
        .await?;
    let list: Value = serde_json::from_str(&list).context("podnet get svc -o json")?;
    let ips = cluster_ips(&list, SERVICES)?;
    let podnet_addr = host_dns(&cluster).await?;
    let last = SERVICES - 1;
    wait_answer(podnet_addr, &fqdn(last), ips[last], || Ok(()))
        .await
        .context("podnet's cluster DNS")?;
    println!(
        "podnet: {} nodes, {SERVICES} Services answered at {podnet_addr} after {:.1} s",
        args.nodes(),
        start.elapsed().as_secs_f64()
    );

    let unbound_dir = base.join("unbound");
    std::fs::create_dir_all(&unbound_dir)?;
    let unbound = start_unbound(&tools.unbound, &unbound_dir, &ips).await?;
    let unbound_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, unbound.port));
    println!("unbound: {SERVICES} records answered at {unbound_addr}");

    // Both must give the same answers, or the comparison means nothing.
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    for id in 0..SPOT_CHECKS {
        let k = rng.random_range(0..SERVICES);
        let name = fqdn(k);
        // id < SPOT_CHECKS, far below u16::MAX.
        let id = id as u16;
        let p = query_a(podnet_addr, &name, id).await?;
        let u = query_a(unbound_addr, &name, id).await?;
        anyhow::ensure!(
            p == [ips[k]] && u == [ips[k]],
            "{name}: podnet answers {p:?}, unbound {u:?}, the Service's ClusterIP is {}",
            ips[k]
        );
    }

    let queries = base.join("queries.txt");
    std::fs::write(&queries, query_file(args.seed, SERVICES, QUERIES))?;

    let (mut podnet_runs, mut unbound_runs) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        for (side, addr, runs) in [
            ("podnet", podnet_addr, &mut podnet_runs),
            ("unbound", unbound_addr, &mut unbound_runs),
        ] {
            let r = dnsperf(&tools.dnsperf, addr.port(), &queries, args.seconds).await?;
            println!(
                "round {round}/{} {side:<7}: {:>9.0} QPS, avg latency {:.3} ms, lost {} of {}, response codes {}",
                args.rounds,
                r.qps,
                r.avg_latency_s * 1e3,
                r.lost,
                r.sent,
                r.response_codes
            );
            if !r.all_noerror() {
                println!("  warning: {side} answered something other than NOERROR");
            }
            runs.push(r);
        }
    }
    drop(unbound);
    println!();
    print!("{}", table(&podnet_runs, &unbound_runs));
    Ok(())
}

/// The host DNS address from `cluster-info -o json` (null until a node
/// with a host DNS port is Ready).
async fn host_dns(cluster: &Cluster) -> anyhow::Result<SocketAddr> {
    cluster
        .wait_json(
            &["cluster-info", "-o", "json"],
            "podnet cluster-info -o json",
            READY_TIMEOUT,
            "cluster-info shows no host DNS address",
            |info| {
                let Some(a) = info.pointer("/dns/address").and_then(Value::as_str) else {
                    return Ok(ControlFlow::Continue(format!("dns: {}", info["dns"])));
                };
                let addr: SocketAddr = a
                    .parse()
                    .with_context(|| format!("cluster-info: bad dns.address {a:?}"))?;
                anyhow::ensure!(
                    addr.ip().is_loopback(),
                    "cluster-info: dns.address {addr} is not on loopback"
                );
                Ok(ControlFlow::Break(addr))
            },
        )
        .await
}

/// unbound of this run; killed when dropped.
struct Unbound {
    child: Child,
    port: u16,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> anyhow::Result<u16> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(sock.local_addr()?.port())
}

async fn start_unbound(exe: &Path, dir: &Path, ips: &[Ipv4Addr]) -> anyhow::Result<Unbound> {
    let conf = dir.join("unbound.conf");
    let log_path = dir.join("unbound.log");
    let last = ips.len().checked_sub(1).context("no records for unbound")?;
    on_free_port(UNBOUND_ATTEMPTS, "unbound", free_udp_port, async |port| {
        std::fs::write(&conf, unbound_config(dir, port, ips))?;
        let log = std::fs::File::create(&log_path)?;
        let child = std::process::Command::new(exe)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let mut unbound = Unbound { child, port };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let ready = wait_answer(addr, &fqdn(last), ips[last], || {
            running(&mut unbound.child, "unbound")
        })
        .await;
        match ready {
            Ok(()) => Ok(unbound),
            Err(e) => {
                drop(unbound);
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Err(e.context(format!(
                    "unbound -d -c {} (log: {})",
                    conf.display(),
                    log.trim()
                )))
            }
        }
    })
    .await
}

/// Polls `server` until it answers `name` with `want`, for at most
/// READY_TIMEOUT; `alive` may abort the wait (a server that exited).
async fn wait_answer(
    server: SocketAddr,
    name: &str,
    want: Ipv4Addr,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no query sent");
    // Each round takes at least 50 ms, so the count also bounds the time.
    for id in 0..(READY_TIMEOUT.as_millis() / 50) {
        alive()?;
        // id < 1200, far below u16::MAX.
        match query_a(server, name, id as u16).await {
            Ok(a) if a == [want] => return Ok(()),
            Ok(a) => last = format!("answered {a:?}"),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{server} did not answer {name} A {want} within {READY_TIMEOUT:?} (last: {last})")
}

/// One A query over UDP; the addresses of the answer (empty for NXDOMAIN
/// or no data).
async fn query_a(server: SocketAddr, name: &str, id: u16) -> anyhow::Result<Vec<Ipv4Addr>> {
    anyhow::ensure!(server.ip().is_loopback(), "{server} is not on loopback");
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    sock.connect(server).await?;
    sock.send(&dns_query(id, name)?).await?;
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
    // Skips stray datagrams; bounded by the deadline and a count.
    for _ in 0..16 {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {server} within {PROBE_TIMEOUT:?}"))??;
        if let Some(answer) = parse_a_answer(id, &buf[..n]) {
            return match answer.rcode {
                0 | 3 => Ok(answer.addrs),
                rcode => bail!("{server} answered rcode {rcode}"),
            };
        }
    }
    bail!("no valid answer from {server}")
}

/// A DNS query message: recursion desired, one question `name` IN A.
fn dns_query(id: u16, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut m = Vec::with_capacity(17 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        anyhow::ensure!(
            !label.is_empty() && label.len() < 64,
            "bad DNS name {name:?}"
        );
        // label.len() < 64, checked above.
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 1]);
    Ok(m)
}

#[derive(Debug, PartialEq)]
struct AAnswer {
    rcode: u8,
    addrs: Vec<Ipv4Addr>,
}

/// The response code and A records of a response to query `id`; None if
/// `msg` is not such a response or is malformed.
fn parse_a_answer(id: u16, msg: &[u8]) -> Option<AAnswer> {
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?])) };
    if u16_at(0)? != id || msg.get(2)? & 0x80 == 0 {
        return None;
    }
    let rcode = msg.get(3)? & 0x0f;
    let (qd, an) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        at = skip_name(msg, at)?;
        let (rtype, class) = (u16_at(at)?, u16_at(at + 2)?);
        let len = usize::from(u16_at(at + 8)?);
        let data = msg.get(at + 10..at + 10 + len)?;
        if rtype == 1 && class == 1 && len == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Some(AAnswer { rcode, addrs })
}

/// The offset just past the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    // A name has at most 127 labels.
    for _ in 0..128 {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
    None
}

async fn dnsperf(exe: &Path, port: u16, queries: &Path, seconds: f64) -> anyhow::Result<PerfRun> {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-q",
            &OUTSTANDING.to_string(),
            "-l",
            &seconds.to_string(),
        ]);
    // dnsperf stops after `seconds` plus its 5 s query timeout.
    let limit = Duration::from_secs_f64(seconds) + Duration::from_secs(30);
    let out = output(&mut cmd, None, limit, "dnsperf").await?;
    parse_dnsperf(&out)
}

/// What one dnsperf run reports.
#[derive(Debug, Clone, PartialEq)]
struct PerfRun {
    sent: u64,
    lost: u64,
    qps: f64,
    avg_latency_s: f64,
    response_codes: String,
}

impl PerfRun {
    fn all_noerror(&self) -> bool {
        self.response_codes
            .split(',')
            .all(|c| c.trim().starts_with("NOERROR"))
    }
}

/// Parses dnsperf's statistics ("Queries sent:", "Queries lost:",
/// "Response codes:", "Queries per second:", "Average Latency (s):").
fn parse_dnsperf(out: &str) -> anyhow::Result<PerfRun> {
    let field = |key: &str| -> Option<&str> {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let first = |key: &str| -> anyhow::Result<&str> {
        field(key)
            .and_then(|v| v.split_whitespace().next())
            .with_context(|| format!("dnsperf output has no {key:?}:\n{out}"))
    };
    let num = |key: &str| -> anyhow::Result<f64> {
        let v = first(key)?;
        v.parse()
            .with_context(|| format!("dnsperf: {key} {v:?} is not a number"))
    };
    let int = |key: &str| -> anyhow::Result<u64> {
        let v = first(key)?;
        v.parse()
            .with_context(|| format!("dnsperf: {key} {v:?} is not an integer"))
    };
    Ok(PerfRun {
        sent: int("Queries sent:")?,
        lost: int("Queries lost:")?,
        qps: num("Queries per second:")?,
        avg_latency_s: num("Average Latency (s):")?,
        response_codes: field("Response codes:").unwrap_or("none").to_string(),
    })
}

/// `n` ClusterIP Services `svc-0`.. in `default`, one YAML stream.
fn services_yaml(n: usize) -> String {
    let mut y = String::with_capacity(n * 150);
    for i in 0..n {
        // Writing to a String cannot fail.
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: {NAMESPACE}\nspec:\n  selector: {{app: bench}}\n  ports: [{{port: 80}}]\n"
        );
    }
    y
}

/// The ClusterIPs of `svc-0`..`svc-(n-1)` from `get svc -o json`.
fn cluster_ips(list: &Value, n: usize) -> anyhow::Result<Vec<Ipv4Addr>> {
    let mut ips = vec![None; n];
    let items = list["items"]
        .as_array()
        .context("service list has no items")?;
    for item in items {
        let name = ServiceView(item).meta().name();
        let Some(i) = name
            .strip_prefix("svc-")
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|&i| i < n)
        else {
            continue;
        };
        let ip = ServiceView(item)
            .cluster_ipv4()
            .with_context(|| format!("svc-{i} has no IPv4 clusterIP"))?;
        ips[i] = Some(ip);
    }
    ips.into_iter()
        .enumerate()
        .map(|(i, ip)| ip.with_context(|| format!("svc-{i} is missing from the service list")))
        .collect()
}

fn fqdn(i: usize) -> String {
    format!("svc-{i}.{NAMESPACE}.svc.cluster.local")
}

/// unbound serving `svc-I.default.svc.cluster.local A ips[I]` on
/// 127.0.0.1:`port`, one thread, in the foreground.
fn unbound_config(dir: &Path, port: u16, ips: &[Ipv4Addr]) -> String {
    let mut c = String::with_capacity(256 + ips.len() * 80);
    // Writing to a String cannot fail.
    let _ = write!(
        c,
        "server:\n    interface: 127.0.0.1\n    port: {port}\n    num-threads: 1\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{}\"\n    pidfile: \"\"\n    use-syslog: no\n    logfile: \"\"\n    verbosity: 0\n    access-control: 127.0.0.0/8 allow\n    local-zone: \"cluster.local.\" static\n",
        dir.display()
    );
    for (i, ip) in ips.iter().enumerate() {
        let _ = writeln!(c, "    local-data: \"{}. {TTL} IN A {ip}\"", fqdn(i));
    }
    c
}

/// `queries` lines `svc-K.default.svc.cluster.local A`, K uniform in
/// 0..`names`, from `seed`.
fn query_file(seed: u64, names: usize, queries: usize) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut q = String::with_capacity(queries * 40);
    for _ in 0..queries {
        let k = rng.random_range(0..names.max(1));
        // Writing to a String cannot fail.
        let _ = writeln!(q, "{} A", fqdn(k));
    }
    q
}

/// The summary: medians over the runs of each side, and their ratio.
fn table(podnet: &[PerfRun], unbound: &[PerfRun]) -> String {
    let med = |runs: &[PerfRun], f: fn(&PerfRun) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        median(&mut v)
    };
    let (pq, uq) = (med(podnet, |r| r.qps), med(unbound, |r| r.qps));
    let (pl, ul) = (
        med(podnet, |r| r.avg_latency_s * 1e3),
        med(unbound, |r| r.avg_latency_s * 1e3),
    );
    let (plost, ulost) = (
        med(podnet, |r| r.lost as f64),
        med(unbound, |r| r.lost as f64),
    );
    let mut t = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(t, "| figure | podnet | unbound | ratio | target |");
    let _ = writeln!(t, "|---|---|---|---|---|");
    let _ = writeln!(
        t,
        "| DNS queries/s from the host port (median) | {pq:.0} | {uq:.0} | {} | >= 0.8 |",
        ratio(pq, uq)
    );
    let _ = writeln!(
        t,
        "| average latency (median) | {pl:.3} ms | {ul:.3} ms | {} | |",
        ratio(pl, ul)
    );
    let _ = writeln!(
        t,
        "| queries lost per run (median) | {plost:.0} | {ulost:.0} | {} | |",
        ratio(plost, ulost)
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const DNSPERF_OUT: &str = "DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5353 -d q.txt -c 4 -q 200 -l 5
[Status] Sending queries (to 127.0.0.1:5353)
[Status] Started at: Sun Nov 22 12:00:00 2026
[Status] Stopping after 5.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         812345
  Queries completed:    812300 (99.99%)
  Queries lost:         45 (0.01%)

  Response codes:       NOERROR 812300 (100.00%)
  Average packet size:  request 49, response 65
  Run time (s):         5.000123
  Queries per second:   162456.012345

  Average Latency (s):  0.001219 (min 0.000021, max 0.012345)
  Latency StdDev (s):   0.000400

";

    #[test]
    fn parses_dnsperf_statistics() {
        let r = parse_dnsperf(DNSPERF_OUT).unwrap();
        assert_eq!(r.sent, 812_345);
        assert_eq!(r.lost, 45);
        assert!((r.qps - 162_456.012345).abs() < 1e-6);
        assert!((r.avg_latency_s - 0.001219).abs() < 1e-12);
        assert_eq!(r.response_codes, "NOERROR 812300 (100.00%)");
        assert!(r.all_noerror());
    }

    #[test]
    fn dnsperf_output_without_statistics_is_an_error() {
        let e = parse_dnsperf("[Fatal] invalid option\n").unwrap_err();
        assert!(format!("{e}").contains("Queries sent:"), "{e}");
        let bad = DNSPERF_OUT.replace("162456.012345", "lots");
        assert!(parse_dnsperf(&bad).is_err());
    }

    #[test]
    fn other_response_codes_are_noticed() {
        let out = DNSPERF_OUT.replace(
            "NOERROR 812300 (100.00%)",
            "NOERROR 800000 (98.49%), NXDOMAIN 12300 (1.51%)",
        );
        assert!(!parse_dnsperf(&out).unwrap().all_noerror());
    }

    #[test]
    fn query_file_is_seeded_and_uniform_over_the_names() {
        let a = query_file(1, 1000, 10_000);
        assert_eq!(a, query_file(1, 1000, 10_000));
        assert_ne!(a, query_file(2, 1000, 10_000));
        let lines: Vec<&str> = a.lines().collect();
        assert_eq!(lines.len(), 10_000);
        let mut seen = vec![0u32; 1000];
        for l in &lines {
            let k: usize = l
                .strip_prefix("svc-")
                .and_then(|l| l.strip_suffix(".default.svc.cluster.local A"))
                .unwrap()
                .parse()
                .unwrap();
            seen[k] += 1;
        }
        // 10 per name on average; every name drawn, none absurdly often.
        assert!(seen.iter().filter(|&&c| c == 0).count() < 5);
        assert!(seen.iter().all(|&c| c < 40));
    }

    #[test]
    fn unbound_config_has_the_reference_settings_and_every_record() {
        let ips: Vec<Ipv4Addr> = (0..1000u32)
            .map(|i| Ipv4Addr::from(0x0a60_0002 + i))
            .collect();
        let c = unbound_config(Path::new("/tmp/x"), 5353, &ips);
        for line in [
            "server:",
            "    interface: 127.0.0.1",
            "    port: 5353",
            "    num-threads: 1",
            "    do-daemonize: no",
            "    username: \"\"",
            "    chroot: \"\"",
            "    directory: \"/tmp/x\"",
            "    pidfile: \"\"",
            "    use-syslog: no",
            "    logfile: \"\"",
            "    verbosity: 0",
            "    access-control: 127.0.0.0/8 allow",
            "    local-zone: \"cluster.local.\" static",
            "    local-data: \"svc-0.default.svc.cluster.local. 5 IN A 10.96.0.2\"",
            "    local-data: \"svc-999.default.svc.cluster.local. 5 IN A 10.96.3.233\"",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line:?}");
        }
        assert_eq!(
            c.lines().filter(|l| l.contains("local-data:")).count(),
            1000
        );
    }

    #[test]
    fn services_yaml_is_n_cluster_ip_services() {
        let y = services_yaml(3);
        assert_eq!(y.matches("kind: Service\n").count(), 3);
        assert!(y.contains("  name: svc-2\n"));
        assert!(y.contains("  selector: {app: bench}\n"));
        assert!(y.contains("  ports: [{port: 80}]\n"));
        let objects = crate::manifest::parse("bench", &y).unwrap();
        assert_eq!(objects.len(), 3);
        assert_eq!(objects[1]["metadata"]["name"], "svc-1");
        assert_eq!(objects[1]["spec"]["ports"][0]["port"], 80);
        assert_eq!(objects[1]["spec"]["selector"]["app"], "bench");
    }

    #[test]
    fn cluster_ips_come_from_the_list_in_name_order() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "kubernetes"}, "spec": {"clusterIP": "10.96.0.1"}},
            {"metadata": {"name": "svc-1"}, "spec": {"clusterIP": "10.96.0.3"}},
            {"metadata": {"name": "svc-0"}, "spec": {"clusterIP": "10.96.0.2"}},
        ]});
        assert_eq!(
            cluster_ips(&list, 2).unwrap(),
            [Ipv4Addr::new(10, 96, 0, 2), Ipv4Addr::new(10, 96, 0, 3)]
        );
        let e = cluster_ips(&list, 3).unwrap_err();
        assert!(format!("{e}").contains("svc-2"), "{e}");
    }

    #[test]
    fn query_and_answer_round_trip() {
        let q = dns_query(0x1234, "svc-7.default.svc.cluster.local").unwrap();
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(q[12], 5);
        assert_eq!(&q[13..18], b"svc-7");
        assert_eq!(&q[q.len() - 5..], &[0, 0, 1, 0, 1]);
        assert!(dns_query(1, "a..b").is_err());
        // The response: the query with QR set and one compressed A record.
        let mut r = q.clone();
        r[2] |= 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 96, 0, 9]);
        assert_eq!(
            parse_a_answer(0x1234, &r),
            Some(AAnswer {
                rcode: 0,
                addrs: vec![Ipv4Addr::new(10, 96, 0, 9)]
            })
        );
        // Another id, the query itself, truncations: not an answer.
        assert_eq!(parse_a_answer(0x1235, &r), None);
        assert_eq!(parse_a_answer(0x1234, &q), None);
        for n in 0..r.len() {
            assert_eq!(parse_a_answer(0x1234, &r[..n]), None, "prefix {n}");
        }
        // NXDOMAIN, no answers.
        let mut nx = q.clone();
        nx[2] |= 0x80;
        nx[3] |= 3;
        assert_eq!(
            parse_a_answer(0x1234, &nx),
            Some(AAnswer {
                rcode: 3,
                addrs: vec![]
            })
        );
    }

    #[test]
    fn table_shows_medians_and_ratios() {
        let run = |qps: f64, lat: f64, lost: u64| PerfRun {
            sent: 1000,
            lost,
            qps,
            avg_latency_s: lat,
            response_codes: "NOERROR 1000 (100.00%)".into(),
        };
        let p = [
            run(40_000.0, 0.004, 0),
            run(50_000.0, 0.003, 2),
            run(60_000.0, 0.002, 9),
        ];
        let u = [
            run(100_000.0, 0.001, 0),
            run(100_000.0, 0.001, 0),
            run(90_000.0, 0.002, 0),
        ];
        let t = table(&p, &u);
        assert!(t.contains("| figure | podnet | unbound | ratio | target |"));
        assert!(t.contains("| 50000 | 100000 | 0.50 | >= 0.8 |"), "{t}");
        assert!(t.contains("| 3.000 ms | 1.000 ms | 3.00 | |"), "{t}");
        assert!(t.contains("| 2 | 0 | - | |"), "{t}");
    }
}
