use crate::client::{Addr, SocketConfig};
use crate::config::{Host, LoadBalanceHosts, TargetSessionAttrs};
use crate::connect_raw::connect_raw;
use crate::connect_socket::connect_socket;
use crate::tls::MakeTlsConnect;
use crate::{Client, Config, Connection, Error, SimpleQueryMessage, Socket};
use futures_util::{FutureExt, Stream};
use rand::seq::SliceRandom;
use std::future::{self, Future};
use std::pin::pin;
use std::task::Poll;
use std::{cmp, io};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net;

pub async fn connect<T>(
    mut tls: T,
    config: &Config,
) -> Result<(Client, Connection<Socket, T::Stream>), Error>
where
    T: MakeTlsConnect<Socket>,
{
    if config.host.is_empty() && config.hostaddr.is_empty() {
        return Err(Error::config("both host and hostaddr are missing".into()));
    }

    if !config.host.is_empty()
        && !config.hostaddr.is_empty()
        && config.host.len() != config.hostaddr.len()
    {
        let msg = format!(
            "number of hosts ({}) is different from number of hostaddrs ({})",
            config.host.len(),
            config.hostaddr.len(),
        );
        return Err(Error::config(msg.into()));
    }

    // At this point, either one of the following two scenarios could happen:
    // (1) either config.host or config.hostaddr must be empty;
    // (2) if both config.host and config.hostaddr are NOT empty; their lengths must be equal.
    let num_hosts = cmp::max(config.host.len(), config.hostaddr.len());

    if config.port.len() > 1 && config.port.len() != num_hosts {
        return Err(Error::config("invalid number of ports".into()));
    }

    let mut indices = (0..num_hosts).collect::<Vec<_>>();
    if config.load_balance_hosts == LoadBalanceHosts::Random {
        indices.shuffle(&mut rand::rng());
    }

    // prefer-standby: a pass over every host accepting only standbys, then one accepting any.
    if config.target_session_attrs == TargetSessionAttrs::PreferStandby {
        if let Ok(connected) = connect_hosts(&indices, &mut tls, config, TargetSessionAttrs::Standby).await {
            return Ok(connected);
        }
        return connect_hosts(&indices, &mut tls, config, TargetSessionAttrs::Any).await;
    }
    connect_hosts(&indices, &mut tls, config, config.target_session_attrs).await
}

async fn connect_hosts<T>(
    indices: &[usize],
    tls: &mut T,
    config: &Config,
    target: TargetSessionAttrs,
) -> Result<(Client, Connection<Socket, T::Stream>), Error>
where
    T: MakeTlsConnect<Socket>,
{
    let mut error = None;
    for &i in indices {
        let host = config.host.get(i);
        let hostaddr = config.hostaddr.get(i);
        let port = config
            .port
            .get(i)
            .or_else(|| config.port.first())
            .copied()
            .unwrap_or(5432);

        // The value of host is used as the hostname for TLS validation,
        let hostname = match host {
            Some(Host::Tcp(host)) => Some(host.clone()),
            // postgres doesn't support TLS over unix sockets, so the choice here doesn't matter
            #[cfg(unix)]
            Some(Host::Unix(_)) => None,
            None => None,
        };

        // Try to use the value of hostaddr to establish the TCP connection,
        // fallback to host if hostaddr is not present.
        let addr = match hostaddr {
            Some(ipaddr) => Host::Tcp(ipaddr.to_string()),
            None => host.cloned().unwrap(),
        };

        match connect_host(addr, hostname, port, tls, config, target).await {
            Ok((client, connection)) => return Ok((client, connection)),
            Err(e) => error = Some(e),
        }
    }

    Err(error.unwrap())
}

async fn connect_host<T>(
    host: Host,
    hostname: Option<String>,
    port: u16,
    tls: &mut T,
    config: &Config,
    target: TargetSessionAttrs,
) -> Result<(Client, Connection<Socket, T::Stream>), Error>
where
    T: MakeTlsConnect<Socket>,
{
    match host {
        Host::Tcp(host) => {
            let mut addrs = net::lookup_host((&*host, port))
                .await
                .map_err(Error::connect)?
                .collect::<Vec<_>>();

            if config.load_balance_hosts == LoadBalanceHosts::Random {
                addrs.shuffle(&mut rand::rng());
            }

            let mut last_err = None;
            for addr in addrs {
                match connect_once(Addr::Tcp(addr.ip()), hostname.as_deref(), port, tls, config, target)
                    .await
                {
                    Ok(stream) => return Ok(stream),
                    Err(e) => {
                        last_err = Some(e);
                        continue;
                    }
                };
            }

            Err(last_err.unwrap_or_else(|| {
                Error::connect(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "could not resolve any addresses",
                ))
            }))
        }
        #[cfg(unix)]
        Host::Unix(path) => {
            connect_once(Addr::Unix(path), hostname.as_deref(), port, tls, config, target).await
        }
    }
}

