//! Files other processes read while they change (the cluster record, the
//! failure record, pid files): written whole or not at all.

use std::path::Path;

use anyhow::Context;

/// Writes `text` to `path` through a temporary file and a rename, so a
/// reader never sees half a record.
pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
