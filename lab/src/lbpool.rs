//! Each cluster on this machine owns its LoadBalancer pool: the edge binds
//! real listeners on the pool's loopback addresses, so two clusters sharing
//! a pool would answer on each other's addresses. A cluster claims every
//! /24 block its pool touches with an exclusive `flock` on a file per block
//! in a machine-wide directory; the supervisor holds the locks for the
//! cluster's life and the kernel drops them when it exits, however it
//! exits, so a killed cluster never leaves a pool claimed.
//!
//! Without `--lb-pool` a cluster takes the first free block from
//! 127.0.1.0/24 upwards; an asked pool that another cluster holds is an
//! error naming that cluster's state directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;

/// The largest pool one cluster may claim (256 blocks).
const WIDEST_PREFIX: u8 = 16;

/// How many /24 blocks after 127.0.1.0/24 an automatic claim tries.
const AUTO_BLOCKS: u32 = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PoolClaimError {
    #[error(
        "LoadBalancer pool {pool} is in use by the cluster in {holder}; \
         leave out --lb-pool to get a free pool, or choose another"
    )]
    Taken { pool: Ipv4Net, holder: String },
    #[error("LoadBalancer pool {0} is wider than /{WIDEST_PREFIX}")]
    TooWide(Ipv4Net),
    #[error("no free LoadBalancer pool left between 127.0.1.0/24 and {last}")]
    Exhausted { last: Ipv4Net },
    #[error("cannot claim LoadBalancer pool {pool} in {}", dir.display())]
    Io {
        pool: Ipv4Net,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A pool this process holds; dropping it (or exiting) frees the pool.
#[derive(Debug)]
pub struct PoolClaim {
    pool: Ipv4Net,
    _locks: Vec<File>,
}

impl PoolClaim {
    pub fn pool(&self) -> Ipv4Net {
        self.pool
    }
}

/// The machine-wide directory of claims.
pub fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("podnet-lb-pools")
}

/// Claims `asked`, or the first free /24 when `None`, for the cluster
/// whose state directory is `holder`.
pub fn claim(
    dir: &Path,
    asked: Option<Ipv4Net>,
    holder: &Path,
) -> Result<PoolClaim, PoolClaimError> {
    let holder = std::path::absolute(holder).unwrap_or_else(|_| holder.to_path_buf());
    let holder = format!("{} (pid {})", holder.display(), std::process::id());
    if let Some(pool) = asked {
        return claim_pool(dir, pool, &holder);
    }
    let mut last = auto_block(0);
    for i in 0..AUTO_BLOCKS {
        let pool = auto_block(i);
        last = pool;
        match claim_pool(dir, pool, &holder) {
            Ok(claim) => return Ok(claim),
            Err(PoolClaimError::Taken { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(PoolClaimError::Exhausted { last })
}

/// The `i`th /24 an automatic claim tries: 127.0.1.0/24, 127.0.2.0/24, ...
fn auto_block(i: u32) -> Ipv4Net {
    let base = u32::from(Ipv4Addr::new(127, 0, 1, 0));
    Ipv4Net::new(Ipv4Addr::from(base + (i << 8)), 24).expect("24 is a valid prefix")
}

/// The /24 blocks `pool` touches, lowest first.
fn blocks(pool: Ipv4Net) -> Result<Vec<Ipv4Net>, PoolClaimError> {
    if pool.prefix_len() < WIDEST_PREFIX {
        return Err(PoolClaimError::TooWide(pool));
    }
    if pool.prefix_len() >= 24 {
        let block = Ipv4Net::new(pool.network(), 24)
            .expect("24 is a valid prefix")
            .trunc();
        return Ok(vec![block]);
    }
    Ok(pool.subnets(24).expect("prefix is below 24").collect())
}

fn claim_pool(dir: &Path, pool: Ipv4Net, holder: &str) -> Result<PoolClaim, PoolClaimError> {
    let io = |source| PoolClaimError::Io {
        pool,
        dir: dir.to_path_buf(),
        source,
    };
    ensure_dir(dir).map_err(io)?;
    let mut locks = Vec::new();
    for block in blocks(pool)? {
        let path = dir.join(format!("{}-{}", block.network(), block.prefix_len()));
        let mut file = open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut held_by = String::new();
                let _ = file.read_to_string(&mut held_by);
                let held_by = held_by.trim();
                return Err(PoolClaimError::Taken {
                    pool,
                    holder: if held_by.is_empty() {
                        "another process".to_string()
                    } else {
                        held_by.to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the next cluster's error message; a file
        // another user created may be read-only to us, which only costs
        // that message.
        if file.set_len(0).is_ok() {
            let _ = file.write_all(holder.as_bytes());
        }
        locks.push(file);
    }
    Ok(PoolClaim {
        pool,
        _locks: locks,
    })
}

/// The claims directory, writable by every user of the machine (sticky, as
/// /tmp is), so clusters of different users see each other's claims.
fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
    Ok(())
}

fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => File::open(path),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn a_pool_claims_every_block_it_touches() {
        let check = |pool: &str, expected: &[&str]| {
            let got: Vec<String> = blocks(net(pool))
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, expected, "{pool}");
        };
        check("127.0.1.0/24", &["127.0.1.0/24"]);
        check("127.0.1.16/28", &["127.0.1.0/24"]);
        check("127.0.4.0/23", &["127.0.4.0/24", "127.0.5.0/24"]);
        assert_eq!(blocks(net("127.0.0.0/16")).unwrap().len(), 256);
        assert!(matches!(
            blocks(net("127.0.0.0/8")),
            Err(PoolClaimError::TooWide(_))
        ));
    }

    #[test]
    fn clusters_get_their_own_pools_and_an_asked_pool_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), None, Path::new("/tmp/a")).unwrap();
        assert_eq!(first.pool(), net("127.0.1.0/24"));
        let second = claim(dir.path(), None, Path::new("/tmp/b")).unwrap();
        assert_eq!(second.pool(), net("127.0.2.0/24"));

        // An overlapping pool is refused, naming the cluster that holds it.
        let err = claim(dir.path(), Some(net("127.0.0.0/22")), Path::new("/tmp/c")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("127.0.0.0/22 is in use by the cluster in /tmp/a"),
            "{text}"
        );

        // A pool is free again once its holder is gone.
        drop(first);
        let again = claim(dir.path(), Some(net("127.0.1.0/24")), Path::new("/tmp/d")).unwrap();
        assert_eq!(again.pool(), net("127.0.1.0/24"));
        let third = claim(dir.path(), None, Path::new("/tmp/e")).unwrap();
        assert_eq!(third.pool(), net("127.0.3.0/24"));
    }
}