/// One address, within `connect_timeout` (as libpq: for the whole attempt, startup and
/// the session-attributes check included, separately for each host and address).
async fn connect_once<T>(
    addr: Addr,
    hostname: Option<&str>,
    port: u16,
    tls: &mut T,
    config: &Config,
    target: TargetSessionAttrs,
) -> Result<(Client, Connection<Socket, T::Stream>), Error>
where
    T: MakeTlsConnect<Socket>,
{
    let attempt = connect_attempt(addr, hostname, port, tls, config, target);
    match config.connect_timeout {
        Some(limit) => tokio::time::timeout(limit, attempt).await.unwrap_or_else(|_| {
            Err(Error::connect(io::Error::new(io::ErrorKind::TimedOut, "timeout expired")))
        }),
        None => attempt.await,
    }
}

async fn connect_attempt<T>(
    addr: Addr,
    hostname: Option<&str>,
    port: u16,
    tls: &mut T,
    config: &Config,
    target: TargetSessionAttrs,
) -> Result<(Client, Connection<Socket, T::Stream>), Error>
where
    T: MakeTlsConnect<Socket>,
{
    let socket = connect_socket(
        &addr,
        port,
        config.connect_timeout,
        config.tcp_user_timeout,
        if config.keepalives {
            Some(&config.keepalive_config)
        } else {
            None
        },
    )
    .await?;

    let tls = tls
        .make_tls_connect(hostname.unwrap_or(""))
        .map_err(|e| Error::tls(e.into()))?;
    let has_hostname = hostname.is_some();
    #[cfg(unix)]
    let fd = socket.raw_fd();
    let (mut client, mut connection) = connect_raw(socket, tls, has_hostname, config).await?;
    #[cfg(unix)]
    client.set_socket_fd(fd);

    check_session_attrs(&client, &mut connection, target).await?;

    client.set_socket_config(SocketConfig {
        addr,
        hostname: hostname.map(|s| s.to_string()),
        port,
        connect_timeout: config.connect_timeout,
        tcp_user_timeout: config.tcp_user_timeout,
        keepalive: if config.keepalives {
            Some(config.keepalive_config.clone())
        } else {
            None
        },
    });

    Ok((client, connection))
}

/// Rejects a server that does not have the session attributes `target` asks for. PostgreSQL
/// 14+ reports `in_hot_standby` and `default_transaction_read_only` at startup, so no
/// round trip is needed; older servers are asked, as libpq does.
async fn check_session_attrs<S, T>(
    client: &Client,
    connection: &mut Connection<S, T>,
    target: TargetSessionAttrs,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    if matches!(target, TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby) {
        return Ok(());
    }
    let reported = (
        connection.parameter("in_hot_standby").map(|v| v == "on"),
        connection.parameter("default_transaction_read_only").map(|v| v == "on"),
    );
    let (hot_standby, read_only) = match reported {
        (Some(hot_standby), Some(read_only)) => (hot_standby, read_only),
        _ => match target {
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => {
                let v = query_value(client, connection, "SHOW transaction_read_only").await?;
                (false, v.as_deref() == Some("on"))
            }
            _ => {
                let v = query_value(client, connection, "SELECT pg_catalog.pg_is_in_recovery()").await?;
                (v.as_deref() == Some("t"), false)
            }
        },
    };
    if target.admits(hot_standby, read_only) {
        return Ok(());
    }
    // libpq's wording.
    let reason = match target {
        TargetSessionAttrs::ReadWrite => "session is read-only",
        TargetSessionAttrs::ReadOnly => "session is not read-only",
        TargetSessionAttrs::Primary => "server is in hot standby mode",
        _ => "server is not in hot standby mode",
    };
    Err(Error::connect(io::Error::new(io::ErrorKind::PermissionDenied, reason)))
}

/// The first column of the first row `sql` returns, driving `connection` meanwhile.
async fn query_value<S, T>(
    client: &Client,
    connection: &mut Connection<S, T>,
    sql: &str,
) -> Result<Option<String>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut rows = pin!(client.simple_query_raw(sql));
    let mut rows = pin!(
        future::poll_fn(|cx| {
            if connection.poll_unpin(cx)?.is_ready() {
                return Poll::Ready(Err(Error::closed()));
            }
            rows.as_mut().poll(cx)
        })
        .await?
    );
    let mut value = None;
    loop {
        let next = future::poll_fn(|cx| {
            if connection.poll_unpin(cx)?.is_ready() {
                return Poll::Ready(Some(Err(Error::closed())));
            }
            rows.as_mut().poll_next(cx)
        });
        match next.await.transpose()? {
            Some(SimpleQueryMessage::Row(row)) if value.is_none() => value = Some(row.try_get(0)?.map(str::to_string)),
            Some(_) => {}
            None => return value.ok_or_else(Error::unexpected_message),
        }
    }
}
