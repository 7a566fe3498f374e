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
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    pub hostaddr: Option<String>,
    pub target_session_attrs: Option<String>,
    pub load_balance_hosts: Option<String>,
    /// libpq's TCP keepalive settings ("0" turns keepalives off; idle time in seconds).
    pub keepalives: Option<String>,
    pub keepalives_idle: Option<String>,
    /// Set on every new session (not a startup option, so `RESET TIMEZONE` still means
    /// the server's default) and again whenever a session is reset for reuse.
    pub timezone: Option<String>,
}

impl ConnectSpec {
    /// Where sessions may connect (see `crate::hosts`).
    pub fn targets(&self) -> crate::hosts::Targets<'_> {
        crate::hosts::Targets {
            host: self.host.as_deref(),
            port: self.port.as_deref(),
            hostaddr: self.hostaddr.as_deref(),
            target_session_attrs: self.target_session_attrs.as_deref(),
            load_balance_hosts: self.load_balance_hosts.as_deref(),
            connect_timeout: self.connect_timeout,
            keepalives: self.keepalives.as_deref(),
            keepalives_idle: self.keepalives_idle.as_deref(),
        }
    }
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
            // Stock Django keeps no session open between requests; a minute covers the
            // gaps of steady traffic without parking max_size sessions per process.
            max_idle: Some(Duration::from_secs(60)),
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
    /// LISTEN notifications not yet read: (channel, payload, sender pid).
    pub notifications: Mutex<VecDeque<(String, String, i32)>>,
    notified: Notify,
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

    /// The next notification, waiting until `deadline` (None: forever); None when the
    /// deadline passed or the session ended.
    pub async fn next_notification(&self, deadline: Option<tokio::time::Instant>) -> Option<(String, String, i32)> {
        loop {
            let notified = self.notified.notified();
            if let Some(n) = self.notifications.lock().pop_front() {
                return Some(n);
            }
            if self.ended.load(Ordering::Acquire) {
                return None;
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return self.notifications.lock().pop_front();
                    }
                }
                None => notified.await,
            }
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
    stats: Arc<PoolStats>,
}

/// Checkout figures of one pool, for `pool_status()`.
#[derive(Default)]
pub struct PoolStats {
    pub checkouts: AtomicU64,
    pub overflow_checkouts: AtomicU64,
    pub timeouts: AtomicU64,
    pub discarded_dead: AtomicU64,
    /// Sessions dropped because their server no longer had the target_session_attrs.
    pub discarded_read_only: AtomicU64,
    pub idle_closed: AtomicU64,
    /// A session lost a prepared statement it made, or found another's name: a
    /// transaction-mode pooler is in front, so this pool stops preparing.
    pub prepared_off: AtomicBool,
    /// The latest checkout waits (µs), for percentiles.
    waits_us: Mutex<VecDeque<u64>>,
}

const WAIT_SAMPLES: usize = 1024;

impl PoolStats {
    pub fn record_wait(&self, waited: Duration) {
        let mut w = self.waits_us.lock();
        if w.len() == WAIT_SAMPLES {
            w.pop_front();
        }
        w.push_back(waited.as_micros() as u64);
    }

    /// Wait-time percentiles in milliseconds over the latest checkouts.
    pub fn wait_percentile_ms(&self, q: f64) -> f64 {
        let mut v: Vec<u64> = self.waits_us.lock().iter().copied().collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i] as f64 / 1000.0
    }
}

/// False when the server reported (ParameterStatus, PostgreSQL 14+) a state that
/// `target` refuses: a standby promoted under `standby`, a server turned read-only under
/// `read-write`. Unknown (older servers) counts as admitted.
/// `own_settings`: the session changed its own settings, so only `in_hot_standby` counts.
pub fn admits_target(session: &Session, target: tokio_postgres::config::TargetSessionAttrs, own_settings: bool) -> bool {
    use tokio_postgres::config::TargetSessionAttrs::{Any, PreferStandby};
    if matches!(target, Any | PreferStandby) {
        return true;
    }
    let on = |name| session.shared.parameter(name).map(|v| v == "on");
    match (on("in_hot_standby"), on("default_transaction_read_only")) {
        (Some(hot_standby), Some(read_only)) => target.admits(hot_standby, read_only && !own_settings),
        _ => true,
    }
}

/// True once the server side of the session is gone (its connection task has ended).
pub fn is_gone(session: &Session) -> bool {
    session.client.is_closed() || session.shared.ended.load(Ordering::Acquire)
}

/// Lets the runtime read what is pending on idle sockets, so a session the server ended
/// while it sat in the pool (restart, pg_terminate_backend) is seen as gone. The
/// current-thread runtime never polls idle sessions by itself.
pub async fn observe_idle_sockets() {
    for _ in 0..2 {
        tokio::task::yield_now().await;
    }
}

