//! Kernel capture, for real: this test process talks to itself over
//! loopback with every syscall family while `sniff --raw --json --pid <us>`
//! watches, and the bytes rebuilt from sniff's events must equal the bytes
//! sent, exactly.

mod common;

use std::{
    collections::{HashMap, HashSet},
    io::Write as _,
    net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream},
    os::fd::{AsRawFd, RawFd},
    thread,
    time::Duration,
};

use common::{Sniff, can_load_ebpf, conn_id, pattern, reassemble, serial};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    ReadWrite,
    Vectored,
    SendtoRecvfrom,
    Msg,
    Mmsg,
}

impl Family {
    fn syscalls(self) -> [&'static str; 2] {
        match self {
            Family::ReadWrite => ["write", "read"],
            Family::Vectored => ["writev", "readv"],
            Family::SendtoRecvfrom => ["sendto", "recvfrom"],
            Family::Msg => ["sendmsg", "recvmsg"],
            Family::Mmsg => ["sendmmsg", "recvmmsg"],
        }
    }
}

const SIZES: [usize; 4] = [1, 4096, 100 * 1024, 1024 * 1024];

fn check(rc: isize, what: &str) -> usize {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
    rc as usize
}

fn iov(buf: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    }
}

fn iov_mut(buf: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    }
}

fn msghdr(iovs: &mut [libc::iovec]) -> libc::msghdr {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = iovs.as_mut_ptr();
    m.msg_iovlen = iovs.len();
    m
}

/// Sends all of `buf` with the family's send syscall (splitting it across
/// several iovecs or messages where the family has them).
fn send_all(fd: RawFd, family: Family, mut buf: &[u8]) {
    while !buf.is_empty() {
        let third = buf.len() / 3;
        let half = buf.len() / 2;
        // SAFETY: every pointer below refers to live buffers of the given
        // lengths for the duration of the call.
        let n = unsafe {
            match family {
                Family::ReadWrite => {
                    check(libc::write(fd, buf.as_ptr().cast(), buf.len()), "write")
                }
                Family::Vectored => {
                    let v = [
                        iov(&buf[..third]),
                        iov(&buf[third..2 * third]),
                        iov(&buf[2 * third..]),
                    ];
                    check(libc::writev(fd, v.as_ptr(), 3), "writev")
                }
                Family::SendtoRecvfrom => check(
                    libc::sendto(fd, buf.as_ptr().cast(), buf.len(), 0, std::ptr::null(), 0),
                    "sendto",
                ),
                Family::Msg => {
                    let mut v = [iov(&buf[..half]), iov(&buf[half..])];
                    let m = msghdr(&mut v);
                    check(libc::sendmsg(fd, &m, 0), "sendmsg")
                }
                Family::Mmsg => {
                    let mut a = [iov(&buf[..half])];
                    let mut b = [iov(&buf[half..])];
                    let mut msgs = [
                        libc::mmsghdr {
                            msg_hdr: msghdr(&mut a),
                            msg_len: 0,
                        },
                        libc::mmsghdr {
                            msg_hdr: msghdr(&mut b),
                            msg_len: 0,
                        },
                    ];
                    let count = if half == 0 { 1 } else { 2 };
                    let start = if half == 0 { 1 } else { 0 };
                    let sent = check(
                        libc::sendmmsg(fd, msgs[start..].as_mut_ptr(), count, 0) as isize,
                        "sendmmsg",
                    );
                    msgs[start..start + sent]
                        .iter()
                        .map(|m| m.msg_len as usize)
                        .sum()
                }
            }
        };
        buf = &buf[n..];
    }
}

