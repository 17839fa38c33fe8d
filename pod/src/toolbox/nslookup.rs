//! `nslookup NAME [SERVER]`: BIND 9's nslookup in its non-interactive form.
//!
//! It prints the server, then the answers: `Name:`/`Address:` pairs for
//! the default A and AAAA lookups, `canonical name =` for CNAMEs, and
//! `name =`, `service =`, `text =` ... for other types. Unlike dig it
//! applies the pod's search list and `ndots` (so `nslookup web` finds
//! `web.default.svc.cluster.local`), and an IP address is looked up in
//! reverse. A name that does not exist prints `** server can't find NAME:
//! NXDOMAIN` and exits 1, as does a server that does not answer.
//!
//! Supported: `-type=T` (`-query=T`, `-q=T`), `-port=N`, `-timeout=N`,
//! `-retry=N`; other `-options` are accepted and ignored. No interactive
//! mode.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::dig::parse_type;
use super::{Output, resolve};
use crate::dns::rcode_mnemonic;
use crate::dns::resolver::{self, ExchangeOptions, ResolveError, ResolverConfig, follow};
use crate::netns::NetNs;

const USAGE_TEXT: &str =
    "Usage: nslookup [-type=TYPE] [-port=N] [-timeout=N] [-retry=N] NAME [SERVER]\n";

#[derive(Debug)]
struct Args {
    name: String,
    server: Option<String>,
    rtype: Option<RecordType>,
    port: u16,
    timeout: Duration,
    tries: u32,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut rtype = None;
    let mut port = 53;
    let mut timeout = resolver::TIMEOUT;
    let mut tries = resolver::ATTEMPTS;
    for word in argv.iter().skip(1) {
        let Some(option) = word.strip_prefix('-').filter(|o| !o.is_empty()) else {
            positional.push(word.clone());
            continue;
        };
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let number = || {
            value
                .parse::<u32>()
                .map_err(|_| format!("*** invalid option: {word}"))
        };
        match key {
            "type" | "query" | "q" | "querytype" | "ty" => {
                rtype =
                    Some(parse_type(value).ok_or_else(|| format!("unknown query type: {value}"))?);
            }
            "port" => {
                port =
                    u16::try_from(number()?).map_err(|_| format!("*** invalid option: {word}"))?;
            }
            "timeout" => timeout = Duration::from_secs(u64::from(number()?.clamp(1, 60))),
            "retry" => tries = number()?.clamp(1, 10),
            // `-debug`, `-norecurse`, `-vc`... change nothing that matters here.
            _ => {}
        }
    }
    let mut positional = positional.into_iter();
    let name = positional
        .next()
        .ok_or_else(|| "nslookup: no name given (interactive mode is not supported)".to_owned())?;
    let server = positional.next();
    if let Some(extra) = positional.next() {
        return Err(format!("nslookup: unexpected argument {extra:?}"));
    }
    Ok(Args {
        name,
        server,
        rtype,
        port,
        timeout,
        tries,
    })
}

pub(super) async fn run(ns: &Arc<NetNs>, argv: &[String], out: &mut Output) -> i32 {
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(message) => return out.fail(1, format!("{message}\n{USAGE_TEXT}")),
    };
    let config = ResolverConfig::for_pod(ns);
    let server = match &args.server {
        // BIND's nslookup asks the first nameserver of resolv.conf.
        None => match config.servers().first() {
            Some(server) => SocketAddr::new(server.ip(), args.port),
            None => {
                return out.fail(1, ";; no IPv4 nameserver in /etc/resolv.conf\n");
            }
        },
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, args.port),
            Err(_) => match resolve(ns, text).await {
                Ok(ip) => SocketAddr::new(ip, args.port),
                Err(_) => {
                    return out.fail(
                        1,
                        format!("nslookup: couldn't get address for '{text}': not found\n"),
                    );
                }
            },
        },
    };
    let options = ExchangeOptions {
        timeout: args.timeout,
        attempts: args.tries,
        tcp: false,
    };
    let mut text = format!(
        "Server:\t\t{ip}\nAddress:\t{ip}#{port}\n\n",
        ip = server.ip(),
        port = server.port()
    );
    let code = match args.name.parse::<IpAddr>() {
        Ok(ip) => {
            let reverse = Name::from(ip).to_ascii();
            let rtype = args.rtype.unwrap_or(RecordType::PTR);
            lookup(
                ns,
                server,
                options,
                std::slice::from_ref(&reverse),
                &reverse,
                &[rtype],
                &mut text,
            )
            .await
        }
        Err(_) => {
            let types = match args.rtype {
                Some(rtype) => vec![rtype],
                None => vec![RecordType::A, RecordType::AAAA],
            };
            let candidates = config.candidates(&args.name);
            lookup(
                ns,
                server,
                options,
                &candidates,
                &args.name,
                &types,
                &mut text,
            )
            .await
        }
    };
    out.print(text);
    code
}

