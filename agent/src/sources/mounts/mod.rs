//! NFS mounts from the host's mountinfo (`<proc>/1/mountinfo` under the host root): mount point and server.

use crate::config::Config;
use crate::model::mounts::{MountState, NfsMount};

#[derive(Debug, thiserror::Error)]
#[error("reading {path}")]
pub struct MountsError {
    path: std::path::PathBuf,
    source: std::io::Error,
}

pub fn fetch(config: &Config) -> Result<MountState, MountsError> {
    let path = config.host_path(&config.mountinfo);
    let text = std::fs::read_to_string(&path).map_err(|source| MountsError { path, source })?;
    Ok(MountState { service_cidrs: config.service_cidrs.clone(), ..parse(&text) })
}

/// Parses mountinfo lines: `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`.
pub fn parse(text: &str) -> MountState {
    let mut nfs = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let mount_point = left.split(' ').nth(4).unwrap_or("").replace("\\040", " ");
        let mut r = right.split(' ');
        let (fstype, source, opts) = (r.next().unwrap_or(""), r.next().unwrap_or(""), r.next().unwrap_or(""));
        if !fstype.starts_with("nfs") {
            continue;
        }
        let from_opts = opts.split(',').find_map(|o| o.strip_prefix("addr="));
        let from_source = source.rsplit_once(":/").map(|(s, _)| s.trim_start_matches('[').trim_end_matches(']'));
        let server = from_opts.or(from_source).unwrap_or("").to_string();
        nfs.push(NfsMount { mount_point, fstype: fstype.to_string(), server });
    }
    MountState { nfs, service_cidrs: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_names_the_file_and_the_cause_once() {
        let e =
            MountsError { path: "/proc/1/mountinfo".into(), source: std::io::Error::from_raw_os_error(libc::EACCES) };
        assert_eq!(crate::model::strict_chain(&e), "reading /proc/1/mountinfo: Permission denied (os error 13)");
    }

    #[test]
    fn finds_nfs_servers_from_addr_or_source() {
        let text = "36 35 98:0 /mnt1 /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
512 30 0:55 / /var/lib/kubelet/pods/x/volumes/kubernetes.io~nfs/data rw,relatime shared:300 - nfs4 10.96.0.20:/export rw,vers=4.2,addr=10.96.0.20,clientaddr=10.0.0.5\n\
513 30 0:56 / /mnt/old rw - nfs [fd00::20]:/data rw,vers=3\n";
        let m = parse(text);
        assert_eq!(
            m.nfs,
            vec![
                NfsMount {
                    mount_point: "/var/lib/kubelet/pods/x/volumes/kubernetes.io~nfs/data".into(),
                    fstype: "nfs4".into(),
                    server: "10.96.0.20".into()
                },
                NfsMount { mount_point: "/mnt/old".into(), fstype: "nfs".into(), server: "fd00::20".into() },
            ]
        );
    }
}
