//! `--log FILE --log-format text|json`: where a runtime's errors go when nobody
//! reads its stderr.
//!
//! Under containerd the runtime is started by the shim, which reads the log
//! file afterwards (`log.json` in the bundle) and shows the last `"error"` line
//! to the user. So every error is written there too, one JSON object per line:
//! `{"level":"error","msg":"...","time":"..."}`, the shape runc's logrus
//! produces. Without `--log` errors only go to stderr.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// The two formats runc accepts for `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

static LOG: Mutex<Option<(File, Format)>> = Mutex::new(None);

/// Opens `--log FILE` for appending (engines reuse one file for many calls).
pub fn init(path: Option<&Path>, format: Format) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open log file {}", path.display()))?;
    if let Ok(mut log) = LOG.lock() {
        *log = Some((file, format));
    }
    Ok(())
}

/// Writes one line at `level` to the log file, if there is one.
pub fn write(level: &str, msg: &str) {
    let Ok(mut log) = LOG.lock() else { return };
    let Some((file, format)) = log.as_mut() else {
        return;
    };
    let time = rfc3339(SystemTime::now());
    let line = match format {
        Format::Json => serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string(),
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}"),
    };
    let _ = writeln!(file, "{line}");
}

/// A warning: to stderr and to the log.
pub fn warn(msg: &str) {
    eprintln!("{}: warning: {msg}", ch01_uts::cli::program_name());
    write("warning", msg);
}

/// `2024-05-01T12:00:00.123456789Z`: the time format of the OCI state's
/// `created` field and of runc's logs, computed without a date crate.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a (year, month, day) date, Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        let t = UNIX_EPOCH + Duration::new(1_714_564_800, 5);
        assert_eq!(rfc3339(t), "2024-05-01T12:00:00.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }
}