/// Asks the candidates in turn for the first type until one exists, then
/// asks that name for the remaining types, printing into `text`.
async fn lookup(
    ns: &Arc<NetNs>,
    server: SocketAddr,
    options: ExchangeOptions,
    candidates: &[String],
    shown: &str,
    types: &[RecordType],
    text: &mut String,
) -> i32 {
    let Some((&first, rest)) = types.split_first() else {
        return 0;
    };
    // As the resolver reports it: other errors first, then NXDOMAIN, and
    // REFUSED (a name outside the cluster) only if nothing said NXDOMAIN.
    let mut failure = None;
    let mut nx_domain = false;
    let mut found = None;
    for candidate in candidates {
        let Ok(name) = Name::from_ascii(candidate) else {
            continue;
        };
        match ask(ns, server, options, &name, first).await {
            Err(error) => return no_reply(server, &error, text),
            Ok(response) if response.response_code == ResponseCode::NoError => {
                found = Some((name, response));
                break;
            }
            // Any error sends the search on.
            Ok(response) => match response.response_code {
                ResponseCode::NXDomain => nx_domain = true,
                ResponseCode::Refused => {}
                rcode => failure = failure.or(Some(rcode)),
            },
        }
    }
    let Some((name, response)) = found else {
        let rcode = failure.unwrap_or(if nx_domain {
            ResponseCode::NXDomain
        } else {
            ResponseCode::Refused
        });
        let _ = write!(
            text,
            "** server can't find {shown}: {}\n\n",
            rcode_mnemonic(rcode)
        );
        return 1;
    };
    let mut printed = print_answers(&response, &name, first, true, text);
    for &rtype in rest {
        match ask(ns, server, options, &name, rtype).await {
            Ok(response) if response.response_code == ResponseCode::NoError => {
                printed |= print_answers(&response, &name, rtype, false, text);
            }
            // The name exists (the first type said so); an error for another
            // type only means nothing to print for it.
            Ok(_) => {}
            Err(error) => return no_reply(server, &error, text),
        }
    }
    if !printed {
        let _ = writeln!(text, "*** Can't find {}: No answer", relative(&name));
    }
    text.push('\n');
    0
}

async fn ask(
    ns: &Arc<NetNs>,
    server: SocketAddr,
    options: ExchangeOptions,
    name: &Name,
    rtype: RecordType,
) -> Result<Message, ResolveError> {
    let query = resolver::new_query(name.clone(), rtype, false);
    Ok(resolver::exchange(ns, server, &query, options)
        .await?
        .response)
}

/// Prints the answers to one query; `canonical` also prints the CNAMEs
/// (once, with the first type). Returns whether anything was printed.
fn print_answers(
    response: &Message,
    name: &Name,
    rtype: RecordType,
    canonical: bool,
    text: &mut String,
) -> bool {
    let mut printed = false;
    if canonical && rtype != RecordType::CNAME {
        for record in &response.answers {
            if let RData::CNAME(target) = &record.data {
                let _ = writeln!(
                    text,
                    "{}\tcanonical name = {}",
                    relative(&record.name),
                    target.0.to_ascii()
                );
                printed = true;
            }
        }
    }
    let (_, records) = follow(response, name, rtype);
    for record in &records {
        let owner = relative(&record.name);
        let _ = match &record.data {
            RData::A(a) => write!(text, "Name:\t{owner}\nAddress: {}\n", a.0),
            RData::AAAA(aaaa) => write!(text, "Name:\t{owner}\nAddress: {}\n", aaaa.0),
            RData::CNAME(target) => {
                writeln!(text, "{owner}\tcanonical name = {}", target.0.to_ascii())
            }
            RData::PTR(target) => writeln!(text, "{owner}\tname = {}", target.0.to_ascii()),
            RData::NS(target) => writeln!(text, "{owner}\tnameserver = {}", target.0.to_ascii()),
            RData::SRV(srv) => writeln!(
                text,
                "{owner}\tservice = {} {} {} {}",
                srv.priority,
                srv.weight,
                srv.port,
                srv.target.to_ascii()
            ),
            RData::TXT(_) => writeln!(
                text,
                "{owner}\ttext = {}",
                super::dig::rdata_text(&record.data)
            ),
            RData::SOA(soa) => write!(
                text,
                "{owner}\n\torigin = {}\n\tmail addr = {}\n\tserial = {}\n\trefresh = {}\n\tretry = {}\n\texpire = {}\n\tminimum = {}\n",
                relative(&soa.mname),
                relative(&soa.rname),
                soa.serial,
                soa.refresh,
                soa.retry,
                soa.expire,
                soa.minimum
            ),
            other => writeln!(
                text,
                "{owner}\t{} = {}",
                other.record_type(),
                super::dig::rdata_text(other)
            ),
        };
        printed = true;
    }
    printed
}

/// A name as nslookup shows owners: without the root's dot.
fn relative(name: &Name) -> String {
    let text = name.to_ascii();
    match text.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => text,
    }
}

fn no_reply(server: SocketAddr, error: &ResolveError, text: &mut String) -> i32 {
    match error {
        ResolveError::Network { source, .. } => {
            let _ = write!(
                text,
                ";; communications error to {}#{}: {}\n;; no servers could be reached\n\n",
                server.ip(),
                server.port(),
                super::strerror(source).to_lowercase()
            );
        }
        _ => text.push_str(";; connection timed out; no servers could be reached\n\n"),
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        let args = parse_args(&argv(&[
            "nslookup",
            "-type=srv",
            "_http._tcp.web",
            "10.96.0.10",
        ]))
        .unwrap();
        assert_eq!(args.name, "_http._tcp.web");
        assert_eq!(args.server.as_deref(), Some("10.96.0.10"));
        assert_eq!(args.rtype, Some(RecordType::SRV));
        let args = parse_args(&argv(&[
            "nslookup",
            "-port=5353",
            "-timeout=1",
            "-debug",
            "web",
        ]))
        .unwrap();
        assert_eq!(
            (args.port, args.timeout, args.rtype),
            (5353, Duration::from_secs(1), None)
        );
        for bad in [
            &["nslookup"][..],
            &["nslookup", "-type=BOGUS", "x"],
            &["nslookup", "a", "b", "c"],
        ] {
            assert!(parse_args(&argv(bad)).is_err(), "{bad:?}");
        }
    }
}