/// Receives exactly `len` bytes with the family's receive syscall.
fn recv_exact(fd: RawFd, family: Family, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let rest = &mut out[got..];
        let half = rest.len() / 2;
        // SAFETY: as in send_all.
        let n = unsafe {
            match family {
                Family::ReadWrite => {
                    check(libc::read(fd, rest.as_mut_ptr().cast(), rest.len()), "read")
                }
                Family::Vectored => {
                    let (a, b) = rest.split_at_mut(half);
                    let v = [iov_mut(a), iov_mut(b)];
                    check(libc::readv(fd, v.as_ptr(), 2), "readv")
                }
                Family::SendtoRecvfrom => check(
                    libc::recvfrom(
                        fd,
                        rest.as_mut_ptr().cast(),
                        rest.len(),
                        0,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    ),
                    "recvfrom",
                ),
                Family::Msg => {
                    let (a, b) = rest.split_at_mut(half);
                    let mut v = [iov_mut(a), iov_mut(b)];
                    let mut m = msghdr(&mut v);
                    check(libc::recvmsg(fd, &mut m, 0), "recvmsg")
                }
                Family::Mmsg => {
                    let (a, b) = rest.split_at_mut(half);
                    let mut va = [iov_mut(a)];
                    let mut vb = [iov_mut(b)];
                    let mut msgs = [
                        libc::mmsghdr {
                            msg_hdr: msghdr(&mut va),
                            msg_len: 0,
                        },
                        libc::mmsghdr {
                            msg_hdr: msghdr(&mut vb),
                            msg_len: 0,
                        },
                    ];
                    let (start, count) = if half == 0 { (1, 1) } else { (0, 2) };
                    let got = check(
                        libc::recvmmsg(
                            fd,
                            msgs[start..].as_mut_ptr(),
                            count,
                            libc::MSG_WAITFORONE,
                            std::ptr::null_mut(),
                        ) as isize,
                        "recvmmsg",
                    );
                    let first = msgs[start].msg_len as usize;
                    if got == 2 && first < half {
                        // Message 1 came back short: move message 2's bytes
                        // up so the stream stays contiguous.
                        let second = msgs[1].msg_len as usize;
                        rest.copy_within(half..half + second, first);
                    }
                    msgs[start..start + got]
                        .iter()
                        .map(|m| m.msg_len as usize)
                        .sum()
                }
            }
        };
        assert!(n > 0, "peer closed early");
        got += n;
    }
    out
}

fn tcp_pair(addr: &str) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(addr).expect("bind");
    let client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

struct Conn {
    family: Family,
    client: TcpStream,
    server: TcpStream,
    sent: Vec<u8>,
}

/// Client sends every size, server receives; then the reverse.
fn exercise(family: Family, seed: u64) -> Conn {
    let (client, server) = tcp_pair("127.0.0.1:0");
    let messages: Vec<Vec<u8>> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(seed * 10 + i as u64, n))
        .collect();
    let (cfd, sfd) = (client.as_raw_fd(), server.as_raw_fd());
    let out = messages.clone();
    let sender = thread::spawn(move || {
        for m in &out {
            send_all(cfd, family, m);
        }
    });
    for m in &messages {
        assert!(
            recv_exact(sfd, family, m.len()) == *m,
            "{family:?}: server got other bytes"
        );
    }
    sender.join().unwrap();
    let back = messages.clone();
    let sender = thread::spawn(move || {
        for m in &back {
            send_all(sfd, family, m);
        }
    });
    for m in &messages {
        assert!(
            recv_exact(cfd, family, m.len()) == *m,
            "{family:?}: client got other bytes"
        );
    }
    sender.join().unwrap();
    Conn {
        family,
        client,
        server,
        sent: messages.concat(),
    }
}

fn data_of<'a>(events: &'a [Value], pid: u64, fd: i64, direction: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["type"] == "data" && e["pid"] == pid && e["fd"] == fd && e["direction"] == direction
        })
        .collect()
}

