//! The images against a standalone namespace: argument handling, binding,
//! echoing, and that stopping a container frees its ports and connections.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::cluster;
use crate::container::WorkloadEnv;
use crate::netns::PodInfo;

fn pod() -> Arc<NetNs> {
    let info = PodInfo {
        namespace: "default".into(),
        name: "echo-0".into(),
        node: "node-1".into(),
    };
    NetNs::isolated(Ipv4Addr::new(10, 244, 1, 7), info)
}

fn spec(
    image: &str,
    args: &[&str],
    env: &[(&str, &str)],
    ports: &[(u16, Protocol)],
) -> ContainerSpec {
    ContainerSpec {
        name: "main".into(),
        image: image.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ports: ports.to_vec(),
        workload_env: WorkloadEnv::default(),
    }
}

#[test]
fn image_references_ignore_tags_and_digests() {
    let check = |image: &str, expected: &str| assert_eq!(repository(image), expected, "{image}");
    check("podnet/http-echo", "podnet/http-echo");
    check("podnet/http-echo:1.0", "podnet/http-echo");
    check("podnet/tcp-echo@sha256:abcd", "podnet/tcp-echo");
    check("podnet/tcp-echo:v2@sha256:abcd", "podnet/tcp-echo");
    check(
        "localhost:5000/podnet/toolbox",
        "localhost:5000/podnet/toolbox",
    );
    check(
        "localhost:5000/podnet/toolbox:latest",
        "localhost:5000/podnet/toolbox",
    );
    check("nginx", "nginx");
}

#[test]
fn unknown_image_lists_the_known_ones() {
    let error = Image::parse("nginx:1.27").expect_err("nginx is not built in");
    assert_eq!(
        error.to_string(),
        "unknown image \"nginx:1.27\": podnet runs the built-in images \
         podnet/http-echo, podnet/tcp-echo, podnet/udp-echo, podnet/toolbox, podnet/dns, podnet/ingress"
    );
    for image in KNOWN_IMAGES {
        assert!(Image::parse(image).is_ok(), "{image}");
    }
}

#[test]
fn listen_ports_precedence() {
    let check = |spec: ContainerSpec, expected: Result<Vec<u16>, &str>| {
        let got =
            listen_ports(Image::HttpEcho, &spec, Protocol::Tcp, 8080).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{spec:?}");
    };
    let img = "podnet/http-echo";
    check(spec(img, &[], &[], &[]), Ok(vec![8080]));
    check(
        spec(
            img,
            &[],
            &[],
            &[
                (80, Protocol::Tcp),
                (53, Protocol::Udp),
                (81, Protocol::Tcp),
            ],
        ),
        Ok(vec![80, 81]),
    );
    check(spec(img, &[], &[], &[(53, Protocol::Udp)]), Ok(vec![8080]));
    check(
        spec(img, &["--port=9090"], &[], &[(80, Protocol::Tcp)]),
        Ok(vec![9090]),
    );
    check(spec(img, &["--port", "9091"], &[], &[]), Ok(vec![9091]));
    check(
        spec(img, &["-listen=:5678", "-text=hello"], &[], &[]),
        Ok(vec![5678]),
    );
    check(
        spec(
            img,
            &["-text", "hello", "--listen", "0.0.0.0:5679"],
            &[],
            &[],
        ),
        Ok(vec![5679]),
    );
    check(
        spec(img, &[], &[("PORT", "3000")], &[(80, Protocol::Tcp)]),
        Ok(vec![3000]),
    );
    check(
        spec(img, &["--port=1"], &[("PORT", "3000")], &[]),
        Ok(vec![1]),
    );
    check(
        spec(img, &["--port=http"], &[], &[]),
        Err(
            "invalid argument \"http\" for image podnet/http-echo: expected a port number between 1 and 65535",
        ),
    );
    check(
        spec(img, &["--port"], &[], &[]),
        Err("invalid argument \"--port\" for image podnet/http-echo: the flag needs a value"),
    );
    check(
        spec(img, &[], &[("PORT", "0")], &[]),
        Err(
            "invalid environment variable PORT \"0\" for image podnet/http-echo: expected a port number between 1 and 65535",
        ),
    );
}