/// Whether an idle session's socket has anything to read (a termination message, EOF, an
/// error, a notification): one `poll` with no wait. Only then does checkout let the runtime
/// read it (`observe_idle_sockets`, two scheduler rounds); a quiet socket costs one syscall.
pub(crate) fn idle_socket_has_news(session: &Session) -> bool {
    let Some(fd) = session.client.socket_fd() else { return true };
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one valid pollfd; the session's connection (which owns fd) is alive here.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready != 0
}

/// Unread notifications kept per session; beyond this the oldest are kept, newer dropped.
const MAX_QUEUED_NOTIFICATIONS: usize = 10_000;

const REMEMBERED_PARAMS: [&str; 8] = [
    "TimeZone",
    "server_version",
    "server_encoding",
    "client_encoding",
    "integer_datetimes",
    "standard_conforming_strings",
    "in_hot_standby",
    "default_transaction_read_only",
];

impl managed::Manager for PgManager {
    type Type = Session;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Session, tokio_postgres::Error> {
        // Boxed: the connect future (TLS handshake included) is ~15 KB, and inline it made
        // every checkout's future that large, copied on each move.
        let (client, connection) = Box::pin(self.config.connect(self.tls.clone())).await?;
        let conn = Arc::new(Mutex::new(connection));
        let shared = Arc::new(SessionShared {
            server: Mutex::new(Some(Box::new(SharedConn(conn.clone())))),
            last_params: Mutex::new(HashMap::new()),
            notices: Mutex::new(Vec::new()),
            backend_pid: OnceLock::new(),
            ended: AtomicBool::new(false),
            ended_notify: Notify::new(),
            statements: Mutex::new(Default::default()),
            notifications: Mutex::new(VecDeque::new()),
            notified: Notify::new(),
        });
        tokio::spawn(drive(conn, shared.clone()));
        if !self.setup_sql.is_empty() {
            client.batch_execute(&self.setup_sql).await?;
        }
        Ok(Session { client, shared })
    }

