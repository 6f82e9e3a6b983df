//! The init layer: the files a runtime writes for one container.
//!
//! Some files of a container's root belong to the container, not to its image:
//! its hostname, the names it can resolve, where to send DNS queries. Docker
//! writes them into a layer of their own, the "-init" layer, between the
//! image's layers and the container's read-write layer; Kubernetes manages
//! `/etc/hosts` the same way and adds a Pod's `hostAliases` to it. Because the
//! runtime regenerates these files on every start, hand edits inside the
//! container do not last, and `commit` leaves them out of the new image: an
//! image must not carry one container's hostname or name servers.
//!
//! What it leaves out: Docker also puts empty placeholders for mount points
//! (`/proc`, `/sys`, `/dev/console`...) in its init layer, and bind-mounts the
//! three files from a per-container directory, so edits reach a file the
//! runtime owns; here they are copied up into the container's read-write layer.

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use ch01_uts::say;

/// The files of the init layer, relative to the container's root.
pub const FILES: &[&str] = &["etc/hosts", "etc/hostname", "etc/resolv.conf"];

/// The init layer's files as a set of relative paths (what `commit` skips).
pub fn files() -> std::collections::BTreeSet<PathBuf> {
    FILES.iter().map(PathBuf::from).collect()
}

/// One `--add-host NAME:IP` entry of `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostEntry {
    pub name: String,
    pub ip: IpAddr,
}

impl FromStr for HostEntry {
    type Err = anyhow::Error;

    /// `db:10.0.0.5` or `db:fd00::5` (everything after the first `:` is the
    /// address, as with `docker run --add-host`).
    fn from_str(text: &str) -> Result<Self> {
        let Some((name, ip)) = text.split_once(':') else {
            bail!("--add-host {text:?} must look like NAME:IP, e.g. db:10.0.0.5");
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if name.is_empty() || !name.chars().all(valid) {
            bail!("--add-host {text:?}: {name:?} is not a host name (letters, digits, '-', '.')");
        }
        let ip = ip
            .parse()
            .with_context(|| format!("--add-host {text:?}: {ip:?} is not an IP address"))?;
        Ok(HostEntry {
            name: name.to_string(),
            ip,
        })
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.ip)
    }
}

// ANCHOR: hosts
/// The container's `/etc/hosts`: loopback names, its own hostname, then the
/// `--add-host` entries in the order given.
pub fn hosts(hostname: &str, extra: &[HostEntry]) -> String {
    let mut text = String::from("127.0.0.1\tlocalhost\n");
    text.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    text.push_str(&format!("127.0.1.1\t{hostname}\n"));
    for entry in extra {
        text.push_str(&format!("{}\t{}\n", entry.ip, entry.name));
    }
    text
}
// ANCHOR_END: hosts

// ANCHOR: write
/// Writes the init layer into the empty directory `dir`. `resolv` is the
/// host's `resolv.conf`: the container shares the host's network until
/// chapter 6, so it can use the host's name servers.
pub fn write(dir: &Path, hostname: &str, extra: &[HostEntry], resolv: &Path) -> Result<()> {
    let etc = dir.join("etc");
    fs::create_dir_all(&etc).with_context(|| format!("failed to create {}", etc.display()))?;
    // The top layer's directory hides the image's own /etc metadata: keep it usual.
    fs::set_permissions(&etc, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("failed to set the mode of {}", etc.display()))?;
    let resolv_conf = match fs::read(resolv) {
        Ok(bytes) => bytes,
        Err(_) => b"# the host has no resolv.conf: no name servers\n".to_vec(),
    };
    let files: [(&str, Vec<u8>); 3] = [
        ("hosts", hosts(hostname, extra).into_bytes()),
        ("hostname", format!("{hostname}\n").into_bytes()),
        ("resolv.conf", resolv_conf),
    ];
    for (name, bytes) in files {
        let path = etc.join(name);
        say!("write {}", path.display());
        fs::write(&path, bytes).with_context(|| format!("failed to write {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .with_context(|| format!("failed to set the mode of {}", path.display()))?;
    }
    Ok(())
}
// ANCHOR_END: write

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_host_entries_parse_like_docker() -> Result<()> {
        let entry: HostEntry = "db:10.0.0.5".parse()?;
        assert_eq!(entry.name, "db");
        assert_eq!(entry.ip.to_string(), "10.0.0.5");
        let v6: HostEntry = "db6:fd00::5".parse()?;
        assert_eq!(v6.ip.to_string(), "fd00::5");
        assert_eq!(v6.to_string(), "db6:fd00::5");
        for bad in ["db", "db:", ":10.0.0.5", "db:nope", "d b:10.0.0.5"] {
            assert!(bad.parse::<HostEntry>().is_err(), "{bad} was accepted");
        }
        Ok(())
    }

    #[test]
    fn hosts_lists_the_extra_entries_last() -> Result<()> {
        let text = hosts("box", &["db:10.0.0.5".parse()?]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"10.0.0.5\tdb"));
        assert!(lines.contains(&"127.0.1.1\tbox"));
        Ok(())
    }

    #[test]
    fn writes_the_three_files() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let resolv = tmp.path().join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.53\n")?;
        let init = tmp.path().join("init");
        write(&init, "box", &[], &resolv)?;
        for file in FILES {
            assert!(init.join(file).is_file(), "{file} missing");
        }
        assert_eq!(fs::read_to_string(init.join("etc/hostname"))?, "box\n");
        assert_eq!(
            fs::read_to_string(init.join("etc/resolv.conf"))?,
            "nameserver 192.0.2.53\n"
        );
        Ok(())
    }
}