#[test]
fn every_syscall_family_round_trips_exactly() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let me = std::process::id().to_string();
    let sniff = Sniff::start(&[
        "--raw",
        "--json",
        "--pid",
        &me,
        "--max-bytes-per-syscall",
        "2M",
        "--ring-size",
        "128M",
    ]);
    let families = [
        Family::ReadWrite,
        Family::Vectored,
        Family::SendtoRecvfrom,
        Family::Msg,
        Family::Mmsg,
    ];
    let conns: Vec<Conn> = families
        .iter()
        .enumerate()
        .map(|(i, &f)| exercise(f, i as u64 + 1))
        .collect();
    let fds: Vec<(Family, i64, i64, Vec<u8>)> = conns
        .iter()
        .map(|c| {
            (
                c.family,
                c.client.as_raw_fd() as i64,
                c.server.as_raw_fd() as i64,
                c.sent.clone(),
            )
        })
        .collect();
    drop(conns);
    thread::sleep(Duration::from_millis(300));
    let out = sniff.stop();
    assert!(out.status.success(), "sniff failed: {}", out.stderr);
    let events = out.json();
    let pid = std::process::id() as u64;

    for (family, cfd, sfd, sent) in &fds {
        let [send_sys, recv_sys] = family.syscalls();
        for (fd, dir) in [
            (cfd, "egress"),
            (sfd, "ingress"),
            (sfd, "egress"),
            (cfd, "ingress"),
        ] {
            let evs = data_of(&events, pid, *fd, dir);
            assert!(!evs.is_empty(), "{family:?}: no {dir} events on fd {fd}");
            let ids: HashSet<_> = evs.iter().map(|e| conn_id(e)).collect();
            assert_eq!(ids.len(), 1, "{family:?}: one generation per connection");
            let want_sys = if dir == "egress" { send_sys } else { recv_sys };
            for e in &evs {
                assert_eq!(e["syscall"], want_sys, "{family:?} {dir}: {e}");
            }
            let bytes = reassemble(&evs);
            assert_eq!(bytes.len(), sent.len(), "{family:?} fd {fd} {dir}: length");
            assert!(bytes == *sent, "{family:?} fd {fd} {dir}: bytes differ");
        }
        // connect/accept told us who is who, with addresses.
        let conn_events: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "conn" && e["pid"] == pid)
            .collect();
        let client = conn_events
            .iter()
            .find(|e| e["fd"] == *cfd)
            .expect("client conn event");
        let server = conn_events
            .iter()
            .find(|e| e["fd"] == *sfd)
            .expect("server conn event");
        assert_eq!(client["role"], "client");
        assert_eq!(client["syscall"], "connect");
        assert_eq!(server["role"], "server");
        assert_eq!(server["local"], client["remote"]);
        assert_eq!(server["remote"], client["local"]);
        assert_eq!(client["family"], "tcp");
        // Close events carry the totals.
        for fd in [cfd, sfd] {
            let close = events
                .iter()
                .find(|e| e["type"] == "close" && e["pid"] == pid && e["fd"] == *fd)
                .unwrap_or_else(|| panic!("{family:?}: no close event for fd {fd}"));
            assert_eq!(close["egress_bytes"], sent.len() as u64);
            assert_eq!(close["ingress_bytes"], sent.len() as u64);
        }
    }
    let stats = out.stats();
    assert_eq!(stats["ringbuf_drops"], 0, "{stats}");
    assert_eq!(stats["truncated_syscalls"], 0, "{stats}");
    assert_eq!(stats["read_failures"], 0, "{stats}");
}