    async fn recycle(&self, session: &mut Session, metrics: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if !is_gone(session) && idle_socket_has_news(session) {
            observe_idle_sockets().await;
        }
        if is_gone(session) {
            self.stats.discarded_dead.fetch_add(1, Ordering::Relaxed);
            return Err(RecycleError::message("connection closed by the server"));
        }
        if !admits_target(session, self.config.get_target_session_attrs(), false) {
            self.stats.discarded_read_only.fetch_add(1, Ordering::Relaxed);
            return Err(RecycleError::message("the server no longer has the session attributes asked for"));
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
            Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => {
                let mut queue = shared.notifications.lock();
                if queue.len() < MAX_QUEUED_NOTIFICATIONS {
                    queue.push_back((n.channel().to_string(), n.payload().to_string(), n.process_id()));
                }
                drop(queue);
                shared.notified.notify_waiters();
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
    shared.notified.notify_waiters();
}

pub type PgPool = Pool<PgManager>;
pub type PooledSession = Object<PgManager>;

/// A pool and what goes with it.
#[derive(Clone)]
pub struct PoolHandle {
    pub pool: PgPool,
    /// Sessions beyond `max_size` when the user asked for no pool (stock Django never
    /// makes a thread wait): opened on demand and closed after use, never pooled.
    pub overflow: PgPool,
    pub stats: Arc<PoolStats>,
}

type PoolKey = (ConnectSpec, PoolSpec);

static POOLS: Mutex<Option<(u32, HashMap<PoolKey, PoolHandle>)>> = Mutex::new(None);

/// Builds the tokio-postgres configuration for a spec. `Err` is a user-facing message.
pub fn build_config(spec: &ConnectSpec) -> Result<(Config, Connector), String> {
    let mut config = Config::new();
    crate::hosts::apply(&mut config, spec.targets())?;
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
    let (mode, verify) = crate::tls::parse_sslmode(&spec.sslmode, spec.sslrootcert.is_some())?;
    // As libpq: no TLS over Unix-domain sockets (there is no host name to verify either).
    // A hostaddr means TCP whatever the host names.
    let unix_only = config.get_hostaddrs().is_empty()
        && !config.get_hosts().is_empty()
        && config.get_hosts().iter().all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
    config.ssl_mode(if unix_only && mode == tokio_postgres::config::SslMode::Prefer {
        tokio_postgres::config::SslMode::Disable
    } else {
        mode
    });
    let tls = crate::tls::connector(verify, spec.sslrootcert.as_deref())?;
    Ok((config, tls))
}

/// The pool for these parameters in this process, created on first use.
pub fn pool_for(spec: &ConnectSpec, pool_spec: &PoolSpec) -> Result<PoolHandle, String> {
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
    let stats = Arc::new(PoolStats::default());
    let build = |max_size: usize| {
        let manager = PgManager {
            setup_sql: session_setup_sql(spec),
            config: config.clone(),
            tls: tls.clone(),
            spec: pool_spec.clone(),
            stats: stats.clone(),
        };
        Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(pool_spec.timeout))
            .create_timeout(crate::hosts::connect_deadline(spec.targets()))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| e.to_string())
    };
    let handle = PoolHandle { pool: build(pool_spec.max_size.max(1))?, overflow: build(OVERFLOW_LIMIT)?, stats };
    pools.insert(key, handle.clone());
    start_idle_reaper();
    Ok(handle)
}

/// Far above any server's max_connections: the server, not the pool, says no.
const OVERFLOW_LIMIT: usize = 100_000;

static REAPER_PID: Mutex<u32> = Mutex::new(0);

/// Closes sessions idle longer than `max_idle` (or ended by the server) every few
/// seconds, from a thread of its own: nothing else runs while a process serves no
/// requests, and deadpool only checks idleness at checkout.
fn start_idle_reaper() {
    let pid = runtime::current_pid();
    let mut owner = REAPER_PID.lock();
    if *owner == pid {
        return;
    }
    *owner = pid;
    let _ = std::thread::Builder::new().name("django_rustpg-reaper".into()).spawn(move || loop {
        std::thread::sleep(REAP_EVERY);
        if runtime::current_pid() != pid {
            return;
        }
        reap_idle();
    });
}

const REAP_EVERY: Duration = Duration::from_secs(5);

/// One pass of the idle reaper (also called by tests).
pub fn reap_idle() {
    let handles: Vec<(PoolSpec, PoolHandle)> = {
        let slot = POOLS.lock();
        match slot.as_ref() {
            Some((owner, pools)) if *owner == runtime::current_pid() => {
                pools.iter().map(|((_, ps), h)| (ps.clone(), h.clone())).collect()
            }
            _ => return,
        }
    };
    let mut closing = Vec::new();
    runtime::block_on_unlocked(async {
        observe_idle_sockets().await;
        for (spec, handle) in &handles {
            let keep = spec.min_size;
            let mut kept = 0usize;
            let mut dead = 0u64;
            let removed = handle.pool.retain(|session, metrics| {
                if is_gone(session) {
                    dead += 1;
                    return false;
                }
                let idle_too_long = spec.max_idle.is_some_and(|max| metrics.last_used() > max);
                let ok = !idle_too_long || kept < keep;
                kept += ok as usize;
                ok
            });
            handle.stats.discarded_dead.fetch_add(dead, Ordering::Relaxed);
            handle.stats.idle_closed.fetch_add(removed.removed.len() as u64 - dead, Ordering::Relaxed);
            closing.extend(removed.removed.into_iter().map(|s| s.shared.clone()));
        }
        wait_all_ended(std::mem::take(&mut closing)).await;
    });
}

/// Drops every pool of this process (tests, and `close_all()` after settings change).
pub fn close_all() {
    let pid = runtime::current_pid();
    let mut slot = POOLS.lock();
    if let Some((owner, pools)) = slot.take() {
        if owner == pid {
            for handle in pools.values() {
                handle.pool.close();
                handle.overflow.close();
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

/// Dropping a client queues its Terminate; waits (briefly) until each connection task has
/// sent it and the server has seen the session go.
async fn wait_all_ended(sessions: Vec<Arc<SessionShared>>) {
    for shared in sessions {
        let _ = tokio::time::timeout(Duration::from_secs(2), shared.wait_ended()).await;
    }
}

/// Closes every idle pooled session of this process and waits (briefly) until the server
/// has seen them go. Used before CREATE/ALTER/DROP DATABASE.
pub async fn close_idle_sessions() {
    let pools: Vec<PgPool> = {
        let slot = POOLS.lock();
        match slot.as_ref() {
            Some((owner, pools)) if *owner == runtime::current_pid() => pools.values().map(|h| h.pool.clone()).collect(),
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
    wait_all_ended(closing).await;
}

/// Closes and forgets the pool for these parameters (Django's `close_pool()`).
pub fn close_pool(spec: &ConnectSpec, pool_spec: &PoolSpec) {
    let mut slot = POOLS.lock();
    if let Some((owner, pools)) = slot.as_mut() {
        if *owner == runtime::current_pid() {
            if let Some(handle) = pools.remove(&(spec.clone(), pool_spec.clone())) {
                handle.pool.close();
                handle.overflow.close();
            }
        }
    }
}
