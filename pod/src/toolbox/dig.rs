//! `dig`: one DNS query printed the way BIND 9.18's dig prints it (header
//! with status and flags, the sections in master-file format aligned on
//! dig's tab stops, statistics), or only the answers' data with `+short`.
//!
//! Like the real dig, it asks the name as given (absolute) unless `+search`
//! is set, in which case the pod's search list and `ndots` apply; it asks
//! the first nameserver of the pod's resolv.conf unless `@SERVER` is
//! given, sends EDNS with a 1232-byte payload, and retries over TCP when
//! the UDP answer is truncated. It exits 0 whenever a server answered (whatever the status),
//! 9 when none did, and 1 on a bad command line.
//!
//! Supported: `@SERVER`, `-p PORT`, `-t TYPE`, `-x ADDR`, `-q NAME`,
//! `-c IN`, a TYPE or class as a bare word, `+short`, `+[no]search`,
//! `+[no]tcp`/`+vc`, `+time=N`, `+tries=N`, `+retry=N`, `+[no]edns`, and the
//! display toggles `+[no]all`, `cmd`, `comments`, `question`, `answer`,
//! `authority`, `additional`, `stats`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::time::Instant;

use super::{Output, resolve};
use crate::dns::rcode_mnemonic;
use crate::dns::resolver::{self, Exchange, ExchangeOptions, ResolveError, ResolverConfig};
use crate::netns::NetNs;

/// Exit code when no server answered (BIND's).
const NO_REPLY: i32 = 9;
/// Exit code for a bad command line (BIND's).
const BAD_USAGE: i32 = 1;
/// What dig prints as its version.
const VERSION: &str = "9.18-podnet";
/// The types dig takes as a bare word (others need `-t`).
const BARE_TYPES: &[&str] = &[
    "A", "AAAA", "ANY", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "AXFR", "IXFR",
];

const USAGE_TEXT: &str = "Usage:  dig [@server] [-p port] [-t type] [-x addr] [name] [type] [+short] [+search] [+tcp] [+time=N] [+tries=N]\n";

/// Which parts of the output are printed.
#[derive(Debug, Clone, Copy)]
struct Show {
    cmd: bool,
    comments: bool,
    question: bool,
    answer: bool,
    authority: bool,
    additional: bool,
    stats: bool,
}

impl Show {
    fn all(on: bool) -> Show {
        Show {
            cmd: on,
            comments: on,
            question: on,
            answer: on,
            authority: on,
            additional: on,
            stats: on,
        }
    }
}

