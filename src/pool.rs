//! Per-process connection pools (deadpool) of tokio-postgres sessions, keyed by the
//! connection parameters.
//!
//! We implement deadpool's `Manager` over tokio-postgres directly rather than using
//! deadpool-postgres's, because its manager spawns the `Connection` future itself and hides
//! it, and we need that future: it carries the server's ParameterStatus messages
//! (`TimeZone` drives timestamptz decoding) and notices.
//!
//! Clean reuse: a connection goes back to the pool only after `Connection.close()` has
//! rolled back any open transaction and, if a statement may have changed session state,
//! reset it (`RESET ALL`, `DISCARD TEMP`, ...). Anything that fails that, or that was used
//! from a forked child, is detached from the pool and closed instead (see connection.rs).

use crate::runtime;
use deadpool::managed::{self, Metrics, Object, Pool, RecycleError, RecycleResult};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, Config};
use crate::tls::Connector;

/// Everything that identifies a server session's starting point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConnectSpec {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
    pub options: Option<String>,
    pub application_name: Option<String>,
    pub sslmode: String,
    pub sslrootcert: Option<String>,
    pub connect_timeout: Option<u64>,
    /// Set on every new session (not a startup option, so `RESET TIMEZONE` still means
    /// the server's default) and again whenever a session is reset for reuse.
    pub timezone: Option<String>,
}

