//! INET / CIDR / MACADDR: binary → PostgreSQL's own text form.
use super::read::Reader;
use super::{err, CodecError};
use std::net::Ipv4Addr;

const PGSQL_AF_INET: u8 = 2;
const PGSQL_AF_INET6: u8 = 3;

/// `1.2.3.4`, `1.2.3.0/24`, `::1`; CIDR always carries its prefix length.
pub fn inet_to_text(raw: &[u8]) -> Result<String, CodecError> {
    let mut r = Reader::new(raw);
    let family = r.u8()?;
    let bits = r.u8()?;
    let is_cidr = r.u8()? != 0;
    let len = r.u8()? as usize;
    let addr = r.take(len)?;
    let (text, max_bits) = match (family, len) {
        (PGSQL_AF_INET, 4) => (Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(), 32),
        (PGSQL_AF_INET6, 16) => {
            let a: [u8; 16] = addr.try_into().unwrap();
            (ipv6_to_text(&a), 128)
        }
        _ => return err(format!("invalid inet value: family {family}, length {len}")),
    };
    if is_cidr || bits != max_bits {
        Ok(format!("{text}/{bits}"))
    } else {
        Ok(text)
    }
}

/// An IPv6 address as PostgreSQL's `inet_net_ntop` writes it (src/port/inet_net_ntop.c),
/// which is not Rust's `Ipv6Addr` display: IPv4-compatible addresses keep a dotted tail
/// (`::1.2.3.4`, not `::102:304`), as do IPv4-mapped ones (`::ffff:1.2.3.4`).
fn ipv6_to_text(a: &[u8; 16]) -> String {
    let words: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]));
    // The first longest run of zero words (of at least two) becomes "::".
    let (mut best_base, mut best_len) = (None::<usize>, 0usize);
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            cur = Some(match cur {
                None => (i, 1),
                Some((b, l)) => (b, l + 1),
            });
        } else if let Some((b, l)) = cur.take() {
            if best_base.is_none() || l > best_len {
                (best_base, best_len) = (Some(b), l);
            }
        }
    }
    if let Some((b, l)) = cur {
        if best_base.is_none() || l > best_len {
            (best_base, best_len) = (Some(b), l);
        }
    }
    if best_len < 2 {
        best_base = None;
    }
    let mut out = String::with_capacity(39);
    let mut i = 0;
    while i < 8 {
        if let Some(b) = best_base {
            if i >= b && i < b + best_len {
                if i == b {
                    out.push(':');
                }
                i += 1;
                continue;
            }
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6 && best_base == Some(0) && (best_len == 6 || (best_len == 5 && words[5] == 0xffff)) {
            out.push_str(&Ipv4Addr::new(a[12], a[13], a[14], a[15]).to_string());
            return out;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    if best_base.is_some_and(|b| b + best_len == 8) {
        out.push(':');
    }
    out
}

/// MACADDR (6 bytes) and MACADDR8 (8 bytes) as `08:00:2b:01:02:03`.
pub fn mac_to_text(raw: &[u8]) -> Result<String, CodecError> {
    if raw.len() != 6 && raw.len() != 8 {
        return err(format!("invalid macaddr length {}", raw.len()));
    }
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet() {
        assert_eq!(inet_to_text(&[2, 32, 0, 4, 1, 2, 3, 4]).unwrap(), "1.2.3.4");
        assert_eq!(inet_to_text(&[2, 24, 0, 4, 1, 2, 3, 4]).unwrap(), "1.2.3.4/24");
        assert_eq!(inet_to_text(&[2, 24, 1, 4, 1, 2, 3, 0]).unwrap(), "1.2.3.0/24");
        let mut v6 = vec![3, 128, 0, 16];
        v6.extend([0u8; 15]);
        v6.push(1);
        assert_eq!(inet_to_text(&v6).unwrap(), "::1");
        assert!(inet_to_text(&[2, 32, 0, 3, 1, 2, 3]).is_err());
    }

    #[test]
    fn ipv6_as_postgres_writes_it() {
        let text = |s: &str| ipv6_to_text(&s.parse::<std::net::Ipv6Addr>().unwrap().octets());
        // (input, what PostgreSQL 15's inet_out prints)
        for (input, pg) in [
            ("::1.2.3.4", "::1.2.3.4"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::0.1.0.0", "::0.1.0.0"),
            ("::ffff:0:0", "::ffff:0.0.0.0"),
            ("::2", "::2"),
            ("::1", "::1"),
            ("::", "::"),
            ("::100", "::100"),
            ("::ffff", "::ffff"),
            ("::1:0:0", "::1:0:0"),
            ("::ffff:0:102:304", "::ffff:0:102:304"),
            ("::fffe:102:304", "::fffe:102:304"),
            ("1::", "1::"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"),
            ("2001:db8::", "2001:db8::"),
        ] {
            assert_eq!(text(input), pg, "{input}");
        }
    }

    #[test]
    fn mac() {
        assert_eq!(mac_to_text(&[8, 0, 0x2b, 1, 2, 3]).unwrap(), "08:00:2b:01:02:03");
    }
}