#[derive(Debug)]
struct Args {
    server: Option<String>,
    port: u16,
    name: Option<String>,
    rtype: Option<RecordType>,
    reverse: Option<IpAddr>,
    short: bool,
    search: bool,
    tcp: bool,
    edns: bool,
    timeout: Duration,
    tries: u32,
    show: Show,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        server: None,
        port: 53,
        name: None,
        rtype: None,
        reverse: None,
        short: false,
        search: false,
        tcp: false,
        edns: true,
        timeout: resolver::TIMEOUT,
        tries: resolver::ATTEMPTS,
        show: Show::all(true),
    };
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        if let Some(server) = word.strip_prefix('@') {
            args.server = Some(server.to_owned());
        } else if let Some(option) = word.strip_prefix('+') {
            plus_option(&mut args, option)?;
        } else if let Some(flag) = word.strip_prefix('-').filter(|f| !f.is_empty()) {
            let (letter, inline) = flag.split_at(1);
            let mut value = || -> Result<String, String> {
                if !inline.is_empty() {
                    return Ok(inline.to_owned());
                }
                words
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("option requires an argument -- '{letter}'"))
            };
            match letter {
                "p" => {
                    let text = value()?;
                    args.port = text
                        .parse()
                        .map_err(|_| format!("invalid port number '{text}'"))?;
                }
                "t" => {
                    let text = value()?;
                    args.rtype =
                        Some(parse_type(&text).ok_or_else(|| format!("invalid type '{text}'"))?);
                }
                "x" => {
                    let text = value()?;
                    args.reverse = Some(
                        text.parse()
                            .map_err(|_| format!("invalid IP address '{text}'"))?,
                    );
                }
                "q" => args.name = Some(value()?),
                "c" => {
                    let text = value()?;
                    if !text.eq_ignore_ascii_case("IN") {
                        return Err(format!("class {text} is not supported (only IN)"));
                    }
                }
                // The query goes over the server address's own family,
                // which `-4` leaves as it is.
                "4" if inline.is_empty() => {}
                _ => return Err(format!("Invalid option: {word}")),
            }
        } else if word.eq_ignore_ascii_case("IN") {
            // The class as a bare word; IN is the only one.
        } else if args.rtype.is_none()
            && args.name.is_some()
            && let Some(rtype) = bare_type(word)
        {
            args.rtype = Some(rtype);
        } else if args.name.is_none() {
            // dig reads a bare type word as the type even before the name
            // (`dig ns` asks for the root's NS), which is rarely what a
            // Kubernetes user means by `dig a`; only the all-caps forms
            // are taken as types there.
            match bare_type(word).filter(|_| word.chars().all(|c| c.is_ascii_uppercase())) {
                Some(rtype) if args.rtype.is_none() => args.rtype = Some(rtype),
                _ => args.name = Some(word.clone()),
            }
        } else {
            return Err(format!("extra argument '{word}'"));
        }
    }
    Ok(args)
}

fn plus_option(args: &mut Args, option: &str) -> Result<(), String> {
    let (option, value) = match option.split_once('=') {
        Some((option, value)) => (option, Some(value)),
        None => (option, None),
    };
    let (on, name) = match option.strip_prefix("no") {
        Some(name) => (false, name),
        None => (true, option),
    };
    let number = |value: Option<&str>| -> Result<u32, String> {
        value
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| format!("Invalid option: +{option}={}", value.unwrap_or("")))
    };
    match name {
        "short" => args.short = on,
        "search" => args.search = on,
        "tcp" | "vc" => args.tcp = on,
        "edns" => args.edns = on,
        "time" if on => {
            args.timeout = Duration::from_secs(u64::from(number(value)?.clamp(1, 60)));
        }
        "tries" if on => args.tries = number(value)?.clamp(1, 10),
        "retry" if on => args.tries = number(value)?.saturating_add(1).clamp(1, 10),
        "all" => args.show = Show::all(on),
        "cmd" => args.show.cmd = on,
        "comments" => args.show.comments = on,
        "question" => args.show.question = on,
        "answer" => args.show.answer = on,
        "authority" => args.show.authority = on,
        "additional" => args.show.additional = on,
        "stats" => args.show.stats = on,
        _ => return Err(format!("Invalid option: +{option}")),
    }
    Ok(())
}

fn bare_type(word: &str) -> Option<RecordType> {
    BARE_TYPES
        .iter()
        .find(|t| t.eq_ignore_ascii_case(word))
        .and_then(|t| RecordType::from_str(t).ok())
}