#[tokio::test]
async fn start_binds_before_returning() {
    let ns = pod();
    let cancel = CancellationToken::new();
    let running = start(
        ns.clone(),
        &spec(
            "podnet/http-echo",
            &[],
            &[],
            &[(80, Protocol::Tcp), (81, Protocol::Tcp)],
        ),
        cancel.clone(),
    )
    .expect("starts");
    assert!(
        ns.has_tcp_listener(80) && ns.has_tcp_listener(81),
        "bound before the future is polled"
    );

    // The same port again in the same pod is a bind error.
    let error = start(
        ns.clone(),
        &spec("podnet/tcp-echo", &["--port=81"], &[], &[]),
        cancel.clone(),
    )
    .map(|_| ())
    .expect_err("port 81 is taken");
    assert!(
        matches!(
            error,
            WorkloadError::Bind {
                port: 81,
                protocol: Protocol::Tcp,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        format!(
            "{error}: {}",
            std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        "cannot listen on TCP port 81: port 81 is already in use in this pod"
    );

    let task = tokio::spawn(running);
    cancel.cancel();
    assert!(task.await.expect("no panic").is_ok());
    assert!(
        !ns.has_tcp_listener(80) && !ns.has_tcp_listener(81),
        "ports are freed"
    );
}

#[tokio::test]
async fn dropping_the_future_frees_the_ports() {
    let ns = pod();
    let running = start(
        ns.clone(),
        &spec("podnet/tcp-echo", &[], &[], &[]),
        CancellationToken::new(),
    )
    .expect("starts");
    assert!(ns.has_tcp_listener(ECHO_DEFAULT_PORT));
    drop(running);
    assert!(!ns.has_tcp_listener(ECHO_DEFAULT_PORT));
}

#[tokio::test(start_paused = true)]
async fn tcp_echo_echoes_and_cancel_ends_connections() {
    let ns = pod();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        start(
            ns.clone(),
            &spec("podnet/tcp-echo:latest", &[], &[], &[]),
            cancel.clone(),
        )
        .expect("starts"),
    );

    let mut stream = ns
        .connect_tcp(SocketAddr::new(ns.ip(), 9000))
        .await
        .expect("connects");
    stream.write_all(b"hello").await.expect("write");
    let mut buf = [0; 5];
    stream.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"hello");

    // An open connection ends when the container stops.
    cancel.cancel();
    assert!(task.await.expect("no panic").is_ok());
    let mut rest = Vec::new();
    assert_eq!(
        stream.read_to_end(&mut rest).await.expect("end of stream"),
        0
    );
}

#[test]
fn sctp_ports_of_tcp_echo() {
    let check = |spec: ContainerSpec, expected: Result<Vec<u16>, &str>| {
        let got = listen_ports(Image::TcpEcho, &spec, Protocol::Tcp, ECHO_DEFAULT_PORT)
            .and_then(|tcp| sctp_ports(Image::TcpEcho, &spec, &tcp))
            .map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{spec:?}");
    };
    let img = "podnet/tcp-echo";
    let (tcp, sctp) = (Protocol::Tcp, Protocol::Sctp);
    check(spec(img, &[], &[], &[]), Ok(vec![]));
    check(spec(img, &["--sctp"], &[], &[]), Ok(vec![9000]));
    check(
        spec(img, &["-sctp", "--port=5000"], &[], &[]),
        Ok(vec![5000]),
    );
    check(
        spec(img, &["--sctp=false"], &[("SCTP", "true")], &[]),
        Ok(vec![]),
    );
    check(spec(img, &[], &[("SCTP", "1")], &[(80, tcp)]), Ok(vec![80]));
    // Declared SCTP ports are served over SCTP, once each.
    check(
        spec(
            img,
            &["--sctp"],
            &[],
            &[(5000, tcp), (5000, sctp), (7000, sctp)],
        ),
        Ok(vec![5000, 7000]),
    );
    check(spec(img, &[], &[], &[(7000, sctp)]), Ok(vec![7000]));
    // An override replaces the declared ports, SCTP ones too.
    check(
        spec(img, &[], &[("PORT", "81")], &[(7000, sctp)]),
        Ok(vec![]),
    );
    check(
        spec(img, &["--sctp=yes"], &[], &[]),
        Err(r#"invalid argument "--sctp=yes" for image podnet/tcp-echo: expected true or false"#),
    );
    check(
        spec(img, &[], &[("SCTP", "on")], &[]),
        Err(
            r#"invalid environment variable SCTP "on" for image podnet/tcp-echo: expected true or false"#,
        ),
    );
}

/// With `--sctp` tcp-echo serves SCTP on its TCP port too, as a port of
/// its own: each protocol's connection is echoed, and stopping frees both.
#[tokio::test(start_paused = true)]
async fn tcp_echo_with_sctp_echoes_associations_on_the_same_port() {
    let ns = pod();
    let dst = SocketAddr::new(ns.ip(), 9000);
    let plain = start(
        ns.clone(),
        &spec("podnet/tcp-echo", &[], &[], &[]),
        CancellationToken::new(),
    )
    .expect("starts");
    let refused = ns.connect_sctp(dst).await.err().expect("no SCTP listener");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    drop(plain);

    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        start(
            ns.clone(),
            &spec("podnet/tcp-echo", &["--sctp"], &[], &[]),
            cancel.clone(),
        )
        .expect("starts"),
    );
    assert!(ns.has_listener(StreamProtocol::Tcp, 9000));
    assert!(ns.has_listener(StreamProtocol::Sctp, 9000));
    for (mut stream, text) in [
        (ns.connect_sctp(dst).await.expect("associates"), b"sctp!"),
        (ns.connect_tcp(dst).await.expect("connects"), b"tcp!!"),
    ] {
        stream.write_all(text).await.expect("write");
        let mut buf = [0; 5];
        stream.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, text);
    }
    cancel.cancel();
    assert!(task.await.expect("no panic").is_ok());
    assert!(!ns.has_listener(StreamProtocol::Sctp, 9000));
}

