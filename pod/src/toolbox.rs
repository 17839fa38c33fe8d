//! The commands `podnet exec POD -- CMD...` runs inside a pod's network
//! namespace: `curl`, `wget`, `nc`, `ping`, `traceroute`, `nslookup`,
//! `dig`, `ss`, `netstat`, `hostname`, `ip`, `env`, `printenv`, `echo`,
//! `cat`, `sleep`, `true`, `false`, and `sh -c` to run several of them.
//!
//! Each command is a small reimplementation of the real tool's common
//! options, written against the pod's socket API (`crate::netns`), with the
//! real tool's output format and exit codes so that troubleshooting steps
//! written for a real cluster read the same here. A command gets its argv,
//! the whole of stdin up front and the environment of the container it is
//! run in ([`run`]), and returns everything it printed at once.
//!
//! Host names resolve through [`resolve`]: the pod's hosts file, then
//! cluster DNS with the pod's resolv.conf (`crate::dns::resolver`). The
//! files the kubelet manages in a container (/etc/resolv.conf, /etc/hosts,
//! /etc/hostname) are what `cat` can read; they are made from the same
//! values the resolver uses.
//!
//! Deliberately not here: a real shell (`sh -c` runs toolbox commands
//! joined by `;`, `&&` and `||`; pipes, redirections and variables are
//! refused), a filesystem beyond those files (`curl -o FILE`, `wget` without
//! `-O -`), and TLS. `traceroute` measures the path with TTL-limited echo
//! requests that the node datapath routes like any other (see its module).
//! Output is buffered and bounded by [`MAX_OUTPUT`].

mod basic;
mod curl;
mod dig;
mod env;
mod http_client;
mod nc;
mod nslookup;
mod ping;
mod sh;
mod ss;
mod traceroute;
mod wget;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use crate::dns::resolver::{self, ResolveError};
use crate::netns::NetNs;

/// Bytes of stdout (and, separately, of stderr) a command may produce;
/// `exec` buffers all of it, so a large download must go to `-o /dev/null`.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// The commands, as the "command not found" message lists them.
const COMMANDS: &[&str] = &[
    "curl",
    "wget",
    "nc",
    "ping",
    "traceroute",
    "nslookup",
    "dig",
    "ss",
    "netstat",
    "hostname",
    "ip",
    "env",
    "printenv",
    "echo",
    "cat",
    "sleep",
    "true",
    "false",
    "sh",
];

/// Exit code for a command line that does not parse (clap's and the GNU
/// tools' convention).
const USAGE: i32 = 2;

/// What a finished command printed, and its exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl Output {
    /// Appends to stdout; returns false (and keeps what fits) once
    /// [`MAX_OUTPUT`] is reached.
    fn print(&mut self, text: impl AsRef<[u8]>) -> bool {
        append_bounded(&mut self.stdout, text.as_ref())
    }

    /// Appends to stderr, bounded like [`Output::print`].
    fn eprint(&mut self, text: impl AsRef<[u8]>) {
        append_bounded(&mut self.stderr, text.as_ref());
    }

    /// A message to stderr and the exit code to return with it.
    fn fail(&mut self, code: i32, message: impl AsRef<[u8]>) -> i32 {
        self.eprint(message);
        code
    }
}

fn append_bounded(buffer: &mut Vec<u8>, text: &[u8]) -> bool {
    let room = MAX_OUTPUT.saturating_sub(buffer.len());
    let fits = text.len().min(room);
    buffer.extend_from_slice(&text[..fits]);
    fits == text.len()
}

/// An environment variable of a container: name and value.
pub type EnvVar = (String, String);

/// What a command runs in: the pod's namespace, the environment of the
/// container it is exec'd in, and its stdin.
#[derive(Clone, Copy)]
struct Process<'a> {
    ns: &'a Arc<NetNs>,
    env: &'a [EnvVar],
    stdin: &'a [u8],
    /// The container's main process rather than an exec: commands meant
    /// to finish (`sleep`) may then run as long as the container does.
    main: bool,
}

/// Runs `argv` in `ns`, as a process of the container whose environment is
/// `env`, with `stdin` as its standard input. Never panics on any input;
/// every failure is an exit code and a message on stderr.
pub async fn run(ns: Arc<NetNs>, env: &[EnvVar], argv: &[String], stdin: &[u8]) -> Output {
    let mut out = Output::default();
    let process = Process {
        ns: &ns,
        env,
        stdin,
        main: false,
    };
    out.exit_code = dispatch(process, argv, &mut out).await;
    out
}