/// A type given with `-t` (or nslookup's `-type=`): any type hickory knows.
pub(super) fn parse_type(text: &str) -> Option<RecordType> {
    RecordType::from_str(&text.to_ascii_uppercase()).ok()
}

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(message) => return out.fail(BAD_USAGE, format!("{message}\n{USAGE_TEXT}")),
    };
    let config = ResolverConfig::for_pod(ns);
    let server = match server_address(ns, &args, &config).await {
        Ok(server) => server,
        Err(message) => return out.fail(NO_REPLY, message),
    };
    let (names, rtype) = match (&args.reverse, &args.name) {
        (Some(ip), _) => (vec![Name::from(*ip).to_ascii()], RecordType::PTR),
        (None, None) => (vec![".".to_owned()], args.rtype.unwrap_or(RecordType::NS)),
        (None, Some(name)) if args.search => {
            (config.candidates(name), args.rtype.unwrap_or(RecordType::A))
        }
        (None, Some(name)) => (vec![absolute(name)], args.rtype.unwrap_or(RecordType::A)),
    };
    let options = ExchangeOptions {
        timeout: args.timeout,
        attempts: args.tries,
        tcp: args.tcp,
    };
    let command_line = argv.get(1..).unwrap_or_default().join(" ");
    let mut last = None;
    for (i, text) in names.iter().enumerate() {
        let qname = match Name::from_ascii(text) {
            Ok(name) => name,
            Err(error) => {
                return out.fail(
                    BAD_USAGE,
                    format!("'{text}' is not a legal name ({error})\n"),
                );
            }
        };
        let query = resolver::new_query(qname, rtype, args.edns);
        let started = Instant::now();
        let exchange = match resolver::exchange(ns, server, &query, options).await {
            Ok(exchange) => exchange,
            Err(error) => {
                print_no_reply(&args, &command_line, server, &error, out);
                return NO_REPLY;
            }
        };
        let elapsed = started.elapsed();
        let response = &exchange.response;
        let more = i + 1 < names.len();
        // +search moves on like dig does: past names that do not exist or
        // have nothing of the asked type.
        let next = response.response_code == hickory_proto::op::ResponseCode::NXDomain
            || (response.response_code == hickory_proto::op::ResponseCode::NoError
                && response.answers.is_empty());
        last = Some((exchange, elapsed));
        if !(more && next) {
            break;
        }
    }
    if let Some((exchange, elapsed)) = last {
        print_exchange(&args, &command_line, server, &exchange, elapsed, out);
    }
    0
}

/// `@SERVER` (an address, or a name resolved like any host) or the pod's
/// nameserver, with `-p`.
async fn server_address(
    ns: &Arc<NetNs>,
    args: &Args,
    config: &ResolverConfig,
) -> Result<SocketAddr, String> {
    let Some(server) = &args.server else {
        // BIND's dig asks the first nameserver of resolv.conf.
        return match config.servers().first() {
            Some(server) => Ok(SocketAddr::new(server.ip(), args.port)),
            None => Err(";; no IPv4 nameserver in /etc/resolv.conf\n".to_owned()),
        };
    };
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, args.port));
    }
    match resolve(ns, server).await {
        Ok(ip) => Ok(SocketAddr::new(ip, args.port)),
        Err(_) => Err(format!(
            "dig: couldn't get address for '{server}': not found\n"
        )),
    }
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn print_no_reply(
    args: &Args,
    command_line: &str,
    server: SocketAddr,
    error: &ResolveError,
    out: &mut Output,
) {
    let reason = match error {
        ResolveError::Timeout { .. } => "timed out".to_owned(),
        ResolveError::Network { source, .. } => super::strerror(source).to_lowercase(),
        other => other.to_string(),
    };
    let tries = match error {
        ResolveError::Timeout { attempts, .. } => *attempts,
        _ => 1,
    };
    for _ in 0..tries {
        out.print(format!(
            ";; communications error to {}#{}: {reason}\n",
            server.ip(),
            server.port()
        ));
    }
    if !args.short && args.show.cmd {
        out.print(format!(
            "\n; <<>> DiG {VERSION} <<>> {command_line}\n;; global options: +cmd\n"
        ));
    }
    out.print(";; no servers could be reached\n");
}

