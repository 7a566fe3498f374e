//! Where a session may connect, as libpq reads it: host, port and hostaddr lists,
//! target_session_attrs, load_balance_hosts, connect_timeout per host. The values are
//! checked here (libpq's wording in errors) and handed to tokio-postgres, which tries the
//! hosts in turn (see src/patches/tokio-postgres/PATCH.md for the attributes it checks).

use std::net::IpAddr;
use std::time::Duration;
use tokio_postgres::config::{Config, LoadBalanceHosts, TargetSessionAttrs};

/// The connection parameters this module reads (borrowed from a `pool::ConnectSpec`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Targets<'a> {
    pub host: Option<&'a str>,
    pub port: Option<&'a str>,
    pub hostaddr: Option<&'a str>,
    pub target_session_attrs: Option<&'a str>,
    pub load_balance_hosts: Option<&'a str>,
    pub connect_timeout: Option<u64>,
    pub keepalives: Option<&'a str>,
    pub keepalives_idle: Option<&'a str>,
}

/// libpq's directory for Unix-domain sockets when no host is given.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The value of `target_session_attrs`; `Err` names the key as libpq does.
pub fn target_session_attrs(value: Option<&str>) -> Result<TargetSessionAttrs, String> {
    Ok(match value {
        None | Some("any") => TargetSessionAttrs::Any,
        Some("read-write") => TargetSessionAttrs::ReadWrite,
        Some("read-only") => TargetSessionAttrs::ReadOnly,
        Some("primary") => TargetSessionAttrs::Primary,
        Some("standby") => TargetSessionAttrs::Standby,
        Some("prefer-standby") => TargetSessionAttrs::PreferStandby,
        Some(other) => return Err(format!("invalid target_session_attrs value: \"{other}\"")),
    })
}

pub fn load_balance_hosts(value: Option<&str>) -> Result<LoadBalanceHosts, String> {
    match value {
        None | Some("disable") => Ok(LoadBalanceHosts::Disable),
        Some("random") => Ok(LoadBalanceHosts::Random),
        Some(other) => Err(format!("invalid load_balance_hosts value: \"{other}\"")),
    }
}

fn split(list: Option<&str>) -> Vec<&str> {
    match list {
        None | Some("") => Vec::new(),
        Some(l) => l.split(',').map(str::trim).collect(),
    }
}

/// libpq's `keepalives` (an integer, 0 off; default on) and `keepalives_idle` (seconds of
/// idleness before the first probe; 0 or unset: the default, which tokio-postgres's 2 hours
/// matches on Linux).
pub fn keepalives(keepalives: Option<&str>, idle: Option<&str>) -> Result<(Option<bool>, Option<Duration>), String> {
    let int = |key: &str, v: &str| {
        v.trim().parse::<i64>().map_err(|_| format!("invalid integer value \"{v}\" for connection option \"{key}\""))
    };
    let on = keepalives.map(|v| int("keepalives", v).map(|n| n != 0)).transpose()?;
    let idle = match idle {
        None => None,
        Some(v) => match int("keepalives_idle", v)? {
            n if n < 0 => return Err(format!("invalid value \"{v}\" for connection option \"keepalives_idle\": must be >= 0")),
            0 => None,
            n => Some(Duration::from_secs(n as u64)),
        },
    };
    Ok((on, idle))
}

/// The ports of a `port` list (an empty entry means 5432, as libpq).
pub fn ports(list: Option<&str>) -> Result<Vec<u16>, String> {
    split(list)
        .into_iter()
        .map(|p| match p {
            "" => Ok(5432),
            p => p.parse().map_err(|_| format!("invalid integer value \"{p}\" for connection option \"port\"")),
        })
        .collect()
}

/// Sets hosts, ports, hostaddrs, session attributes, load balancing, the per-host connect
/// timeout and TCP keepalives of `config` from `spec`.
pub fn apply(config: &mut Config, spec: Targets<'_>) -> Result<(), String> {
    let hosts = split(spec.host);
    let hostaddrs = split(spec.hostaddr);
    let ports = ports(spec.port)?;
    for h in &hosts {
        match *h {
            "" => config.host_path(DEFAULT_SOCKET_DIR),
            h if h.starts_with('/') => config.host_path(h),
            h => config.host(h),
        };
    }
    for a in &hostaddrs {
        let addr: IpAddr = a.parse().map_err(|_| format!("could not parse network address \"{a}\""))?;
        config.hostaddr(addr);
    }
    if hosts.is_empty() && hostaddrs.is_empty() {
        config.host_path(DEFAULT_SOCKET_DIR);
    }
    if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
        return Err(format!("could not match {} host names with {} hostaddr values", hosts.len(), hostaddrs.len()));
    }
    let targets = hosts.len().max(hostaddrs.len()).max(1);
    if ports.len() > 1 && ports.len() != targets {
        return Err(format!("could not match {} port numbers to {} hosts", ports.len(), targets));
    }
    for p in ports {
        config.port(p);
    }
    config.target_session_attrs(target_session_attrs(spec.target_session_attrs)?);
    config.load_balance_hosts(load_balance_hosts(spec.load_balance_hosts)?);
    if let Some(t) = per_host_timeout(spec) {
        config.connect_timeout(t);
    }
    let (on, idle) = keepalives(spec.keepalives, spec.keepalives_idle)?;
    if let Some(on) = on {
        config.keepalives(on);
    }
    if let Some(idle) = idle {
        config.keepalives_idle(idle);
    }
    Ok(())
}

/// libpq's connect_timeout: per host and address, at least 2 s; 0 or unset waits forever.
pub fn per_host_timeout(spec: Targets<'_>) -> Option<Duration> {
    spec.connect_timeout.filter(|t| *t > 0).map(|t| Duration::from_secs(t.max(2)))
}

/// The longest a whole connect may take: every host once, twice with prefer-standby.
pub fn connect_deadline(spec: Targets<'_>) -> Option<Duration> {
    let per_host = per_host_timeout(spec)?;
    let targets = split(spec.host).len().max(split(spec.hostaddr).len()).max(1) as u32;
    let passes = if spec.target_session_attrs == Some("prefer-standby") { 2 } else { 1 };
    // Plus one for the session setup statements after connecting.
    Some(per_host * (targets * passes + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(host: &'a str, port: &'a str) -> Targets<'a> {
        Targets { host: Some(host), port: Some(port), ..Default::default() }
    }

    #[test]
    fn lists_and_errors() {
        let mut c = Config::new();
        apply(&mut c, spec("a,b", "1,2")).unwrap();
        assert_eq!(c.get_ports(), &[1, 2]);
        assert_eq!(apply(&mut Config::new(), spec("a,b", "1,2,3")).unwrap_err(), "could not match 3 port numbers to 2 hosts");
        assert!(apply(&mut Config::new(), spec("a", "x")).unwrap_err().contains("\"port\""));
        assert_eq!(ports(Some(",7")).unwrap(), vec![5432, 7]);
        assert!(target_session_attrs(Some("bogus")).unwrap_err().contains("target_session_attrs"));
        let s = Targets { connect_timeout: Some(1), target_session_attrs: Some("prefer-standby"), ..spec("a,b", "") };
        assert_eq!(connect_deadline(s), Some(Duration::from_secs(10)));
    }
}
