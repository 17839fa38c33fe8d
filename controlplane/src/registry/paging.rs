//! Paginated lists, as the Kubernetes list API pages them: `limit` and
//! `continue` in, a page, the next `continue` and `remainingItemCount`
//! out.
//!
//! The continue token is opaque to clients: hex of a small JSON record
//! (format version, the first page's revision, the last key returned),
//! as the API server's is base64 of the same facts. Each page reads keys
//! after the token's key, so no object appears twice and none that
//! existed through the whole list is missed.
//!
//! Deliberately different from upstream: the store keeps only the latest
//! value of each key, so a page after the first is read from the store as
//! it is then, not at the first page's revision (upstream serves every
//! page from that revision, or answers 410 Gone once it is compacted).
//! Every page reports the first page's revision, so a watch from it
//! replays whatever changed while the list was paged: an informer that
//! lists then watches ends up with the same objects either way.

use podnet_proto::model::{FieldSelector, Kind, LabelSelector, ObjectKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, Registry, decode, labels_of};

/// The continue token's format.
const TOKEN_VERSION: u32 = 1;

/// A continue token that cannot be used; the message says why.
#[derive(Debug, thiserror::Error)]
#[error("continue token is not valid: {reason}; list again without it to start over")]
pub struct InvalidContinue {
    reason: String,
}

impl InvalidContinue {
    fn new(reason: impl Into<String>) -> InvalidContinue {
        InvalidContinue {
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Token {
    v: u32,
    rv: u64,
    start: String,
}

fn encode_token(revision: u64, after: &str) -> String {
    let token = Token {
        v: TOKEN_VERSION,
        rv: revision,
        start: after.to_string(),
    };
    // Serializing a struct of a number and a string cannot fail.
    let json = serde_json::to_vec(&token).unwrap_or_default();
    json.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token's revision and key, checked to continue a list of `prefix`.
fn decode_token(token: &str, prefix: &str) -> Result<(u64, String), InvalidContinue> {
    if !token.len().is_multiple_of(2) || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidContinue::new("it is not a token this API issued"));
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect();
    let token: Token = serde_json::from_slice(&bytes)
        .map_err(|_| InvalidContinue::new("it is not a token this API issued"))?;
    if token.v != TOKEN_VERSION {
        return Err(InvalidContinue::new(format!(
            "version {} is not {TOKEN_VERSION}",
            token.v
        )));
    }
    if !token.start.starts_with(prefix) {
        return Err(InvalidContinue::new(
            "it continues a list of another kind or namespace",
        ));
    }
    Ok((token.rv, token.start))
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Value>,
    /// The revision of the list's first page.
    pub revision: u64,
    /// Empty on the last page, else what continues the list.
    pub continue_token: String,
    /// Objects after this page, when known: only for a list without
    /// selectors, as upstream's `remainingItemCount`.
    pub remaining: Option<u64>,
}

impl Registry {
    /// At most `limit` objects of `kind` (in `namespace` if non-empty)
    /// matching both selectors, after where `continue_token` left off
    /// (from the first when empty). `limit` 0 lists everything in one
    /// page. Selectors filter while reading, so a page is short only when
    /// it is the last.
    pub fn list_page(
        &self,
        kind: Kind,
        namespace: &str,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: usize,
        continue_token: &str,
    ) -> Result<ListPage, ApiError> {
        let prefix = ObjectKey::prefix(kind, namespace);
        let (mut revision, mut after) = if continue_token.is_empty() {
            (None, String::new())
        } else {
            let (rv, after) = decode_token(continue_token, &prefix)?;
            (Some(rv), after)
        };
        if limit == 0 && continue_token.is_empty() {
            let (items, revision) = self.list(kind, namespace, labels, fields)?;
            return Ok(ListPage {
                items,
                revision,
                continue_token: String::new(),
                remaining: None,
            });
        }
        // A continued list without a limit reads the rest in one page.
        let limit = if limit == 0 { usize::MAX } else { limit };
        let selective =
            *labels != LabelSelector::everything() || *fields != FieldSelector::default();
        let mut items = Vec::new();
        loop {
            let page =
                self.storage
                    .list_page(&prefix, &after, (limit - items.len()).min(READ_CHUNK))?;
            let revision = *revision.get_or_insert(page.revision);
            let mut consumed = 0;
            for entry in &page.entries {
                consumed += 1;
                after.clone_from(&entry.key);
                let v = decode(entry)?;
                if labels.matches(&labels_of(&v)) && fields.matches(&v) {
                    items.push(v);
                    if items.len() == limit {
                        break;
                    }
                }
            }
            let unread = page.remaining + (page.entries.len() - consumed) as u64;
            if unread == 0 {
                return Ok(ListPage {
                    items,
                    revision,
                    continue_token: String::new(),
                    remaining: None,
                });
            }
            if items.len() == limit {
                return Ok(ListPage {
                    items,
                    revision,
                    continue_token: encode_token(revision, &after),
                    remaining: (!selective).then_some(unread),
                });
            }
        }
    }
}

/// Entries read from the store at a time while filling a page.
const READ_CHUNK: usize = 1000;

#[cfg(test)]
mod tests;