fn print_exchange(
    args: &Args,
    command_line: &str,
    server: SocketAddr,
    exchange: &Exchange,
    elapsed: Duration,
    out: &mut Output,
) {
    let response = &exchange.response;
    if args.short {
        for record in &response.answers {
            out.print(format!("{}\n", rdata_text(&record.data)));
        }
        return;
    }
    let show = args.show;
    let mut text = String::new();
    if show.cmd {
        text.push_str(&format!(
            "\n; <<>> DiG {VERSION} <<>> {command_line}\n;; global options: +cmd\n"
        ));
    }
    if exchange.truncated_udp && show.comments {
        text.push_str(";; Truncated, retrying in TCP mode.\n");
    }
    if show.comments {
        text.push_str(&header_text(response));
        text.push('\n');
        if let Some(edns) = &response.edns {
            text.push_str(&format!(
                ";; OPT PSEUDOSECTION:\n; EDNS: version: {}, flags:{}; udp: {}\n",
                edns.version(),
                if edns.flags().dnssec_ok { " do" } else { "" },
                edns.max_payload()
            ));
        }
    }
    if show.question {
        if show.comments {
            text.push_str(";; QUESTION SECTION:\n");
        }
        for question in &response.queries {
            text.push_str(&columns(
                &[
                    &format!(";{}", question.name().to_ascii()),
                    &question.query_class().to_string(),
                    &question.query_type().to_string(),
                ],
                &[32, 40],
            ));
            text.push('\n');
        }
        if show.comments {
            text.push('\n');
        }
    }
    for (on, title, records) in [
        (show.answer, "ANSWER", &response.answers),
        (show.authority, "AUTHORITY", &response.authorities),
        (show.additional, "ADDITIONAL", &response.additionals),
    ] {
        if !on || records.is_empty() {
            continue;
        }
        if show.comments {
            text.push_str(&format!(";; {title} SECTION:\n"));
        }
        for record in records {
            text.push_str(&record_line(record));
            text.push('\n');
        }
        if show.comments {
            text.push('\n');
        }
    }
    if show.stats {
        text.push_str(&format!(
            ";; Query time: {} msec\n;; SERVER: {ip}#{port}({ip}) ({transport})\n;; WHEN: {when}\n;; MSG SIZE  rcvd: {size}\n\n",
            elapsed.as_millis(),
            ip = server.ip(),
            port = server.port(),
            transport = if exchange.tcp { "TCP" } else { "UDP" },
            when = chrono::Utc::now().format("%a %b %d %H:%M:%S UTC %Y"),
            size = exchange.size,
        ));
    }
    out.print(text);
}

