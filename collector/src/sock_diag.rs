//! The kernel's table of TCP sockets, through sock_diag netlink
//! (`NETLINK_SOCK_DIAG`, `inet_diag`): addresses, state and inode of every
//! socket, listening ones included. Used to fill in connections that existed
//! before capture started, and to find the process at the other end of a
//! connection when both ends are on this host.

use std::net::SocketAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
};
use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_SOCK_DIAG};

#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("opening a sock_diag netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("talking to the kernel over sock_diag: {0}")]
    Io(#[source] std::io::Error),
    #[error("the kernel's sock_diag reply could not be decoded: {0}")]
    Decode(String),
    #[error("the kernel refused the sock_diag request (errno {0})")]
    Refused(i32),
}

/// `TCP_LISTEN` in `include/net/tcp_states.h`.
pub const TCP_LISTEN: u8 = 10;

pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// One TCP socket of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: u8,
    pub inode: u32,
    pub uid: u32,
}

fn open() -> Result<Socket, SockDiagError> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(SockDiagError::Socket)?;
    socket.bind_auto().map_err(SockDiagError::Socket)?;
    socket
        .connect(&NetlinkAddr::new(0, 0))
        .map_err(SockDiagError::Socket)?;
    Ok(socket)
}

/// Every TCP socket on the host (IPv4 and IPv6, all states).
pub fn dump_tcp() -> Result<Vec<TcpSocket>, SockDiagError> {
    let socket = open()?;
    let mut out = Vec::new();
    for family in [AF_INET, AF_INET6] {
        request(&socket, family, None)?;
        receive(&socket, &mut out, true)?;
    }
    Ok(out)
}

/// The TCP socket whose own end is `local` and other end `remote`, asked of
/// the kernel by its addresses: one socket, not a walk of them all, so it is
/// cheap enough to ask per connection.
pub fn find_tcp(local: SocketAddr, remote: SocketAddr) -> Result<Option<TcpSocket>, SockDiagError> {
    let socket = open()?;
    let family = if local.is_ipv4() { AF_INET } else { AF_INET6 };
    request(&socket, family, Some((local, remote)))?;
    let mut out = Vec::new();
    match receive(&socket, &mut out, false) {
        // ENOENT: no such socket (any more).
        Err(SockDiagError::Refused(code)) if code.abs() == libc::ENOENT => Ok(None),
        Err(e) => Err(e),
        Ok(()) => Ok(out.pop()),
    }
}

/// A dump of `family`, or with `exact`, the one socket with those (own,
/// other) addresses.
fn request(
    socket: &Socket,
    family: u8,
    exact: Option<(SocketAddr, SocketAddr)>,
) -> Result<(), SockDiagError> {
    let mut header = NetlinkHeader::default();
    let socket_id = match exact {
        Some((local, remote)) => {
            header.flags = NLM_F_REQUEST;
            SocketId {
                source_port: local.port(),
                destination_port: remote.port(),
                source_address: local.ip(),
                destination_address: remote.ip(),
                interface_id: 0,
                // INET_DIAG_NOCOOKIE: match by addresses alone.
                cookie: [0xff; 8],
            }
        }
        None => {
            header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            if family == AF_INET {
                SocketId::new_v4()
            } else {
                SocketId::new_v6()
            }
        }
    };
    let mut packet = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id,
        })
        .into(),
    );
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map_err(SockDiagError::Io)?;
    Ok(())
}

/// Reads the multipart reply of one dump request until NLMSG_DONE, or with
/// `until_done` false, the single reply to an exact request.
fn receive(
    socket: &Socket,
    out: &mut Vec<TcpSocket>,
    until_done: bool,
) -> Result<(), SockDiagError> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = socket
            .recv(&mut &mut buf[..], 0)
            .map_err(SockDiagError::Io)?;
        let mut offset = 0;
        while offset < n {
            let msg = <NetlinkMessage<SockDiagMessage>>::deserialize(&buf[offset..n])
                .map_err(|e| SockDiagError::Decode(e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let id = &r.header.socket_id;
                    out.push(TcpSocket {
                        local: SocketAddr::new(id.source_address, id.source_port),
                        remote: SocketAddr::new(id.destination_address, id.destination_port),
                        state: r.header.state,
                        inode: r.header.inode,
                        uid: r.header.uid,
                    });
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(SockDiagError::Refused(e.code.map_or(0, |c| c.get())));
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
        if !until_done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    const TCP_ESTABLISHED: u8 = 1;

    /// Needs no privileges: sock_diag dumps are open to everyone.
    #[test]
    fn sees_our_own_connection_and_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let all = dump_tcp().unwrap();
        let l = all
            .iter()
            .find(|s| s.local == listener.local_addr().unwrap() && s.state == TCP_LISTEN)
            .expect("the listener");
        assert!(l.inode != 0);
        // (Its port may also be in an older TIME_WAIT entry to elsewhere.)
        let c = all
            .iter()
            .find(|s| {
                s.local == client.local_addr().unwrap() && s.remote == server.local_addr().unwrap()
            })
            .expect("the client end");
        assert_eq!(c.state, TCP_ESTABLISHED);
        assert!(c.inode != 0);
        assert!(
            all.iter().any(|s| s.local == server.local_addr().unwrap()
                && s.remote == client.local_addr().unwrap())
        );
        // The same sockets, one by one.
        let (cl, sl) = (client.local_addr().unwrap(), server.local_addr().unwrap());
        let one = find_tcp(sl, cl)
            .unwrap()
            .expect("the server end by its addresses");
        assert_eq!(
            (one.local, one.remote, one.state),
            (sl, cl, TCP_ESTABLISHED)
        );
        assert_eq!(
            Some(&one),
            all.iter().find(|s| s.local == sl && s.remote == cl)
        );
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(find_tcp(closed, cl).unwrap(), None);
    }
}