/// The SET statements that give a fresh or reset session its baseline state.
pub fn session_setup_sql(spec: &ConnectSpec) -> String {
    match &spec.timezone {
        Some(tz) => format!("SET TimeZone TO {};", crate::sql::literal::quote_string(tz)),
        None => String::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolSpec {
    pub min_size: usize,
    pub max_size: usize,
    pub timeout: Duration,
    pub max_lifetime: Option<Duration>,
    pub max_idle: Option<Duration>,
}

impl Default for PoolSpec {
    fn default() -> Self {
        PoolSpec {
            min_size: 0,
            max_size: 20,
            timeout: Duration::from_secs(30),
            max_lifetime: Some(Duration::from_secs(3600)),
            max_idle: Some(Duration::from_secs(600)),
        }
    }
}

/// What the connection task shares with the Python side.
pub trait ServerState: Send {
    fn parameter(&self, name: &str) -> Option<String>;
}

/// State of one physical server session, shared between its driver task and its users.
pub struct SessionShared {
    server: Mutex<Option<Box<dyn ServerState>>>,
    last_params: Mutex<HashMap<String, String>>,
    pub notices: Mutex<Vec<String>>,
    pub backend_pid: OnceLock<i32>,
    ended: AtomicBool,
    ended_notify: Notify,
    /// Named prepared statements of this session (`prepare_threshold`).
    pub statements: Mutex<crate::prepared::StatementCache>,
}

impl SessionShared {
    /// Waits until the connection task has finished (the server session is gone).
    pub async fn wait_ended(&self) {
        loop {
            let notified = self.ended_notify.notified();
            if self.ended.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// The current value of a server parameter, as last reported by ParameterStatus.
    pub fn parameter(&self, name: &str) -> Option<String> {
        if let Some(server) = self.server.lock().as_ref() {
            return server.parameter(name);
        }
        // The connection task has ended: keep answering with the last known values.
        self.last_params.lock().get(name).cloned()
    }
}

pub struct Session {
    pub client: Client,
    pub shared: Arc<SessionShared>,
}

pub struct PgManager {
    setup_sql: String,
    config: Config,
    tls: Connector,
    spec: PoolSpec,
}

const REMEMBERED_PARAMS: [&str; 6] =
    ["TimeZone", "server_version", "server_encoding", "client_encoding", "integer_datetimes", "standard_conforming_strings"];

impl managed::Manager for PgManager {
    type Type = Session;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Session, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let conn = Arc::new(Mutex::new(connection));
        let shared = Arc::new(SessionShared {
            server: Mutex::new(Some(Box::new(SharedConn(conn.clone())))),
            last_params: Mutex::new(HashMap::new()),
            notices: Mutex::new(Vec::new()),
            backend_pid: OnceLock::new(),
            ended: AtomicBool::new(false),
            ended_notify: Notify::new(),
            statements: Mutex::new(Default::default()),
        });
        tokio::spawn(drive(conn, shared.clone()));
        if !self.setup_sql.is_empty() {
            client.batch_execute(&self.setup_sql).await?;
        }
        Ok(Session { client, shared })
    }

    async fn recycle(&self, session: &mut Session, metrics: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if session.client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if self.spec.max_lifetime.is_some_and(|max| metrics.age() > max) {
            return Err(RecycleError::message("connection reached max_lifetime"));
        }
        if self.spec.max_idle.is_some_and(|max| metrics.last_used() > max) {
            return Err(RecycleError::message("connection idle longer than max_idle"));
        }
        Ok(())
    }
}

struct SharedConn<C>(Arc<Mutex<C>>);

impl<S, T> ServerState for SharedConn<tokio_postgres::Connection<S, T>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn parameter(&self, name: &str) -> Option<String> {
        tokio_postgres::Connection::parameter(&*self.0.lock(), name).map(str::to_string)
    }
}

/// Polls the connection (socket I/O) until it ends, keeping notices; Python reads server
/// parameters through the same mutex between polls.
async fn drive<S, T>(conn: Arc<Mutex<tokio_postgres::Connection<S, T>>>, shared: Arc<SessionShared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    poll_fn(|cx| loop {
        let polled = conn.lock().poll_message(cx);
        match polled {
            Poll::Ready(Some(Ok(AsyncMessage::Notice(notice)))) => {
                let mut notices = shared.notices.lock();
                if notices.len() < 100 {
                    notices.push(format!("{}:  {}", notice.severity(), notice.message()));
                }
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    })
    .await;
    {
        let guard = conn.lock();
        let mut last = shared.last_params.lock();
        for name in REMEMBERED_PARAMS {
            if let Some(v) = guard.parameter(name) {
                last.insert(name.to_string(), v.to_string());
            }
        }
    }
    *shared.server.lock() = None;
    shared.ended.store(true, Ordering::Release);
    shared.ended_notify.notify_waiters();
}

pub type PgPool = Pool<PgManager>;
pub type PooledSession = Object<PgManager>;

type PoolKey = (ConnectSpec, PoolSpec);

static POOLS: Mutex<Option<(u32, HashMap<PoolKey, PgPool>)>> = Mutex::new(None);

/// Builds the tokio-postgres configuration for a spec. `Err` is a user-facing message.
pub fn build_config(spec: &ConnectSpec) -> Result<(Config, Connector), String> {
    let mut config = Config::new();
    match spec.host.as_deref() {
        Some(h) if !h.is_empty() => {
            for host in h.split(',') {
                config.host(host.trim());
            }
        }
        _ => {
            config.host_path("/var/run/postgresql");
        }
    }
    if let Some(port) = spec.port.as_deref().filter(|p| !p.is_empty()) {
        let port: u16 = port.parse().map_err(|_| format!("invalid port number: \"{port}\""))?;
        config.port(port);
    }
    let user = spec
        .user
        .clone()
        .or_else(|| std::env::var("PGUSER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "postgres".into());
    config.user(&user);
    if let Some(pw) = &spec.password {
        config.password(pw);
    }
    config.dbname(spec.dbname.as_deref().unwrap_or(&user));
    if let Some(o) = &spec.options {
        config.options(o);
    }
    if let Some(a) = &spec.application_name {
        config.application_name(a);
    }
    if let Some(t) = spec.connect_timeout.filter(|t| *t > 0) {
        config.connect_timeout(Duration::from_secs(t.max(2)));
    }
    let (mode, verify) = crate::tls::parse_sslmode(&spec.sslmode, spec.sslrootcert.is_some())?;
    // As libpq: no TLS over Unix-domain sockets (there is no host name to verify either).
    let unix_only = config.get_hosts().iter().all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
    config.ssl_mode(if unix_only && mode == tokio_postgres::config::SslMode::Prefer {
        tokio_postgres::config::SslMode::Disable
    } else {
        mode
    });
    let tls = crate::tls::connector(verify, spec.sslrootcert.as_deref())?;
    Ok((config, tls))
}

/// The pool for these parameters in this process, created on first use.
pub fn pool_for(spec: &ConnectSpec, pool_spec: &PoolSpec) -> Result<PgPool, String> {
    let pid = runtime::current_pid();
    let mut slot = POOLS.lock();
    if slot.as_ref().is_some_and(|(owner, _)| *owner != pid) {
        // Inherited across fork: the parent's pools own the parent's sockets.
        std::mem::forget(slot.take());
    }
    let (_, pools) = slot.get_or_insert_with(|| (pid, HashMap::new()));
    let key = (spec.clone(), pool_spec.clone());
    if let Some(pool) = pools.get(&key) {
        return Ok(pool.clone());
    }
    let (config, tls) = build_config(spec)?;
    let manager = PgManager { setup_sql: session_setup_sql(spec), config, tls, spec: pool_spec.clone() };
    let pool = Pool::builder(manager)
        .max_size(pool_spec.max_size.max(1))
        .wait_timeout(Some(pool_spec.timeout))
        .create_timeout(spec.connect_timeout.filter(|t| *t > 0).map(|t| Duration::from_secs(t.max(2))))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())?;
    pools.insert(key, pool.clone());
    Ok(pool)
}

/// Drops every pool of this process (tests, and `close_all()` after settings change).
pub fn close_all() {
    let pid = runtime::current_pid();
    let mut slot = POOLS.lock();
    if let Some((owner, pools)) = slot.take() {
        if owner == pid {
            for pool in pools.values() {
                pool.close();
            }
        } else {
            std::mem::forget(pools);
        }
    }
}

/// Opens `min_size` connections up front so the first requests do not pay for them.
pub async fn warm_up(pool: &PgPool, min_size: usize) {
    let mut held = Vec::new();
    while pool.status().size < min_size && held.len() < min_size {
        match pool.get().await {
            Ok(obj) => held.push(obj),
            Err(_) => break,
        }
    }
}

/// Closes every idle pooled session of this process and waits (briefly) until the server
/// has seen them go. Used before CREATE/ALTER/DROP DATABASE.
pub async fn close_idle_sessions() {
    let pools: Vec<PgPool> = {
        let slot = POOLS.lock();
        match slot.as_ref() {
            Some((owner, pools)) if *owner == runtime::current_pid() => pools.values().cloned().collect(),
            _ => Vec::new(),
        }
    };
    let mut closing = Vec::new();
    for pool in pools {
        pool.retain(|session, _| {
            closing.push(session.shared.clone());
            false
        });
    }
    for shared in closing {
        let _ = tokio::time::timeout(Duration::from_secs(2), shared.wait_ended()).await;
    }
}

/// Closes and forgets the pool for these parameters (Django's `close_pool()`).
pub fn close_pool(spec: &ConnectSpec, pool_spec: &PoolSpec) {
    let mut slot = POOLS.lock();
    if let Some((owner, pools)) = slot.as_mut() {
        if *owner == runtime::current_pid() {
            if let Some(pool) = pools.remove(&(spec.clone(), pool_spec.clone())) {
                pool.close();
            }
        }
    }
}