/// dig's `->>HEADER<<-` and flags lines (and its warning about recursion).
fn header_text(response: &Message) -> String {
    let opcode = match response.op_code {
        OpCode::Query => "QUERY".to_owned(),
        OpCode::Status => "STATUS".to_owned(),
        OpCode::Notify => "NOTIFY".to_owned(),
        OpCode::Update => "UPDATE".to_owned(),
        other => format!("RESERVED{}", u8::from(other)),
    };
    let flags: Vec<&str> = [
        (true, "qr"),
        (response.authoritative, "aa"),
        (response.truncation, "tc"),
        (response.recursion_desired, "rd"),
        (response.recursion_available, "ra"),
        (response.authentic_data, "ad"),
        (response.checking_disabled, "cd"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    let additional = response.additionals.len() + usize::from(response.edns.is_some());
    let mut text = format!(
        ";; Got answer:\n;; ->>HEADER<<- opcode: {opcode}, status: {}, id: {}\n;; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {additional}\n",
        rcode_mnemonic(response.response_code),
        response.id,
        flags.join(" "),
        response.queries.len(),
        response.answers.len(),
        response.authorities.len(),
    );
    if response.recursion_desired && !response.recursion_available {
        text.push_str(";; WARNING: recursion requested but not available\n");
    }
    text
}

/// A record in dig's master-file format: name, TTL, class, type and data
/// aligned on dig's tab stops (columns 24, 32, 40, 48), a single space
/// where a field overflows its column.
pub(super) fn record_line(record: &Record) -> String {
    columns(
        &[
            &record.name.to_ascii(),
            &record.ttl.to_string(),
            &record.dns_class.to_string(),
            &record.record_type().to_string(),
            &rdata_text(&record.data),
        ],
        &[24, 32, 40, 48],
    )
}

/// Joins `fields`, indenting after field `i` to column `stops[i]` with tabs
/// (8 wide), or with one space when already past it, as BIND does.
fn columns(fields: &[&str], stops: &[usize]) -> String {
    let mut line = String::new();
    let mut column = 0;
    for (i, field) in fields.iter().enumerate() {
        line.push_str(field);
        column += field.chars().count();
        let Some(&stop) = stops.get(i) else {
            continue;
        };
        if i + 1 == fields.len() {
            break;
        }
        if column >= stop {
            line.push(' ');
            column += 1;
        } else {
            while column < stop {
                line.push('\t');
                column = (column / 8 + 1) * 8;
            }
        }
    }
    line
}

/// Record data as dig prints it (names absolute, TXT strings quoted).
pub(super) fn rdata_text(rdata: &RData) -> String {
    match rdata {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(name) => name.0.to_ascii(),
        RData::PTR(name) => name.0.to_ascii(),
        RData::NS(name) => name.0.to_ascii(),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            srv.target.to_ascii()
        ),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| format!("\"{}\"", String::from_utf8_lossy(s).replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(" "),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            soa.mname.to_ascii(),
            soa.rname.to_ascii(),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let args = parse_args(&argv(&["dig", "@10.96.0.10", "web", "SRV", "+short"])).unwrap();
        assert_eq!(args.server.as_deref(), Some("10.96.0.10"));
        assert_eq!(args.name.as_deref(), Some("web"));
        assert_eq!(args.rtype, Some(RecordType::SRV));
        assert!(args.short && !args.search);

        let args = parse_args(&argv(&["dig", "-p", "5353", "-t", "aaaa", "a", "+search"])).unwrap();
        assert_eq!((args.port, args.rtype), (5353, Some(RecordType::AAAA)));
        // A lowercase `a` before any name is a host name, not a type.
        assert_eq!(args.name.as_deref(), Some("a"));
        assert!(args.search);

        let args = parse_args(&argv(&["dig", "NS"])).unwrap();
        assert_eq!((args.name, args.rtype), (None, Some(RecordType::NS)));

        let args = parse_args(&argv(&["dig", "-x", "10.96.0.10", "+time=1", "+tries=3"])).unwrap();
        assert_eq!(args.reverse, Some(IpAddr::from([10, 96, 0, 10])));
        assert_eq!((args.timeout, args.tries), (Duration::from_secs(1), 3));

        let args = parse_args(&argv(&["dig", "+noall", "+answer", "web"])).unwrap();
        assert!(args.show.answer && !args.show.cmd && !args.show.stats);

        for bad in [
            &["dig", "+bogus"][..],
            &["dig", "-z"],
            &["dig", "-p"],
            &["dig", "-x", "nope"],
            &["dig", "a", "b", "c"],
            &["dig", "-c", "CH", "x"],
        ] {
            assert!(parse_args(&argv(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn master_file_columns() {
        let record = |name: &str, rdata: RData| {
            Record::from_rdata(Name::from_ascii(name).unwrap(), 5, rdata)
        };
        assert_eq!(
            record_line(&record(
                "web.default.svc.cluster.local.",
                RData::A(Ipv4Addr::new(10, 96, 0, 12).into())
            )),
            "web.default.svc.cluster.local. 5 IN\tA\t10.96.0.12"
        );
        assert_eq!(
            record_line(&record(
                "example.com.",
                RData::A(Ipv4Addr::new(192, 0, 2, 1).into())
            )),
            "example.com.\t\t5\tIN\tA\t192.0.2.1"
        );
        assert_eq!(
            columns(&[";example.com.", "IN", "A"], &[32, 40]),
            ";example.com.\t\t\tIN\tA"
        );
        assert_eq!(
            rdata_text(&RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
                "1.1.0".into()
            ]))),
            "\"1.1.0\""
        );
    }
}
