//! The commands against real workloads in a standalone namespace (no node:
//! only the pod's own IP and loopback are reachable, which is all these
//! tests need).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::container::{ContainerSpec, WorkloadEnv};
use crate::images;
use crate::netns::PodInfo;
use podnet_proto::model::view::Protocol;

const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);

fn pod() -> Arc<NetNs> {
    let info = PodInfo {
        namespace: "default".into(),
        name: "web-0".into(),
        node: "node-1".into(),
    };
    NetNs::isolated(POD_IP, info)
}

/// A running container, stopped (and checked to stop cleanly) on drop of
/// the test via [`Running::stop`].
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<images::Exit>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        let result = self.task.await.expect("the workload task does not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

fn start(ns: &Arc<NetNs>, image: &str, ports: &[(u16, Protocol)]) -> Running {
    let spec = ContainerSpec {
        name: "main".into(),
        image: image.into(),
        args: vec![],
        env: vec![],
        ports: ports.to_vec(),
        workload_env: WorkloadEnv::default(),
    };
    let cancel = CancellationToken::new();
    let running = images::start(ns.clone(), &spec, cancel.clone()).expect("the workload starts");
    Running {
        cancel,
        task: tokio::spawn(running),
    }
}

async fn exec(ns: &Arc<NetNs>, argv: &[&str]) -> Output {
    exec_with_stdin(ns, argv, b"").await
}

async fn exec_with_stdin(ns: &Arc<NetNs>, argv: &[&str], stdin: &[u8]) -> Output {
    exec_in(ns, &[], argv, stdin).await
}

/// Runs `argv` as a process of a container whose environment is `env`.
async fn exec_in(ns: &Arc<NetNs>, env: &[(&str, &str)], argv: &[&str], stdin: &[u8]) -> Output {
    let env: Vec<EnvVar> = env
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    run(ns.clone(), &env, &argv, stdin).await
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8 output")
}

#[tokio::test(start_paused = true)]
async fn curl_gets_the_http_echo_description() {
    let ns = pod();
    let server = start(&ns, "podnet/http-echo:1.0", &[(8080, Protocol::Tcp)]);

    let out = exec(
        &ns,
        &[
            "curl",
            "-s",
            "-H",
            "X-Test: yes",
            "http://localhost:8080/hello?x=1",
        ],
    )
    .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON answer");
    assert_eq!(answer["pod"], "web-0");
    assert_eq!(answer["namespace"], "default");
    assert_eq!(answer["node"], "node-1");
    assert_eq!(answer["podIP"], "10.244.1.5");
    assert_eq!(answer["method"], "GET");
    assert_eq!(answer["path"], "/hello?x=1");
    assert_eq!(answer["host"], "localhost:8080");
    assert_eq!(answer["headers"]["x-test"], "yes");
    assert_eq!(answer["headers"]["accept"], "*/*");
    // Through localhost the server sees a loopback client address.
    assert!(
        answer["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{answer}"
    );

    // Through the pod IP it sees the pod's own IP.
    let out = exec(
        &ns,
        &["curl", "-s", "-i", "-d", "a=1", "http://10.244.1.5:8080/"],
    )
    .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("HTTP/1.1 200 OK\r\n"), "{stdout}");
    assert!(
        stdout.contains("content-type: application/json\r\n"),
        "{stdout}"
    );
    let body = stdout
        .split("\r\n\r\n")
        .nth(1)
        .expect("a body after the head");
    let answer: serde_json::Value = serde_json::from_str(body).expect("a JSON answer");
    assert_eq!(answer["method"], "POST");
    assert!(
        answer["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("10.244.1.5:")),
        "{answer}"
    );
    assert_eq!(answer["headers"]["content-length"], "3");

    server.stop().await;
    assert!(!ns.has_tcp_listener(8080), "stopping frees the port");
}

#[tokio::test(start_paused = true)]
async fn curl_write_out_and_fail() {
    let ns = pod();
    let server = start(&ns, "podnet/http-echo", &[]);

    let out = exec(
        &ns,
        &[
            "curl",
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            "-s",
            "http://127.0.0.1:8080/",
        ],
    )
    .await;
    assert_eq!(
        (out.exit_code, text(&out.stdout), text(&out.stderr)),
        (0, "200", "")
    );

    let out = exec(
        &ns,
        &[
            "curl",
            "-s",
            "-w",
            "%{remote_ip}:%{remote_port}\\n",
            "-o",
            "/dev/null",
            "10.244.1.5:8080",
        ],
    )
    .await;
    assert_eq!(text(&out.stdout), "10.244.1.5:8080\n");

    let out = exec(&ns, &["curl", "-sI", "http://localhost:8080/"]).await;
    assert_eq!(out.exit_code, 0);
    assert!(
        text(&out.stdout).starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).ends_with("\r\n\r\n"),
        "a HEAD answer has no body"
    );

    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn curl_to_a_closed_port_is_refused() {
    let ns = pod();
    let out = exec(&ns, &["curl", "http://10.244.1.5:8081/"]).await;
    assert_eq!(out.exit_code, 7);
    assert_eq!(
        text(&out.stderr),
        "curl: (7) Failed to connect to 10.244.1.5 port 8081 after 0 ms: Connection refused\n"
    );
    assert!(out.stdout.is_empty());

    // -s hides the message, -S brings it back; -w still prints.
    let out = exec(
        &ns,
        &["curl", "-s", "-w", "%{http_code}", "http://localhost:1/"],
    )
    .await;
    assert_eq!(
        (out.exit_code, text(&out.stdout), text(&out.stderr)),
        (7, "000", "")
    );
    let out = exec(&ns, &["curl", "-sS", "http://localhost:1/"]).await;
    assert!(
        text(&out.stderr).starts_with("curl: (7) "),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(start_paused = true)]
async fn curl_errors_without_a_server() {
    let ns = pod();
    let check = |out: Output, code: i32, stderr: &str| {
        assert_eq!((out.exit_code, text(&out.stderr)), (code, stderr));
    };
    check(
        exec(&ns, &["curl", "https://10.244.1.5/"]).await,
        1,
        "curl: (1) Protocol \"https\" not supported (podnet's curl speaks plain http only)\n",
    );
    check(
        exec(&ns, &["curl", "http://web.default/"]).await,
        6,
        "curl: (6) Could not resolve host: web.default\n",
    );
    check(
        exec(&ns, &["curl", "-o", "out.html", "http://localhost/"]).await,
        23,
        &{
            "curl: (23) Failure writing output to destination: \"out.html\": podnet pods have no filesystem (use -o /dev/null)\n"
            .to_owned()
        },
    );
    let usage = exec(&ns, &["curl", "--bogus", "http://localhost/"]).await;
    assert_eq!(usage.exit_code, 2);
    assert!(
        text(&usage.stderr).contains("--bogus"),
        "{}",
        text(&usage.stderr)
    );
    let help = exec(&ns, &["curl", "--help"]).await;
    assert_eq!(help.exit_code, 0);
    assert!(
        text(&help.stdout).contains("Usage: curl"),
        "{}",
        text(&help.stdout)
    );
}

#[tokio::test(start_paused = true)]
async fn curl_times_out_on_a_silent_server() {
    let ns = pod();
    // A listener that never accepts: the connection is queued in its
    // backlog and the request is never answered.
    let _silent = ns.listen_tcp(8090).expect("listen");
    let out = exec(&ns, &["curl", "-m", "1.5", "http://localhost:8090/"]).await;
    assert_eq!(out.exit_code, 28);
    assert_eq!(
        text(&out.stderr),
        "curl: (28) Operation timed out after 1500 milliseconds with 0 bytes received\n"
    );
}

#[tokio::test(start_paused = true)]
async fn tcp_echo_echoes_through_nc() {
    let ns = pod();
    let server = start(&ns, "podnet/tcp-echo", &[]);
    let out = exec_with_stdin(&ns, &["nc", "localhost", "9000"], b"hello\n").await;
    assert_eq!((out.exit_code, text(&out.stdout)), (0, "hello\n"));

    // More than the in-memory pipes hold: sending and receiving overlap.
    let big = vec![b'x'; 3 * crate::netns::LOCAL_PIPE_BYTES];
    let out = exec_with_stdin(&ns, &["nc", "10.244.1.5", "9000"], &big).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    assert_eq!(out.stdout.len(), big.len());
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn http_echo_keeps_connections_alive() {
    let ns = pod();
    let server = start(&ns, "podnet/http-echo", &[(80, Protocol::Tcp)]);
    let requests = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    let out = exec_with_stdin(&ns, &["nc", "localhost", "80"], requests).await;
    assert_eq!(out.exit_code, 0);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("HTTP/1.1 200 OK").count(), 2, "{stdout}");
    assert!(
        stdout.contains("\"path\":\"/1\"") && stdout.contains("\"path\":\"/2\""),
        "{stdout}"
    );
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nc_checks_tcp_ports() {
    let ns = pod();
    let server = start(&ns, "podnet/http-echo", &[(8080, Protocol::Tcp)]);
    let out = exec(&ns, &["nc", "-zv", "10.244.1.5", "8080"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (0, "Connection to 10.244.1.5 8080 port [tcp/*] succeeded!\n")
    );
    let out = exec(&ns, &["nc", "-zvw1", "10.244.1.5", "8081"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (
            1,
            "nc: connect to 10.244.1.5 port 8081 (tcp) failed: Connection refused\n"
        )
    );
    // Without -v only the exit code tells, as with OpenBSD nc.
    let out = exec(&ns, &["nc", "-z", "localhost", "8081"]).await;
    assert_eq!((out.exit_code, text(&out.stderr)), (1, ""));
    server.stop().await;
}

/// `nc --sctp` (ncat's flag) checks and talks over SCTP, whose ports are
/// not TCP's: tcp-echo declared on SCTP 5000 serves TCP on 9000 only.
#[tokio::test(start_paused = true)]
async fn nc_sctp_checks_and_talks_to_sctp_ports() {
    let ns = pod();
    let server = start(&ns, "podnet/tcp-echo", &[(5000, Protocol::Sctp)]);
    let check = |out: Output, code: i32, stdout: &str, stderr: &str| {
        assert_eq!(
            (out.exit_code, text(&out.stdout), text(&out.stderr)),
            (code, stdout, stderr)
        );
    };
    check(
        exec(&ns, &["nc", "--sctp", "-zv", "10.244.1.5", "5000"]).await,
        0,
        "",
        "Connection to 10.244.1.5 5000 port [sctp/*] succeeded!\n",
    );
    check(
        exec(&ns, &["nc", "-zv", "-w1", "10.244.1.5", "5000"]).await,
        1,
        "",
        "nc: connect to 10.244.1.5 port 5000 (tcp) failed: Connection refused\n",
    );
    check(
        exec(&ns, &["nc", "-zv", "--sctp", "localhost", "9000"]).await,
        1,
        "",
        "nc: connect to localhost port 9000 (sctp) failed: Connection refused\n",
    );
    check(
        exec(&ns, &["nc", "-z", "localhost", "9000"]).await,
        0,
        "",
        "",
    );
    check(
        exec_with_stdin(&ns, &["nc", "--sctp", "localhost", "5000"], b"hello\n").await,
        0,
        "hello\n",
        "",
    );
    let both = exec(&ns, &["nc", "--sctp", "-u", "localhost", "5000"]).await;
    assert_eq!(both.exit_code, 2, "{}", text(&both.stderr));

    // ss lists the SCTP listener under its own protocol.
    let sctp_only = text(&exec(&ns, &["ss", "-Sln"]).await.stdout).to_owned();
    assert_eq!(
        sctp_only,
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n\
         LISTEN 0      1024         0.0.0.0:5000      0.0.0.0:*\n"
    );
    let all = text(&exec(&ns, &["ss", "-ln"]).await.stdout).to_owned();
    assert!(
        all.lines()
            .any(|l| l.starts_with("sctp  LISTEN") && l.contains(" 0.0.0.0:5000 ")),
        "{all}"
    );
    let tcp = text(&exec(&ns, &["ss", "-tln"]).await.stdout).to_owned();
    assert!(!tcp.contains(":5000"), "{tcp}");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn nc_times_out_on_a_full_backlog() {
    let ns = pod();
    // A connection to a listener whose backlog is full is dropped, as a SYN
    // is: the client waits. Fill the backlog of a listener that never accepts.
    let _silent = ns.listen_tcp(8090).expect("listen");
    let dst: SocketAddrV4 = "127.0.0.1:8090".parse().expect("an address");
    let mut held = Vec::new();
    while let Ok(queued) = tokio::time::timeout(Duration::from_millis(1), ns.connect_tcp(dst)).await
    {
        held.push(queued.expect("queued in the backlog"));
    }
    let out = exec(&ns, &["nc", "-zv", "-w", "2", "localhost", "8090"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (
            1,
            "nc: connect to localhost port 8090 (tcp) timed out: Operation now in progress\n"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn udp_echo_and_nc_udp_checks() {
    let ns = pod();
    let server = start(&ns, "podnet/udp-echo", &[(5353, Protocol::Udp)]);

    let out = exec(&ns, &["nc", "-zuv", "-w", "1", "10.244.1.5", "5353"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (0, "Connection to 10.244.1.5 5353 port [udp/*] succeeded!\n")
    );
    let out = exec(&ns, &["nc", "-zuv", "-w", "1", "10.244.1.5", "5354"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (
            1,
            "nc: connect to 10.244.1.5 port 5354 (udp) failed: Connection refused\n"
        )
    );
    // A bound socket that never answers: OpenBSD nc would say open, podnet says no.
    let _silent = ns.bind_udp(5355).expect("bind");
    let out = exec(&ns, &["nc", "-zuv", "-w", "1", "10.244.1.5", "5355"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (
            1,
            "nc: connect to 10.244.1.5 port 5355 (udp) timed out: no reply\n"
        )
    );

    let out = exec_with_stdin(&ns, &["nc", "-u", "-w", "1", "localhost", "5353"], b"ping?").await;
    assert_eq!((out.exit_code, text(&out.stdout)), (0, "ping?"));

    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ping_own_ip() {
    let ns = pod();
    let out = exec(&ns, &["ping", "-c", "2", "-i", "0.2", "10.244.1.5"]).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "PING 10.244.1.5 (10.244.1.5) 56(84) bytes of data.\n\
         64 bytes from 10.244.1.5: icmp_seq=1 ttl=64 time=0.000 ms\n\
         64 bytes from 10.244.1.5: icmp_seq=2 ttl=64 time=0.000 ms\n\
         \n\
         --- 10.244.1.5 ping statistics ---\n\
         2 packets transmitted, 2 received, 0% packet loss, time 200ms\n\
         rtt min/avg/max/mdev = 0.000/0.000/0.000/0.000 ms\n"
    );

    let out = exec(&ns, &["ping", "-c", "1", "web-0"]).await;
    assert!(text(&out.stdout).starts_with("PING web-0 (10.244.1.5) 56(84) bytes of data.\n"));

    // Without a node, kube-dns is unreachable: glibc's EAI_AGAIN wording.
    // (An unknown name with DNS up is in `tests/dns.rs`.)
    let out = exec(&ns, &["ping", "nowhere"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (2, "ping: nowhere: Temporary failure in name resolution\n")
    );
    let out = exec(&ns, &["ping", "-i", "0.001", "localhost"]).await;
    assert_eq!(out.exit_code, 2);
}

#[tokio::test(start_paused = true)]
async fn ping_without_a_network_fails() {
    // A standalone namespace has no datapath: anything beyond itself errors.
    let ns = pod();
    let out = exec(&ns, &["ping", "-c", "2", "10.244.2.9"]).await;
    assert_eq!(out.exit_code, 1);
    assert!(
        text(&out.stdout)
            .contains("2 packets transmitted, 0 received, +2 errors, 100% packet loss")
    );
}

#[tokio::test(start_paused = true)]
async fn traceroute_in_a_standalone_namespace() {
    let ns = pod();
    // The pod's own address is reached without passing a router.
    let out = exec(&ns, &["traceroute", "web-0"]).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "traceroute to web-0 (10.244.1.5), 30 hops max, 60 byte packets\n \
         1  10.244.1.5 (10.244.1.5)  0.000 ms  0.000 ms  0.000 ms\n"
    );
    let out = exec(&ns, &["traceroute", "-n", "-q", "1", "127.0.0.1"]).await;
    assert_eq!(
        text(&out.stdout),
        "traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets\n \
         1  127.0.0.1  0.000 ms\n"
    );
    // Beyond itself there is no way out: the send fails.
    let out = exec(&ns, &["traceroute", "-n", "10.244.2.9"]).await;
    assert_eq!(out.exit_code, 1);
    assert!(
        text(&out.stderr).starts_with("traceroute: send: "),
        "{out:?}"
    );
    let out = exec(&ns, &["traceroute", "nowhere"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr), text(&out.stdout)),
        (1, "traceroute: bad address 'nowhere'\n", "")
    );
    let out = exec(&ns, &["traceroute", "-T", "-p", "80", "web-0"]).await;
    assert_eq!(out.exit_code, 2);
    let out = exec(&ns, &["traceroute", "-f", "5", "-m", "4", "web-0"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (2, "first hop out of range\n")
    );
}

#[tokio::test(start_paused = true)]
async fn small_commands() {
    let ns = pod();
    let check = |out: Output, code: i32, stdout: &str| {
        assert_eq!(
            (out.exit_code, text(&out.stdout)),
            (code, stdout),
            "stderr: {}",
            text(&out.stderr)
        );
    };
    check(exec(&ns, &["hostname"]).await, 0, "web-0\n");
    check(exec(&ns, &["hostname", "-i"]).await, 0, "10.244.1.5\n");
    check(exec(&ns, &["echo", "a", "-b", "c"]).await, 0, "a -b c\n");
    check(exec(&ns, &["echo", "-n", "x"]).await, 0, "x");
    check(exec(&ns, &["echo"]).await, 0, "\n");
    check(exec_with_stdin(&ns, &["cat"], b"in\n").await, 0, "in\n");
    check(
        exec_with_stdin(&ns, &["cat", "/etc/passwd"], b"").await,
        1,
        "",
    );
    check(exec(&ns, &["/bin/true"]).await, 0, "");
    check(exec(&ns, &["false"]).await, 1, "");
    check(exec(&ns, &["sleep", "0.5"]).await, 0, "");
    check(exec(&ns, &["sleep", "2m"]).await, 1, "");
    check(exec(&ns, &["sleep"]).await, 2, "");
    let addr = exec(&ns, &["ip", "a"]).await;
    assert!(text(&addr.stdout).contains("inet 10.244.1.5/24 brd 10.244.1.255 scope global eth0"));
    let addr = exec(&ns, &["ip", "-4", "addr", "show", "dev", "lo"]).await;
    assert!(text(&addr.stdout).starts_with("1: lo:") && !text(&addr.stdout).contains("eth0"));
    check(exec(&ns, &["ip", "addr", "show", "eth1"]).await, 1, "");
    check(
        exec(&ns, &["ip", "r"]).await,
        0,
        "default via 10.244.1.1 dev eth0\n10.244.1.0/24 dev eth0 proto kernel scope link src 10.244.1.5\n",
    );
}

#[tokio::test]
async fn unknown_and_missing_commands() {
    let ns = pod();
    let out = exec(&ns, &["kubectl", "get", "pods"]).await;
    assert_eq!(out.exit_code, 127);
    assert_eq!(
        text(&out.stderr),
        format!(
            "podnet toolbox: kubectl: command not found (available: {})\n",
            COMMANDS.join(", ")
        )
    );
    let out = exec(&ns, &[]).await;
    assert_eq!(out.exit_code, 2);
}

#[tokio::test(start_paused = true)]
async fn wget_fetches_like_busybox() {
    let ns = pod();
    let server = start(&ns, "podnet/http-echo:1.0", &[(8080, Protocol::Tcp)]);

    let out = exec(
        &ns,
        &[
            "wget",
            "-qO-",
            "--header",
            "X-Test: yes",
            "http://web-0:8080/hi",
        ],
    )
    .await;
    assert_eq!((out.exit_code, text(&out.stderr)), (0, ""));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON answer");
    assert_eq!(answer["path"], "/hi");
    assert_eq!(answer["headers"]["x-test"], "yes");
    assert_eq!(answer["headers"]["user-agent"], "Wget");

    let out = exec(&ns, &["wget", "-O", "-", "http://10.244.1.5:8080/"]).await;
    assert_eq!(out.exit_code, 0);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Connecting to 10.244.1.5 (10.244.1.5:8080)\nwriting to stdout\n")
            && stderr.ends_with("written to stdout\n"),
        "{stderr}"
    );

    let out = exec(&ns, &["wget", "-S", "--spider", "http://localhost:8080/"]).await;
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("\n  HTTP/1.1 200 OK\n"), "{stderr}");
    assert!(stderr.ends_with("remote file exists\n"), "{stderr}");

    // No -O: busybox would write index.html; podnet says it cannot.
    let out = exec(&ns, &["wget", "-q", "http://localhost:8080/"]).await;
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr)
            .starts_with("wget: not saving to 'index.html': podnet pods have no filesystem"),
        "{}",
        text(&out.stderr)
    );
    server.stop().await;

    let check = |out: Output, stderr: &str| {
        assert_eq!(
            (out.exit_code, text(&out.stdout), text(&out.stderr)),
            (1, "", stderr)
        );
    };
    check(
        exec(&ns, &["wget", "-q", "-O", "-", "http://10.244.1.5:8081/"]).await,
        "wget: can't connect to remote host (10.244.1.5): Connection refused\n",
    );
    check(
        exec(&ns, &["wget", "-qO", "/tmp/x", "http://localhost/"]).await,
        "wget: can't open '/tmp/x': podnet pods have no filesystem (use -O - or -O /dev/null)\n",
    );
    check(
        exec(&ns, &["wget", "-q", "https://localhost/"]).await,
        "wget: unsupported scheme 'https' in https://localhost/ (podnet's wget speaks plain http only)\n",
    );
}

#[tokio::test(start_paused = true)]
async fn ss_and_netstat_list_the_namespace_sockets() {
    let ns = pod();
    let server = start(&ns, "podnet/http-echo:1.0", &[(8080, Protocol::Tcp)]);
    let out = exec(&ns, &["ss", "-tln"]).await;
    assert_eq!(out.exit_code, 0);
    let listing = text(&out.stdout);
    assert!(listing.starts_with("State "), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("LISTEN ") && l.contains(" 0.0.0.0:8080 ")),
        "{listing}"
    );

    // A connection is listed while its stream lives, from the client side
    // at once.
    let stream = ns
        .connect_tcp(SocketAddrV4::new(POD_IP, 8080))
        .await
        .expect("connects");
    let listing = text(&exec(&ns, &["ss", "-tn"]).await.stdout).to_owned();
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("ESTAB ") && l.trim_end().ends_with("10.244.1.5:8080")),
        "{listing}"
    );
    let netstat = text(&exec(&ns, &["netstat", "-tan"]).await.stdout).to_owned();
    assert!(
        netstat.contains("0.0.0.0:8080            0.0.0.0:*               LISTEN\n"),
        "{netstat}"
    );
    assert!(
        netstat.contains(" 10.244.1.5:8080         ESTABLISHED\n"),
        "{netstat}"
    );
    drop(stream);
    let listing = text(&exec(&ns, &["ss", "-tn"]).await.stdout).to_owned();
    assert!(
        !listing
            .lines()
            .any(|l| l.trim_end().ends_with("10.244.1.5:8080")),
        "{listing}"
    );
    server.stop().await;
    let listing = text(&exec(&ns, &["ss", "-tln"]).await.stdout).to_owned();
    assert!(!listing.contains(":8080"), "{listing}");
}

#[tokio::test]
async fn cat_reads_the_files_the_kubelet_writes() {
    let ns = pod();
    let check = |out: Output, code: i32, stdout: &str, stderr: &str| {
        assert_eq!(
            (out.exit_code, text(&out.stdout), text(&out.stderr)),
            (code, stdout, stderr)
        );
    };
    let resolv_conf = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                       nameserver 10.96.0.10\n\
                       options ndots:5 timeout:2\n";
    let hosts = "# Kubernetes-managed hosts file.\n\
                 127.0.0.1\tlocalhost\n\
                 ::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::0\tip6-localnet\n\
                 fe00::0\tip6-mcastprefix\n\
                 fe00::1\tip6-allnodes\n\
                 fe00::2\tip6-allrouters\n\
                 10.244.1.5\tweb-0\n";
    check(
        exec(&ns, &["cat", "/etc/resolv.conf"]).await,
        0,
        resolv_conf,
        "",
    );
    check(exec(&ns, &["cat", "/etc/hosts"]).await, 0, hosts, "");
    // A dual-stack pod: a line per pod IP, as the kubelet writes them, and
    // `hostname -i` gives both.
    let dual = NetNs::isolated_dual_stack(
        POD_IP,
        "fd00:10:244:1::5".parse().unwrap(),
        ns.info().clone(),
    );
    let dual_hosts = format!("{hosts}fd00:10:244:1::5\tweb-0\n");
    check(
        exec(&dual, &["cat", "/etc/hosts"]).await,
        0,
        &dual_hosts,
        "",
    );
    check(
        exec(&dual, &["hostname", "-i"]).await,
        0,
        "10.244.1.5 fd00:10:244:1::5\n",
        "",
    );
    check(exec(&ns, &["cat", "etc/hostname"]).await, 0, "web-0\n", "");
    check(
        exec_with_stdin(&ns, &["cat", "/etc/hostname", "-", "/nope"], b"in\n").await,
        1,
        "web-0\nin\n",
        "cat: /nope: No such file or directory\n",
    );
}

#[tokio::test]
async fn env_and_printenv_show_the_container_environment() {
    let ns = pod();
    let env = [
        ("PATH", "/bin"),
        ("HOSTNAME", "web-0"),
        ("WEB_SERVICE_HOST", "10.96.0.12"),
    ];
    let check = |out: Output, code: i32, stdout: &str| {
        assert_eq!(
            (out.exit_code, text(&out.stdout)),
            (code, stdout),
            "{}",
            text(&out.stderr)
        );
    };
    let all = "PATH=/bin\nHOSTNAME=web-0\nWEB_SERVICE_HOST=10.96.0.12\n";
    check(exec_in(&ns, &env, &["env"], b"").await, 0, all);
    check(exec_in(&ns, &env, &["printenv"], b"").await, 0, all);
    check(
        exec_in(
            &ns,
            &env,
            &["printenv", "WEB_SERVICE_HOST", "HOSTNAME"],
            b"",
        )
        .await,
        0,
        "10.96.0.12\nweb-0\n",
    );
    check(exec_in(&ns, &env, &["printenv", "NOPE"], b"").await, 1, "");
    check(
        exec_in(
            &ns,
            &env,
            &["env", "A=1", "PATH=/x", "printenv", "A", "PATH"],
            b"",
        )
        .await,
        0,
        "1\n/x\n",
    );
    check(
        exec_in(&ns, &env, &["env", "A=1"], b"").await,
        0,
        "PATH=/bin\nHOSTNAME=web-0\nWEB_SERVICE_HOST=10.96.0.12\nA=1\n",
    );
    check(exec_in(&ns, &env, &["env", "-i"], b"").await, 125, "");
}

#[tokio::test(start_paused = true)]
async fn sh_runs_joined_commands() {
    let ns = pod();
    let check = |out: Output, code: i32, stdout: &str| {
        assert_eq!(
            (out.exit_code, text(&out.stdout)),
            (code, stdout),
            "{}",
            text(&out.stderr)
        );
    };
    check(
        exec(&ns, &["sh", "-c", "false || echo ok"]).await,
        0,
        "ok\n",
    );
    check(
        exec(&ns, &["sh", "-c", "true && echo a; echo 'b;c'"]).await,
        0,
        "a\nb;c\n",
    );
    check(exec(&ns, &["sh", "-c", "false && echo no"]).await, 1, "");
    check(
        exec(&ns, &["sh", "-c", "false && echo no || echo yes"]).await,
        0,
        "yes\n",
    );
    check(
        exec(&ns, &["/bin/bash", "-c", "echo a; false"]).await,
        1,
        "a\n",
    );
    check(
        exec(&ns, &["sh", "-c", "echo a; exit 3; echo b"]).await,
        3,
        "a\n",
    );
    check(
        exec(
            &ns,
            &["sh", "-c", "hostname && sh -c 'printenv X || echo unset'"],
        )
        .await,
        0,
        "web-0\nunset\n",
    );
    check(
        exec(&ns, &["sh", "-c", "nope; echo after"]).await,
        0,
        "after\n",
    );
    check(exec(&ns, &["sh", "-c", ""]).await, 0, "");
    let refused = exec(&ns, &["sh", "-c", "echo a | cat"]).await;
    assert_eq!(refused.exit_code, 2);
    assert!(text(&refused.stdout).is_empty(), "nothing runs");
    assert_eq!(
        text(&refused.stderr),
        "sh: pipes (|) are not supported in podnet's toolbox (only commands joined by ';', '&&' and '||')\n"
    );
    let interactive = exec(&ns, &["sh"]).await;
    assert_eq!(interactive.exit_code, 2);
    assert!(
        text(&interactive.stderr).contains("no interactive shell"),
        "{}",
        text(&interactive.stderr)
    );
    assert_eq!(exec(&ns, &["sh", "-c", "echo 'a"]).await.exit_code, 2);
    assert_eq!(exec(&ns, &["sh", "script.sh"]).await.exit_code, 2);
}

#[tokio::test]
async fn resolve_accepts_literals_localhost_and_the_pod_name() {
    let ns = pod();
    assert_eq!(
        resolve(&ns, "10.0.0.1").await.ok(),
        Some(Ipv4Addr::new(10, 0, 0, 1).into())
    );
    assert_eq!(
        resolve(&ns, "LOCALHOST.").await.ok(),
        Some(Ipv4Addr::LOCALHOST.into())
    );
    assert_eq!(resolve(&ns, "web-0").await.ok(), Some(POD_IP.into()));
    // IPv6 literals, bare or bracketed as in a URL.
    let v6: std::net::IpAddr = "fd00:10:244:1::5".parse().unwrap();
    assert_eq!(resolve(&ns, "fd00:10:244:1::5").await.ok(), Some(v6));
    assert_eq!(resolve(&ns, "[fd00:10:244:1::5]").await.ok(), Some(v6));
    // `-4` and `-6`: a literal of the other family does not resolve; the
    // hosts file's IPv6 names; a pod without an IPv6 address has none.
    assert_eq!(
        resolve_family(&ns, "fd00:10:244:1::5", Family::V4)
            .await
            .ok(),
        None
    );
    assert_eq!(resolve_family(&ns, "10.0.0.1", Family::V6).await.ok(), None);
    assert_eq!(
        resolve_family(&ns, "localhost", Family::V6).await.ok(),
        Some(std::net::Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!(resolve_family(&ns, "web-0", Family::V6).await.ok(), None);
    let dual = NetNs::isolated_dual_stack(
        POD_IP,
        "fd00:10:244:1::5".parse().unwrap(),
        ns.info().clone(),
    );
    assert_eq!(
        resolve_family(&dual, "web-0", Family::V6).await.ok(),
        Some(v6)
    );
    assert_eq!(
        resolve_family(&dual, "web-0", Family::V4).await.ok(),
        Some(POD_IP.into())
    );
    // Anything else asks kube-dns, which a namespace without a node
    // cannot reach.
    let error = resolve(&ns, "web.default.svc.cluster.local")
        .await
        .expect_err("no route to kube-dns");
    assert!(
        error
            .to_string()
            .contains("cannot reach the DNS server 10.96.0.10:53"),
        "{error}"
    );
}

#[test]
fn run_can_be_spawned() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let ns = pod();
    let future = async move {
        run(
            ns,
            &[],
            &["sh".to_owned(), "-c".to_owned(), "true".to_owned()],
            b"",
        )
        .await
    };
    assert_send(&future);
}

#[test]
fn seconds_are_bounded() {
    assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
    for bad in ["-1", "NaN", "inf", "1e18", "86401", "soon", ""] {
        assert!(parse_seconds(bad).is_err(), "{bad}");
    }
}

mod dns;
