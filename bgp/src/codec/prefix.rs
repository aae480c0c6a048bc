//! NLRI prefix encoding: a length in bits followed by the fewest octets that hold it.

use super::error::DecodeError;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Appends one prefix in NLRI form.
pub fn encode_prefix(net: &IpNet, out: &mut Vec<u8>) {
    let len = net.prefix_len();
    out.push(len);
    let n = usize::from(len).div_ceil(8);
    match net {
        IpNet::V4(n4) => out.extend_from_slice(&n4.network().octets()[..n]),
        IpNet::V6(n6) => out.extend_from_slice(&n6.network().octets()[..n]),
    }
}

/// Length in octets of the NLRI form of a prefix.
pub fn encoded_len(net: &IpNet) -> usize {
    1 + usize::from(net.prefix_len()).div_ceil(8)
}

/// Decodes a run of IPv4 prefixes filling `buf` exactly.
pub fn decode_v4_prefixes(buf: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    decode_prefixes(buf, 32)?
        .into_iter()
        .map(|(len, bytes)| {
            let mut o = [0u8; 4];
            o.copy_from_slice(&bytes[..4]);
            Ok(Ipv4Net::new(Ipv4Addr::from(o), len)
                .expect("length checked")
                .trunc())
        })
        .collect()
}

/// Decodes a run of prefixes of the given family (IPv4 if `v6` is false).
pub fn decode_ip_prefixes(buf: &[u8], v6: bool) -> Result<Vec<IpNet>, DecodeError> {
    if !v6 {
        return Ok(decode_v4_prefixes(buf)?
            .into_iter()
            .map(IpNet::V4)
            .collect());
    }
    Ok(decode_prefixes(buf, 128)?
        .into_iter()
        .map(|(len, bytes)| {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(bytes), len)
                    .expect("length checked")
                    .trunc(),
            )
        })
        .collect())
}

/// Splits a prefix run into (length, address octets zero-padded to 16).
fn decode_prefixes(buf: &[u8], max_len: u8) -> Result<Vec<(u8, [u8; 16])>, DecodeError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let len = buf[i];
        if len > max_len {
            return Err(DecodeError::PrefixTooLong { len, max: max_len });
        }
        let n = usize::from(len).div_ceil(8);
        let end = i + 1 + n;
        if end > buf.len() {
            return Err(DecodeError::PrefixOverflow { len });
        }
        let mut addr = [0u8; 16];
        addr[..n].copy_from_slice(&buf[i + 1..end]);
        out.push((len, addr));
        i = end;
    }
    Ok(out)
}