/// Runs `argv` as the main process of a `podnet/toolbox` container (its
/// `command` and `args`), with no stdin: the same commands as [`run`],
/// except that `sleep` takes any duration, `infinity` included, as a
/// container's `sleep 3600` would. The container exits with its status.
pub async fn run_main(ns: Arc<NetNs>, env: &[EnvVar], argv: &[String]) -> Output {
    let mut out = Output::default();
    let process = Process {
        ns: &ns,
        env,
        stdin: &[],
        main: true,
    };
    out.exit_code = dispatch(process, argv, &mut out).await;
    out
}

async fn dispatch(process: Process<'_>, argv: &[String], out: &mut Output) -> i32 {
    let Process {
        ns,
        env,
        stdin,
        main,
    } = process;
    let Some(command) = argv.first() else {
        return out.fail(
            USAGE,
            format!(
                "podnet toolbox: no command given (available: {})\n",
                COMMANDS.join(", ")
            ),
        );
    };
    // `/usr/bin/curl` is `curl`: commands copied from real pods often use
    // absolute paths.
    let name = command.rsplit('/').next().unwrap_or(command);
    match name {
        "curl" => curl::run(ns, argv, stdin, out).await,
        "wget" => wget::run(ns, argv, out).await,
        "nc" | "netcat" => nc::run(ns, argv, stdin, out).await,
        "ping" => ping::run(ns, argv, out).await,
        "traceroute" => traceroute::run(ns, argv, out).await,
        "nslookup" => nslookup::run(ns, argv, out).await,
        "dig" => dig::run(ns, argv, out).await,
        "ss" => ss::ss(ns, argv, out),
        "netstat" => ss::netstat(ns, argv, out),
        "hostname" => basic::hostname(ns, argv, out),
        "ip" => basic::ip(ns, argv, out),
        "env" => env::env(process, argv, out).await,
        "printenv" => env::printenv(env, argv, out),
        "echo" => basic::echo(argv, out),
        "cat" => basic::cat(ns, argv, stdin, out),
        "sleep" => basic::sleep(argv, main, out).await,
        "sh" | "bash" | "ash" | "dash" => sh::run(process, argv, out).await,
        "true" => 0,
        "false" => 1,
        _ => out.fail(
            127,
            format!(
                "podnet toolbox: {command}: command not found (available: {})\n",
                COMMANDS.join(", ")
            ),
        ),
    }
}

/// [`dispatch`] as a boxed future, for the commands that run other
/// commands (`sh -c`, `env CMD`): a recursive `async fn` needs the box.
fn dispatch_boxed<'a>(
    process: Process<'a>,
    argv: &'a [String],
    out: &'a mut Output,
) -> futures::future::BoxFuture<'a, i32> {
    Box::pin(dispatch(process, argv, out))
}

/// Parses a command line with clap; on failure prints what clap says
/// (help goes to stdout with exit 0, errors to stderr with exit 2) and
/// returns the exit code.
fn parse<P: clap::Parser>(argv: &[String], out: &mut Output) -> Result<P, i32> {
    P::try_parse_from(argv).map_err(|error| {
        let text = error.render().to_string();
        if error.use_stderr() {
            out.eprint(text);
        } else {
            out.print(text);
        }
        error.exit_code()
    })
}

/// Resolves `host` the way `getaddrinfo` in the pod would: an IPv4 or
/// IPv6 literal (bracketed as in a URL, or bare), `localhost` or the pod's
/// own name (the kubelet's /etc/hosts), else cluster DNS through the pod's
/// search list. Returns the first address, which is the one the tools
/// connect to. A name is looked up as A: glibc's RFC 6724 sorting puts
/// IPv4 before unique-local IPv6 (`fd00::/8`, podnet's ranges), so on a
/// dual-stack cluster the first address it returns is the IPv4 one too;
/// an IPv6-only pod, or a name with no A record, gets the AAAA one.
pub async fn resolve(ns: &Arc<NetNs>, host: &str) -> Result<IpAddr, ResolveError> {
    resolve_family(ns, host, Family::Any).await
}

/// Which addresses a tool's `-4` or `-6` lets it use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

/// `-4` and `-6`, as curl, wget, ping and nc take them.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub(crate) struct FamilyArgs {
    /// Use IPv4 addresses only.
    #[arg(short = '4', long = "ipv4", visible_alias = "inet4-only")]
    ipv4: bool,
    /// Use IPv6 addresses only (names are looked up as AAAA).
    #[arg(
        short = '6',
        long = "ipv6",
        visible_alias = "inet6-only",
        conflicts_with = "ipv4"
    )]
    ipv6: bool,
}

