//! What /proc says about processes and their sockets.

use std::collections::HashMap;

/// The inode of the socket behind `fd` of `pid`, from the
/// `/proc/PID/fd/FD -> socket:[INODE]` link.
pub fn socket_inode(pid: u32, fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    parse_socket_link(link.to_str()?)
}

fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The network namespace of `pid`: the inode in its
/// `/proc/PID/ns/net -> net:[INODE]` link (`self` for sniff's own).
pub fn netns(pid: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process's name as the kernel keeps it (`/proc/PID/comm`).
pub fn comm(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(s.trim_end_matches('\n').to_string())
}

/// Every process on the host.
pub fn pids() -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Which of `pids` holds socket `inode` (and its name): reads only their
/// fd tables.
pub fn socket_owner_among(
    pids: impl IntoIterator<Item = u32>,
    inode: u64,
) -> Option<(u32, String)> {
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let found = std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().and_then(parse_socket_link));
            if found == Some(inode) {
                return Some((pid, comm(pid).unwrap_or_default()));
            }
        }
    }
    None
}

/// Which process holds each socket inode on the host. Walks every
/// `/proc/PID/fd`: call it rarely and cache the result.
pub fn socket_owners() -> HashMap<u64, (u32, String)> {
    let mut out = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut name = None;
        for fd in fds.flatten() {
            let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|l| l.to_str().and_then(parse_socket_link))
            else {
                continue;
            };
            let name = name.get_or_insert_with(|| comm(pid).unwrap_or_default());
            out.entry(inode).or_insert_with(|| (pid, name.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn parses_socket_links() {
        assert_eq!(parse_socket_link("socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link("pipe:[12345]"), None);
        assert_eq!(parse_socket_link("/tmp/x"), None);
    }

    #[test]
    fn finds_our_own_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id();
        let inode = socket_inode(me, l.as_raw_fd()).expect("a socket inode");
        let owners = socket_owners();
        assert_eq!(owners.get(&inode).map(|o| o.0), Some(me));
        assert!(comm(me).is_some());
        assert!(pids().contains(&me));
        assert_eq!(
            socket_owner_among([1, me], inode),
            Some((me, comm(me).unwrap()))
        );
        assert_eq!(socket_owner_among([1], inode), None);
    }
}