#[test]
fn truncation_at_the_cap_is_flagged_and_counted() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let me = std::process::id().to_string();
    let sniff = Sniff::start(&[
        "--raw",
        "--json",
        "--pid",
        &me,
        "--max-bytes-per-syscall",
        "4K",
    ]);
    let (client, server) = tcp_pair("127.0.0.1:0");
    let big = pattern(42, 100 * 1024);
    let fd = client.as_raw_fd();
    let expected = big.clone();
    let reader =
        thread::spawn(move || recv_exact(server.as_raw_fd(), Family::ReadWrite, expected.len()));
    // One write(2) of 100 KiB on a blocking socket moves it all at once.
    // SAFETY: valid buffer.
    let n = unsafe { libc::write(fd, big.as_ptr().cast(), big.len()) };
    assert_eq!(n as usize, big.len());
    assert!(reader.join().unwrap() == big);
    thread::sleep(Duration::from_millis(200));
    let out = sniff.stop();
    let events = out.json();
    let pid = std::process::id() as u64;
    let evs = data_of(&events, pid, fd as i64, "egress");
    assert_eq!(evs.len(), 1, "one event for the one write");
    let e = evs[0];
    assert_eq!(e["syscall_len"], 100 * 1024);
    assert_eq!(e["len"], 4096);
    assert_eq!(e["truncated"], true);
    assert_eq!(e["missing_after"], 100 * 1024 - 4096);
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        e["payload_b64"].as_str().unwrap(),
    )
    .unwrap();
    assert!(payload == big[..4096], "the first 4 KiB, exactly");
    let stats = out.stats();
    assert!(
        stats["truncated_syscalls"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(
        stats["truncated_bytes"].as_u64().unwrap() >= 100 * 1024 - 4096,
        "{stats}"
    );
    assert!(
        out.stderr.contains("truncated"),
        "stderr reports it: {}",
        out.stderr
    );
}

#[test]
fn files_and_pipes_are_not_captured() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let me = std::process::id().to_string();
    let sniff = Sniff::start(&["--raw", "--json", "--pid", &me]);
    let dir = std::env::temp_dir().join(format!("sniff-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.bin");
    // A large file written and read back in this process, while a socket
    // carries a small message.
    let writer = {
        let path = path.clone();
        thread::spawn(move || {
            let mut f = std::fs::File::create(&path).unwrap();
            let block = pattern(7, 1 << 20);
            for _ in 0..64 {
                f.write_all(&block).unwrap();
            }
            f.sync_all().unwrap();
            let data = std::fs::read(&path).unwrap();
            assert_eq!(data.len(), 64 << 20);
        })
    };
    let (mut pr, mut pw) = std::io::pipe().unwrap();
    pw.write_all(b"through a pipe").unwrap();
    let mut got = [0u8; 14];
    std::io::Read::read_exact(&mut pr, &mut got).unwrap();
    let (client, server) = tcp_pair("127.0.0.1:0");
    send_all(client.as_raw_fd(), Family::ReadWrite, b"over a socket");
    assert_eq!(
        recv_exact(server.as_raw_fd(), Family::ReadWrite, 13),
        b"over a socket"
    );
    writer.join().unwrap();
    thread::sleep(Duration::from_millis(200));
    let out = sniff.stop();
    std::fs::remove_dir_all(&dir).ok();
    let events = out.json();
    let pid = std::process::id() as u64;
    let socket_fds: HashSet<i64> = [client.as_raw_fd() as i64, server.as_raw_fd() as i64].into();
    let data: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "data" && e["pid"] == pid)
        .collect();
    assert!(!data.is_empty());
    for e in &data {
        let fd = e["fd"].as_i64().unwrap();
        assert!(socket_fds.contains(&fd), "non-socket fd {fd} captured: {e}");
    }
    let total: u64 = data.iter().map(|e| e["len"].as_u64().unwrap()).sum();
    assert_eq!(total, 26, "just the socket message, both ends");
}

#[test]
fn a_reused_fd_gets_a_new_generation() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let me = std::process::id().to_string();
    let sniff = Sniff::start(&["--raw", "--json", "--pid", &me]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fds = Vec::new();
    for msg in [&b"first"[..], &b"second"[..]] {
        let client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        send_all(client.as_raw_fd(), Family::ReadWrite, msg);
        assert_eq!(
            recv_exact(server.as_raw_fd(), Family::ReadWrite, msg.len()),
            msg
        );
        fds.push(client.as_raw_fd());
        // Both closed here, so the next connect reuses the client fd.
    }
    assert_eq!(fds[0], fds[1], "the kernel hands out the lowest free fd");
    thread::sleep(Duration::from_millis(200));
    let out = sniff.stop();
    let events = out.json();
    let pid = std::process::id() as u64;
    let evs = data_of(&events, pid, fds[0] as i64, "egress");
    let mut by_generation: HashMap<u64, Vec<u8>> = HashMap::new();
    for e in &evs {
        by_generation
            .entry(e["generation"].as_u64().unwrap())
            .or_default()
            .extend(reassemble(&[e]));
    }
    let mut payloads: Vec<Vec<u8>> = by_generation.into_values().collect();
    payloads.sort();
    assert_eq!(payloads, vec![b"first".to_vec(), b"second".to_vec()]);
}