impl FamilyArgs {
    pub(crate) fn family(self) -> Family {
        match (self.ipv4, self.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        }
    }
}

/// [`resolve`] restricted to `family`, as `getaddrinfo` with `AF_INET` or
/// `AF_INET6` (what `-4` and `-6` ask for): a literal of the other family
/// does not resolve, and with IPv6 a name is looked up as AAAA (the
/// kubelet's /etc/hosts gives `localhost` `::1` and the pod's name its
/// IPv6 address).
pub async fn resolve_family(
    ns: &Arc<NetNs>,
    host: &str,
    family: Family,
) -> Result<IpAddr, ResolveError> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let no_data = |rtype| ResolveError::NoData {
        name: host.to_owned(),
        rtype,
    };
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return match (family, ip) {
            (Family::V4, IpAddr::V6(_)) => Err(no_data(hickory_proto::rr::RecordType::A)),
            (Family::V6, IpAddr::V4(_)) => Err(no_data(hickory_proto::rr::RecordType::AAAA)),
            _ => Ok(ip),
        };
    }
    match family {
        Family::V4 => resolve_a(ns, host).await,
        Family::V6 => resolve_aaaa(ns, host).await,
        // RFC 6724's first rule: a destination the pod has no source
        // address for sorts last, so an IPv6-only pod connects over IPv6.
        Family::Any if ns.ip4().is_none() => resolve_aaaa(ns, host).await,
        // A name with no A record but an AAAA one (an IPv6-only Service
        // on a dual-stack cluster) resolves to its IPv6 address.
        Family::Any => match resolve_a(ns, host).await {
            Err(ResolveError::NoData { .. }) if ns.ip6().is_some() => resolve_aaaa(ns, host).await,
            resolved => resolved,
        },
    }
}

/// The first IPv4 address of `host`: /etc/hosts, then its A records.
async fn resolve_a(ns: &Arc<NetNs>, host: &str) -> Result<IpAddr, ResolveError> {
    let addresses = resolver::resolve_ipv4(ns, host).await?;
    addresses
        .first()
        .copied()
        .map(IpAddr::V4)
        .ok_or_else(|| ResolveError::NoData {
            name: host.to_owned(),
            rtype: hickory_proto::rr::RecordType::A,
        })
}

/// The first IPv6 address of `host`: /etc/hosts, then its AAAA records.
async fn resolve_aaaa(ns: &Arc<NetNs>, host: &str) -> Result<IpAddr, ResolveError> {
    let name = host.strip_suffix('.').unwrap_or(host);
    if let Some(ip) = resolver::HostsFile::for_pod(ns).lookup_ipv6(name) {
        return Ok(IpAddr::V6(ip));
    }
    let lookup = resolver::lookup(ns, host, hickory_proto::rr::RecordType::AAAA).await?;
    lookup
        .records
        .iter()
        .find_map(|record| match &record.data {
            hickory_proto::rr::RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .ok_or_else(|| ResolveError::NoData {
            name: host.to_owned(),
            rtype: hickory_proto::rr::RecordType::AAAA,
        })
}

/// The C library's wording for an error, which is what the real tools
/// print (`Connection refused`, not Rust's `connection refused`).
fn strerror(error: &io::Error) -> String {
    let text = match error.kind() {
        io::ErrorKind::ConnectionRefused => "Connection refused",
        io::ErrorKind::ConnectionReset => "Connection reset by peer",
        io::ErrorKind::ConnectionAborted => "Software caused connection abort",
        io::ErrorKind::TimedOut => "Connection timed out",
        io::ErrorKind::BrokenPipe => "Broken pipe",
        io::ErrorKind::AddrInUse => "Address already in use",
        io::ErrorKind::AddrNotAvailable => "Cannot assign requested address",
        io::ErrorKind::HostUnreachable => "No route to host",
        io::ErrorKind::NetworkUnreachable => "Network is unreachable",
        _ => return error.to_string(),
    };
    text.to_owned()
}

/// The longest timeout or interval the commands accept. Longer would be
/// meaningless for an exec, and deadlines far in the future overflow
/// `Instant` arithmetic.
const MAX_SECONDS: f64 = 86_400.0;

/// Parses a number of seconds as the tools take them (`1`, `0.5`), at most
/// [`MAX_SECONDS`].
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("invalid number of seconds: {text:?} (expected 0 to {MAX_SECONDS})");
    let seconds: f64 = text.trim().parse().map_err(|_| invalid())?;
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(invalid());
    }
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests;
