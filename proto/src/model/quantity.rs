//! Kubernetes resource quantities, for the scheduler's capacity checks.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid quantity {0:?}: expected a number with an optional suffix (m, k, Ki, M, Mi, G, Gi, ...)"
)]
pub struct InvalidQuantity(pub String);

/// Splits "1500m" into (1500.0, "m").
fn split(q: &str) -> Result<(f64, &str), InvalidQuantity> {
    let q = q.trim();
    let idx = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(idx);
    let n: f64 = num.parse().map_err(|_| InvalidQuantity(q.to_string()))?;
    if !n.is_finite() || n < 0.0 {
        return Err(InvalidQuantity(q.to_string()));
    }
    Ok((n, suffix))
}

fn multiplier(suffix: &str) -> Option<f64> {
    Some(match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

/// CPU in millicores: "2" is 2000, "250m" is 250.
pub fn parse_cpu_millis(q: &str) -> Result<u64, InvalidQuantity> {
    let (n, suffix) = split(q)?;
    let m = multiplier(suffix).ok_or_else(|| InvalidQuantity(q.to_string()))?;
    Ok((n * m * 1000.0).ceil() as u64)
}

/// Memory in bytes: "64Mi", "1G", "1000".
pub fn parse_memory_bytes(q: &str) -> Result<u64, InvalidQuantity> {
    let (n, suffix) = split(q)?;
    let m = multiplier(suffix).ok_or_else(|| InvalidQuantity(q.to_string()))?;
    Ok((n * m).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu_millis("2").unwrap(), 2000);
        assert_eq!(parse_cpu_millis("250m").unwrap(), 250);
        assert_eq!(parse_cpu_millis("0.5").unwrap(), 500);
        assert_eq!(parse_memory_bytes("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_memory_bytes("1G").unwrap(), 1_000_000_000);
        assert!(parse_memory_bytes("12Qi").is_err());
        assert!(parse_cpu_millis("-1").is_err());
        assert!(parse_cpu_millis("").is_err());
    }
}
