//! INET / CIDR / MACADDR: binary → PostgreSQL's own text form.
use super::read::Reader;
use super::{err, CodecError};
use std::net::{Ipv4Addr, Ipv6Addr};

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
            (Ipv6Addr::from(a).to_string(), 128)
        }
        _ => return err(format!("invalid inet value: family {family}, length {len}")),
    };
    if is_cidr || bits != max_bits {
        Ok(format!("{text}/{bits}"))
    } else {
        Ok(text)
    }
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
    fn mac() {
        assert_eq!(mac_to_text(&[8, 0, 0x2b, 1, 2, 3]).unwrap(), "08:00:2b:01:02:03");
    }
}
