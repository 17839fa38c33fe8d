//! The control plane answers any request body on any method of its API
//! with a status: tonic's decoding, then the handlers, as the cluster's
//! admin (who gets furthest), never panic nor drop the call.
//!
//! Input: the first byte picks the method (modulo their number), the rest
//! is the request body. One control plane, in memory, serves every input.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use podnet_lab::raw_grpc::{self, API_METHODS};
use tonic::transport::Channel;

struct Server {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
    _state: tempfile::TempDir,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let state = tempfile::tempdir().expect("state dir");
        let config = podnet_controlplane::Config {
            state_dir: Some(state.path().to_path_buf()),
            join_token: "fuzz".into(),
            // Both families: every allocation path is reachable.
            ip_families: podnet_proto::model::network::ClusterFamilies::Dual,
            cluster_cidr: "10.244.0.0/16".parse().expect("cidr"),
            node_cidr_mask_size: 24,
            cluster_cidr_v6: "fd00:10:244::/56".parse().expect("cidr"),
            node_cidr_mask_size_v6: 64,
            node_cidr: "10.10.0.0/16".parse().expect("cidr"),
            node_grace_period: Duration::from_secs(40),
            dns_replicas: 1,
            ingress_replicas: 0,
            ingress_default_backend: None,
            controllers: Default::default(),
        };
        let opened = podnet_controlplane::open(&config).expect("open the control plane's state");
        let admin = podnet_proto::auth::Credentials::read(
            state.path(),
            podnet_proto::auth::ADMIN_CREDENTIALS,
        )
        .expect("admin credentials");
        let channel = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("listen");
            let addr = listener.local_addr().expect("address");
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(podnet_controlplane::run(config, opened, listener, shutdown));
            admin
                .endpoint(&addr.to_string(), podnet_proto::auth::API_SERVER_NAME)
                .expect("endpoint")
                .connect_lazy()
        });
        Server {
            runtime,
            channel,
            _state: state,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let (method, streaming) = API_METHODS[usize::from(which) % API_METHODS.len()];
    let server = server();
    let call = raw_grpc::call(server.channel.clone(), method, streaming, body.to_vec());
    let answer = server
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), call).await });
    match answer {
        Err(_) => panic!("{method}: no answer in 10 s"),
        Ok(Ok(_)) => {}
        Ok(Err(status)) => assert!(raw_grpc::is_an_answer(&status), "{method}: {status:?}"),
    }
});