#[tokio::test(start_paused = true)]
async fn udp_echo_echoes_to_the_sender() {
    let ns = pod();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        start(
            ns.clone(),
            &spec(
                "podnet/udp-echo",
                &[],
                &[],
                &[(53, Protocol::Udp), (80, Protocol::Tcp)],
            ),
            cancel.clone(),
        )
        .expect("starts"),
    );
    let client = ns.bind_udp(0).expect("bind");
    client
        .send_to(b"one", SocketAddrV4::new(Ipv4Addr::LOCALHOST, 53))
        .await
        .expect("send");
    let (reply, from) = client.recv_from().await.expect("reply");
    assert_eq!((&reply[..], from.port()), (&b"one"[..], 53));

    // A client that went away before its reply does not stop the server.
    let gone = ns.bind_udp(0).expect("bind");
    gone.send_to(b"lost", SocketAddr::new(ns.ip(), 53))
        .await
        .expect("send");
    drop(gone);
    client
        .send_to(b"two", SocketAddr::new(ns.ip(), 53))
        .await
        .expect("send");
    let (reply, _) = client.recv_from().await.expect("reply");
    assert_eq!(&reply[..], b"two");
    client
        .send_to(b"three", SocketAddr::new(ns.ip(), 53))
        .await
        .expect("send");
    let (reply, _) = client.recv_from().await.expect("reply");
    assert_eq!(&reply[..], b"three");

    cancel.cancel();
    assert!(task.await.expect("no panic").is_ok());
}

#[tokio::test]
async fn toolbox_idles_until_cancelled() {
    let cancel = CancellationToken::new();
    let running = start(
        pod(),
        &spec("podnet/toolbox", &[], &[], &[]),
        cancel.clone(),
    )
    .expect("starts");
    let mut task = tokio::spawn(running);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(10), &mut task)
            .await
            .is_err(),
        "still running"
    );
    cancel.cancel();
    assert!(task.await.expect("no panic").is_ok());
}

#[tokio::test(start_paused = true)]
async fn dns_serves_udp_and_tcp_on_53_from_the_env_view() {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    let ns = pod();
    let cancel = CancellationToken::new();
    let mut coredns = spec(
        "registry.k8s.io/coredns/coredns:v1.11.1",
        &["-conf", "/etc/coredns/Corefile"],
        &[],
        &[
            (53, Protocol::Udp),
            (53, Protocol::Tcp),
            (9153, Protocol::Tcp),
        ],
    );
    // Real CoreDNS manifests name CoreDNS's image; podnet's is podnet/dns.
    assert!(matches!(
        start(ns.clone(), &coredns, cancel.clone()).map(|_| ()),
        Err(WorkloadError::UnknownImage { .. })
    ));
    coredns.image = "podnet/dns:1.11".into();
    coredns.workload_env.cluster = cluster::fixed(crate::dns::fixture::cluster_view());
    let running = start(ns.clone(), &coredns, cancel.clone()).expect("starts");
    assert!(ns.has_tcp_listener(53), "bound before the future is polled");
    assert!(
        ns.has_tcp_listener(9153),
        "metrics on 9153, as CoreDNS's prometheus plugin"
    );
    let task = tokio::spawn(running);

    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let bytes = query.to_vec().unwrap();
    let server = SocketAddr::new(ns.ip(), 53);
    let client = ns.bind_udp(0).unwrap();
    client.send_to(&bytes, server).await.unwrap();
    let (reply, _) = client.recv_from().await.unwrap();
    let response = Message::from_vec(&reply).unwrap();
    assert_eq!((response.id, response.answers.len()), (query.id, 1));

    let mut stream = ns.connect_tcp(server).await.unwrap();
    let length = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    stream.write_all(&length).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await.unwrap();
    let mut reply = vec![0; usize::from(u16::from_be_bytes(prefix))];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 1);

    cancel.cancel();
    assert!(task.await.expect("no panic").is_ok());
    assert!(!ns.has_tcp_listener(53), "ports are freed");
    assert!(ns.bind_udp(53).is_ok());

    // Like any image, the port can be moved.
    let moved = spec("podnet/dns", &["--port=5353"], &[], &[]);
    let running = start(ns.clone(), &moved, CancellationToken::new()).expect("starts");
    assert!(ns.has_tcp_listener(5353) && !ns.has_tcp_listener(53));
    drop(running);
}

