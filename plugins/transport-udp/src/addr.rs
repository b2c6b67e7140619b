//! Peer addresses: how a datagram's source becomes a peer key, how a peer is
//! named in link events, and how `static_peers` entries are read.
//!
//! A peer is an IP address and a UDP port. IPv6 link-local addresses
//! (`fe80::/10`) are only meaningful with their interface, so their key keeps
//! the scope id (the interface index) and their name spells the interface:
//! `[fe80::1%mesh0]:4556`. Every other address drops scope and flow info, and
//! IPv4 datagrams that a dual-stack socket reports as `::ffff:a.b.c.d` are
//! keyed and named as IPv4: `10.0.0.2:4556`. The name is what the router
//! sees and passes back to `send`, so it is canonical: one spelling per peer.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Whether `ip` is IPv6 link-local unicast (`fe80::/10`).
pub fn is_link_local(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The key of a source address: IPv4-mapped addresses become IPv4; scope ids
/// stay on link-local addresses only; flow info is dropped.
pub fn normalize(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(v6) => {
            if let Some(v4) = v6.ip().to_ipv4_mapped() {
                return SocketAddr::V4(SocketAddrV4::new(v4, v6.port()));
            }
            let scope = if is_link_local(v6.ip()) { v6.scope_id() } else { 0 };
            SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, scope))
        }
    }
}

/// The address to send to from an IPv6 (dual-stack) socket.
pub fn to_v6_socket(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0)),
        v6 => v6,
    }
}

/// The canonical name of a (normalized) peer address. `interface_name` turns
/// a scope id into an interface name; an index it cannot name is written as
/// the number (`[fe80::1%7]:4556`).
pub fn name(addr: &SocketAddr, interface_name: impl Fn(u32) -> Option<String>) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => {
            let mut s = format!("[{}", v6.ip());
            if v6.scope_id() != 0 {
                match interface_name(v6.scope_id()) {
                    Some(ifname) => write!(s, "%{ifname}").unwrap(),
                    None => write!(s, "%{}", v6.scope_id()).unwrap(),
                }
            }
            write!(s, "]:{}", v6.port()).unwrap();
            s
        }
    }
}

/// A `static_peers` entry: an address, the interface of a link-local address,
/// and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticAddr {
    pub ip: IpAddr,
    /// Only for IPv6 link-local addresses, where it is required.
    pub interface: Option<String>,
    pub port: u16,
}

/// Reads `10.0.0.2:4556`, `10.0.0.2`, `[fe80::1%mesh0]:4556`, `fe80::1%mesh0`,
/// `[2001:db8::2]:4556` or `2001:db8::2`; a missing port is `default_port`.
pub fn parse_static(s: &str, default_port: u16) -> Result<StaticAddr, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("`[` without `]`")?;
        let port = match after {
            "" => default_port,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| format!("bad port after `]`: {p:?}"))?,
        };
        (host, port)
    } else if s.matches(':').count() == 1 {
        // IPv4 with a port (an IPv6 address has at least two colons).
        let (host, p) = s.split_once(':').unwrap();
        (host, p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?)
    } else {
        (s, default_port)
    };
    if port == 0 {
        return Err("port 0".into());
    }
    let (ip, interface) = match host.split_once('%') {
        Some((ip, ifname)) => (ip, Some(ifname)),
        None => (host, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| format!("{ip:?} is not an IP address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!("{ip} is not a unicast address"));
    }
    let link_local = matches!(ip, IpAddr::V6(v6) if is_link_local(&v6));
    let interface = match (link_local, interface) {
        (true, None) => return Err("a link-local address needs its interface: `[fe80::1%mesh0]:4556`".into()),
        (true, Some(ifname)) => {
            check_interface_name(ifname)?;
            Some(ifname.to_owned())
        }
        (false, Some(_)) => return Err("only link-local (fe80::/10) addresses take an `%interface`".into()),
        (false, None) => None,
    };
    // `::ffff:10.0.0.2` is an IPv4 peer: key it as such.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    Ok(StaticAddr { ip, interface, port })
}

/// Linux interface names: 1 to 15 bytes, no `/`, `%`, whitespace or NUL,
/// not `.` or `..`.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    let bad = |c: char| c == '/' || c == '%' || c == '\0' || c.is_whitespace();
    if name.is_empty() || name.len() > 15 || name.contains(bad) || name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name (1 to 15 bytes, no '/', '%' or spaces)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(i: u32) -> Option<String> {
        (i == 3).then(|| "mesh0".to_owned())
    }

    #[test]
    fn keys_and_names() {
        let ll: SocketAddr = "[fe80::1%3]:4556".parse().unwrap();
        assert_eq!(name(&normalize(ll), names), "[fe80::1%mesh0]:4556");
        let unknown: SocketAddr = "[fe80::1%9]:4556".parse().unwrap();
        assert_eq!(name(&normalize(unknown), names), "[fe80::1%9]:4556");
        let global = SocketAddr::V6(SocketAddrV6::new("2001:db8::2".parse().unwrap(), 4556, 7, 3));
        assert_eq!(normalize(global), "[2001:db8::2]:4556".parse().unwrap(), "scope and flow dropped");
        assert_eq!(name(&normalize(global), names), "[2001:db8::2]:4556");
        let mapped: SocketAddr = "[::ffff:10.0.0.2]:4556".parse().unwrap();
        assert_eq!(normalize(mapped), "10.0.0.2:4556".parse().unwrap());
        assert_eq!(name(&normalize(mapped), names), "10.0.0.2:4556");
        assert_eq!(to_v6_socket("10.0.0.2:4556".parse().unwrap()), mapped);
    }

    #[test]
    fn static_peer_spellings() {
        let v4 = StaticAddr { ip: "10.0.0.2".parse().unwrap(), interface: None, port: 4556 };
        assert_eq!(parse_static("10.0.0.2:4556", 1), Ok(v4.clone()));
        assert_eq!(parse_static("10.0.0.2", 4556), Ok(v4.clone()));
        assert_eq!(parse_static("[::ffff:10.0.0.2]:4556", 1), Ok(v4));
        let ll = StaticAddr { ip: "fe80::1".parse().unwrap(), interface: Some("mesh0".into()), port: 9 };
        assert_eq!(parse_static("[fe80::1%mesh0]:9", 1), Ok(ll.clone()));
        assert_eq!(parse_static("FE80::0001%mesh0", 9), Ok(ll));
        let g = StaticAddr { ip: "2001:db8::2".parse().unwrap(), interface: None, port: 4556 };
        assert_eq!(parse_static("[2001:db8::2]:4556", 1), Ok(g.clone()));
        assert_eq!(parse_static("2001:db8::2", 4556), Ok(g.clone()));
        assert_eq!(parse_static("[2001:db8::2]", 4556), Ok(g));
        for bad in [
            "",
            "x",
            "10.0.0.2:0",
            "10.0.0.2:99999",
            "[fe80::1]:4556",
            "fe80::1%",
            "[2001:db8::2%eth0]:1",
            "[ff02::1%eth0]:1",
            "0.0.0.0:1",
            "255.255.255.255:1",
            "[::1",
            "[::1]4556",
            "10.0.0.2%eth0",
        ] {
            assert!(parse_static(bad, 4556).is_err(), "{bad:?} accepted");
        }
    }
}
