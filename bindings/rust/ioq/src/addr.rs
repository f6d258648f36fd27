use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use ioq_sys as sys;

use crate::error::{check, Error, Result};

pub(crate) fn to_raw(a: &SocketAddr) -> sys::ioq_addr {
    let mut r = sys::ioq_addr {
        family: 0,
        port: a.port(),
        scope_id: 0,
        ip: [0; 16],
    };
    match a {
        SocketAddr::V4(v4) => {
            r.family = sys::IOQ_AF_INET as u16;
            r.ip[..4].copy_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            r.family = sys::IOQ_AF_INET6 as u16;
            r.ip = v6.ip().octets();
            r.scope_id = v6.scope_id();
        }
    }
    r
}

pub(crate) fn from_raw(r: &sys::ioq_addr) -> Result<SocketAddr> {
    match r.family as u32 {
        sys::IOQ_AF_INET => {
            let ip = Ipv4Addr::new(r.ip[0], r.ip[1], r.ip[2], r.ip[3]);
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, r.port)))
        }
        sys::IOQ_AF_INET6 => {
            let ip = Ipv6Addr::from(r.ip);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, r.port, 0, r.scope_id)))
        }
        _ => Err(Error::AFNOSUPPORT),
    }
}

/// Parses an address with ioq's own parser (`1.2.3.4:80`, `[::1]:80`, `::1`).
pub fn parse_addr(text: &str) -> Result<SocketAddr> {
    let c = CString::new(text).map_err(|_| Error::INVAL)?;
    let mut r = sys::ioq_addr {
        family: 0,
        port: 0,
        scope_id: 0,
        ip: [0; 16],
    };
    check(unsafe { sys::ioq_addr_parse(c.as_ptr(), &mut r) } as i64)?;
    from_raw(&r)
}

/// Formats an address with ioq's formatter (`1.2.3.4:80`, `[::1]:80`).
pub fn format_addr(addr: &SocketAddr) -> Result<String> {
    let r = to_raw(addr);
    let mut buf = [0u8; 64];
    let n = check(unsafe { sys::ioq_addr_format(&r, buf.as_mut_ptr().cast(), buf.len()) } as i64)?;
    Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_roundtrip() {
        for s in ["127.0.0.1:80", "[::1]:8080", "[fe80::1%3]:1"] {
            let a: SocketAddr = s.parse().unwrap();
            assert_eq!(from_raw(&to_raw(&a)).unwrap(), a);
        }
    }

    #[test]
    fn parse_and_format_through_the_library() {
        let a = parse_addr("10.1.2.3:4567").unwrap();
        assert_eq!(a, "10.1.2.3:4567".parse().unwrap());
        assert_eq!(format_addr(&a).unwrap(), "10.1.2.3:4567");
        assert_eq!(parse_addr("::1").unwrap(), "[::1]:0".parse().unwrap());
        assert_eq!(
            format_addr(&"[::1]:80".parse().unwrap()).unwrap(),
            "[::1]:80"
        );
        assert_eq!(parse_addr("not an address"), Err(Error::INVAL));
        assert_eq!(parse_addr("a\0b"), Err(Error::INVAL));
    }
}