#[test]
fn drain_time_precedence_and_errors() {
    let check = |spec: ContainerSpec, expected: Result<Duration, &str>| {
        let got = drain_time(Image::HttpEcho, &spec).map_err(|e| e.to_string());
        match (&got, &expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{spec:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got} lacks {want}"),
            _ => panic!("{spec:?}: got {got:?}, expected {expected:?}"),
        }
    };
    let secs = Duration::from_secs;
    let echo = |args: &[&str], env: &[(&str, &str)]| spec("podnet/http-echo", args, env, &[]);
    check(echo(&[], &[]), Ok(Duration::ZERO));
    check(echo(&["--drain=5s"], &[]), Ok(secs(5)));
    check(
        echo(&["-drain", "500ms"], &[]),
        Ok(Duration::from_millis(500)),
    );
    check(echo(&["--drain", "1m"], &[]), Ok(secs(60)));
    check(echo(&["--drain=3"], &[]), Ok(secs(3)));
    check(echo(&["--drain=1s", "--drain=2s"], &[]), Ok(secs(2)));
    check(echo(&[], &[("DRAIN_SECONDS", "4")]), Ok(secs(4)));
    check(
        echo(&[], &[("DRAIN_SECONDS", "0.5")]),
        Ok(Duration::from_millis(500)),
    );
    check(
        echo(&["--drain=1s"], &[("DRAIN_SECONDS", "9")]),
        Ok(secs(1)),
    );
    // Other flags are not the drain time; the port flag is not either.
    check(echo(&["-text=hi", "--port=8080"], &[]), Ok(Duration::ZERO));
    check(
        echo(&["--drain=soon"], &[]),
        Err("invalid argument \"soon\" for image podnet/http-echo: expected a duration like 5s"),
    );
    check(echo(&["--drain"], &[]), Err("the flag needs a value"));
    check(
        echo(&["--drain=-1s"], &[]),
        Err("expected a duration from 0 to 3600s"),
    );
    check(
        echo(&["--drain=90m"], &[]),
        Err("expected a duration from 0 to 3600s"),
    );
    check(
        echo(&[], &[("DRAIN_SECONDS", "x")]),
        Err("invalid environment variable DRAIN_SECONDS \"x\""),
    );
}

#[tokio::test(start_paused = true)]
async fn term_drains_then_exits_and_kill_ends_at_once() {
    let ns = pod();
    let (term, kill) = (CancellationToken::new(), CancellationToken::new());
    let running = start_signalled(
        ns.clone(),
        &spec("podnet/tcp-echo", &["--drain=5s"], &[], &[]),
        term.clone(),
        kill.clone(),
    )
    .expect("starts");
    let task = tokio::spawn(running);
    let started = tokio::time::Instant::now();
    term.cancel();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Still draining: new connections are accepted and served.
    let mut stream = ns
        .connect_tcp(SocketAddr::new(ns.ip(), 9000))
        .await
        .expect("connects while draining");
    stream.write_all(b"late").await.expect("write");
    let mut buf = [0; 4];
    stream
        .read_exact(&mut buf)
        .await
        .expect("echo while draining");
    assert_eq!(&buf, b"late");
    assert!(!task.is_finished());
    assert!(task.await.expect("no panic").is_ok());
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(!ns.has_tcp_listener(ECHO_DEFAULT_PORT));

    // Without a drain time SIGTERM ends it at once; SIGKILL always does.
    for (args, signal_term) in [(&[][..], true), (&["--drain=30s"][..], false)] {
        let (term, kill) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(
            start_signalled(
                ns.clone(),
                &spec("podnet/http-echo", args, &[], &[]),
                term.clone(),
                kill.clone(),
            )
            .expect("starts"),
        );
        let started = tokio::time::Instant::now();
        if signal_term {
            term.cancel();
        } else {
            kill.cancel();
        }
        assert!(task.await.expect("no panic").is_ok());
        assert_eq!(started.elapsed(), Duration::ZERO, "{args:?}");
    }
}

