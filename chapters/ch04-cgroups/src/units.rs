//! Friendly units for limits: `0.5` CPUs, `64M` of memory, `32` processes.
//!
//! The kernel's files want plain integers: microseconds of CPU time per period,
//! bytes, a count. People think in "half a CPU" and "64 megabytes". This module
//! turns one into the other, and rejects what cannot be meant (`0` CPUs, `-1`,
//! `64Q`) before any cgroup exists. Sizes are binary, as Docker reads them:
//! `1K` is 1024 bytes, `1M` is 1024 K.

use anyhow::{bail, Context, Result};

/// Parses a number of CPUs: `0.2`, `1`, `1.5`. Must be a finite number above 0.
pub fn parse_cpus(text: &str) -> Result<f64> {
    let cpus: f64 = text
        .trim()
        .parse()
        .ok()
        .with_context(|| format!("{text:?} is not a number of CPUs: write e.g. 0.5 or 2"))?;
    if !cpus.is_finite() || cpus <= 0.0 {
        bail!("{text:?} CPUs: the number of CPUs must be above 0, e.g. 0.2 for 20% of one CPU");
    }
    Ok(cpus)
}

/// The multipliers of the size suffixes, binary like Docker's (`k` = 1024).
const SUFFIXES: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("m", 1 << 20),
    ("g", 1 << 30),
    ("t", 1 << 40),
];

/// Parses a size in bytes: `4096`, `512K`, `64M`, `1.5G` (also `64m`, `64MB`,
/// `64MiB`).
pub fn parse_size(text: &str) -> Result<u64> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.to_ascii_lowercase();
    // 64M, 64MB and 64MiB all mean 64 * 2^20.
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let Some(&(_, multiplier)) = SUFFIXES.iter().find(|(suffix, _)| *suffix == unit) else {
        bail!("{text:?} has an unknown unit: write a size like 64M, 512K or 1G");
    };
    let value: f64 = number
        .parse()
        .ok()
        .with_context(|| format!("{text:?} is not a size: write e.g. 64M, 512K or 1G"))?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        bail!("{text:?} is not a usable size: write e.g. 64M, 512K or 1G");
    }
    Ok(bytes.round() as u64)
}

/// Formats a size the way [`parse_size`] reads it: `67108864` -> `64M`,
/// `1536` -> `1.5K`, `1000` -> `1000`.
pub fn format_size(bytes: u64) -> String {
    for (suffix, multiplier) in SUFFIXES.iter().rev() {
        if *multiplier > 1 && bytes >= *multiplier {
            let value = bytes as f64 / *multiplier as f64;
            // Exact to a tenth of the unit, or the plain number of bytes.
            if (value * 10.0).fract() == 0.0 {
                return format!("{value}{}", suffix.to_ascii_uppercase());
            }
        }
    }
    bytes.to_string()
}

/// Parses a count of processes for `pids.max`: a whole number, at least 1.
pub fn parse_count(text: &str) -> Result<u64> {
    let count: u64 = text.trim().parse().ok().with_context(|| {
        format!("{text:?} is not a number of processes: write a whole number such as 32")
    })?;
    if count == 0 {
        bail!("0 processes: the container needs at least 1 (its first process)");
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_positive_numbers() {
        assert_eq!(parse_cpus("0.2").ok(), Some(0.2));
        assert_eq!(parse_cpus("2").ok(), Some(2.0));
        assert_eq!(parse_cpus(" 1.5 ").ok(), Some(1.5));
        for bad in ["0", "0.0", "-1", "", "abc", "NaN", "inf", "20%"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("512K").ok(), Some(512 * 1024));
        assert_eq!(parse_size("64M").ok(), Some(64 << 20));
        assert_eq!(parse_size("64m").ok(), Some(64 << 20));
        assert_eq!(parse_size("64MB").ok(), Some(64 << 20));
        assert_eq!(parse_size("64MiB").ok(), Some(64 << 20));
        assert_eq!(parse_size("1G").ok(), Some(1 << 30));
        assert_eq!(parse_size("1.5G").ok(), Some(3 << 29));
        assert_eq!(parse_size("10b").ok(), Some(10));
        for bad in [
            "",
            "M",
            "64Q",
            "64 M",
            "-1M",
            "0",
            "0M",
            "1.2.3M",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn sizes_format_back() {
        assert_eq!(format_size(64 << 20), "64M");
        assert_eq!(format_size(1 << 30), "1G");
        assert_eq!(format_size(1536), "1.5K");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(4097), "4097");
        for text in ["32M", "8M", "1.5G", "4K", "1000"] {
            assert_eq!(format_size(parse_size(text).unwrap_or(0)), text);
        }
    }

    #[test]
    fn counts_are_whole_and_positive() {
        assert_eq!(parse_count("32").ok(), Some(32));
        for bad in ["0", "-1", "1.5", "", "many"] {
            assert!(parse_count(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