#[test]
fn ipv6_and_v4_mapped_addresses() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let me = std::process::id().to_string();
    let sniff = Sniff::start(&["--raw", "--json", "--pid", &me]);
    // Plain IPv6 on ::1.
    let (c6, s6) = tcp_pair("[::1]:0");
    send_all(c6.as_raw_fd(), Family::ReadWrite, b"six");
    assert_eq!(recv_exact(s6.as_raw_fd(), Family::ReadWrite, 3), b"six");
    // A dual-stack IPv6 listener reached over IPv4: the accepted socket is
    // IPv6 with v4-mapped addresses.
    let dual = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))).unwrap();
    let port = dual.local_addr().unwrap().port();
    let c4 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s4, _) = dual.accept().unwrap();
    send_all(c4.as_raw_fd(), Family::ReadWrite, b"four");
    assert_eq!(recv_exact(s4.as_raw_fd(), Family::ReadWrite, 4), b"four");
    thread::sleep(Duration::from_millis(200));
    let out = sniff.stop();
    let conns = out.of_type("conn");
    let find = |fd: RawFd| {
        conns
            .iter()
            .find(|e| e["fd"] == fd as i64 && e["pid"] == std::process::id() as u64)
            .unwrap_or_else(|| panic!("no conn event for fd {fd}"))
            .clone()
    };
    let c = find(c6.as_raw_fd());
    assert_eq!(c["family"], "tcp6");
    assert_eq!(
        c["remote"],
        format!("[::1]:{}", s6.local_addr().unwrap().port())
    );
    assert_eq!(
        c["local"],
        format!("[::1]:{}", c6.local_addr().unwrap().port())
    );
    let s = find(s4.as_raw_fd());
    assert_eq!(s["family"], "tcp6");
    assert_eq!(s["role"], "server");
    assert_eq!(s["local"], format!("[::ffff:127.0.0.1]:{port}"));
    assert_eq!(
        s["remote"],
        format!("[::ffff:127.0.0.1]:{}", c4.local_addr().unwrap().port())
    );
}

#[test]
fn port_and_comm_filters() {
    let _guard = serial();
    if !can_load_ebpf() {
        return;
    }
    let wanted = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = wanted.local_addr().unwrap().port().to_string();
    let sniff = Sniff::start(&["--raw", "--json", "--port", &port]);
    let c = TcpStream::connect(wanted.local_addr().unwrap()).unwrap();
    let (s, _) = wanted.accept().unwrap();
    send_all(c.as_raw_fd(), Family::ReadWrite, b"wanted");
    assert_eq!(recv_exact(s.as_raw_fd(), Family::ReadWrite, 6), b"wanted");
    let (c2, s2) = tcp_pair("127.0.0.1:0");
    send_all(c2.as_raw_fd(), Family::ReadWrite, b"other");
    assert_eq!(recv_exact(s2.as_raw_fd(), Family::ReadWrite, 5), b"other");
    thread::sleep(Duration::from_millis(200));
    let out = sniff.stop();
    let data = out.of_type("data");
    let payloads: HashSet<String> = data
        .iter()
        .map(|e| String::from_utf8(reassemble(&[e])).unwrap())
        .collect();
    assert!(payloads.contains("wanted"), "{payloads:?}");
    assert!(!payloads.contains("other"), "{payloads:?}");

    // --comm: a process name that is not ours sees none of our traffic.
    let sniff = Sniff::start(&["--raw", "--json", "--comm", "no-such-comm"]);
    let (c3, s3) = tcp_pair("127.0.0.1:0");
    send_all(c3.as_raw_fd(), Family::ReadWrite, b"hidden");
    assert_eq!(recv_exact(s3.as_raw_fd(), Family::ReadWrite, 6), b"hidden");
    thread::sleep(Duration::from_millis(200));
    let out = sniff.stop();
    assert!(out.of_type("data").is_empty(), "{:?}", out.lines);
}