/// A server with a start-up delay binds nothing until it is over, so a
/// connection meanwhile is refused; a signal during it ends it at once.
#[tokio::test(start_paused = true)]
async fn a_startup_delay_refuses_connections_until_the_server_listens() {
    let ns = pod();
    let port = HTTP_ECHO_DEFAULT_PORT;
    let (term, kill) = (CancellationToken::new(), CancellationToken::new());
    let task = tokio::spawn(
        start_signalled(
            ns.clone(),
            &spec("podnet/http-echo", &["--startup-delay=3s"], &[], &[]),
            term.clone(),
            kill.clone(),
        )
        .expect("starts"),
    );
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(!ns.has_tcp_listener(port));
    let refused = ns.connect_tcp(SocketAddr::new(ns.ip(), port)).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused),
        "nothing listens yet"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(ns.has_tcp_listener(port));
    ns.connect_tcp(SocketAddr::new(ns.ip(), port))
        .await
        .expect("listens after the delay");
    term.cancel();
    assert_eq!(task.await.expect("no panic").expect("exits"), 0);

    // SIGTERM or SIGKILL while starting: the container ends at once.
    for signal_term in [true, false] {
        let (term, kill) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(
            start_signalled(
                ns.clone(),
                &spec(
                    "podnet/tcp-echo",
                    &[],
                    &[("STARTUP_DELAY_SECONDS", "60")],
                    &[],
                ),
                term.clone(),
                kill.clone(),
            )
            .expect("starts"),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = tokio::time::Instant::now();
        if signal_term {
            term.cancel();
        } else {
            kill.cancel();
        }
        assert_eq!(task.await.expect("no panic").expect("exits"), 0);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert!(!ns.has_tcp_listener(ECHO_DEFAULT_PORT));
    }
    assert_eq!(
        startup_delay(
            Image::TcpEcho,
            &spec("podnet/tcp-echo", &["-startup-delay", "1.5s"], &[], &[])
        )
        .expect("parses"),
        Duration::from_millis(1500)
    );
    let bad = startup_delay(
        Image::HttpEcho,
        &spec(
            "podnet/http-echo",
            &[],
            &[("STARTUP_DELAY_SECONDS", "soon")],
            &[],
        ),
    )
    .expect_err("not a number");
    assert!(
        bad.to_string()
            .contains("invalid environment variable STARTUP_DELAY_SECONDS \"soon\""),
        "{bad}"
    );
}

/// A toolbox container with a command runs it as its main process and
/// exits with its status; without one it idles until stopped.
#[tokio::test(start_paused = true)]
async fn toolbox_command_is_the_main_process_and_its_status_the_exit_code() {
    let ns = pod();
    let exit = |args: &[&str]| {
        let running = start(
            ns.clone(),
            &spec("podnet/toolbox", args, &[], &[]),
            CancellationToken::new(),
        )
        .expect("starts");
        tokio::spawn(running)
    };
    let code = |task: tokio::task::JoinHandle<Exit>| async move {
        task.await.expect("no panic").expect("exits")
    };
    assert_eq!(code(exit(&["true"])).await, 0);
    assert_eq!(code(exit(&["false"])).await, 1);
    assert_eq!(code(exit(&["sh", "-c", "exit 3"])).await, 3);
    assert_eq!(code(exit(&["no-such-command"])).await, 127);
    // A main process may sleep longer than an exec may.
    let started = tokio::time::Instant::now();
    assert_eq!(code(exit(&["sleep", "90"])).await, 0);
    assert_eq!(started.elapsed(), Duration::from_secs(90));

    // `sleep infinity` and the idle toolbox end only when signalled:
    // SIGTERM ends a command with 143.
    for args in [&["sleep", "infinity"][..], &[][..]] {
        let (term, kill) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(
            start_signalled(
                ns.clone(),
                &spec("podnet/toolbox", args, &[], &[]),
                term.clone(),
                kill,
            )
            .expect("starts"),
        );
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!task.is_finished(), "{args:?}");
        term.cancel();
        let expected = if args.is_empty() { 0 } else { SIGTERM_EXIT };
        assert_eq!(code(task).await, expected, "{args:?}");
    }
}
