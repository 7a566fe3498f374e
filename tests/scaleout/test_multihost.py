"""libpq's multi-host connection semantics against a real primary and standby, each answer
compared with psycopg 3 (libpq) on the same parameters."""

import socket
import threading
import time

import psycopg
import pytest

from django_rustpg import dbapi

LOCAL = "127.0.0.1"


def _ours(**params):
    c = dbapi.connect(user="postgres", dbname="postgres", pool=False, **params)
    try:
        cur = c.cursor()
        cur.execute("SELECT inet_server_port()")
        return cur.fetchone()[0]
    finally:
        c.close()


def _libpq(**params):
    with psycopg.connect(user="postgres", dbname="postgres", **params) as c:
        return c.execute("SELECT inet_server_port()").fetchone()[0]


def _both(**params):
    """(our answer, libpq's): the port connected to, or the exception class and message."""
    answers = []
    for connect in (_ours, _libpq):
        try:
            answers.append(connect(**params))
        except Exception as e:  # noqa: BLE001 - compared below
            answers.append((type(e).__name__, str(e)))
    return answers


# (target_session_attrs, listed first, expected) over HOST "127.0.0.1,127.0.0.1".
CASES = [
    ("any", "standby", "standby"),
    ("any", "primary", "primary"),
    ("read-write", "standby", "primary"),
    ("read-write", "primary", "primary"),
    ("primary", "standby", "primary"),
    ("primary", "primary", "primary"),
    ("read-only", "primary", "standby"),
    ("read-only", "standby", "standby"),
    ("standby", "primary", "standby"),
    ("standby", "standby", "standby"),
    ("prefer-standby", "primary", "standby"),
    ("prefer-standby", "standby", "standby"),
]


@pytest.mark.parametrize("attrs,first,expected", CASES)
def test_target_session_attrs_picks_the_server_libpq_picks(pg_pair, attrs, first, expected):
    nodes = {"primary": pg_pair.primary.port, "standby": pg_pair.standby.port}
    second = "standby" if first == "primary" else "primary"
    ours, libpq = _both(host=f"{LOCAL},{LOCAL}", port=f"{nodes[first]},{nodes[second]}", target_session_attrs=attrs)
    assert ours == nodes[expected]
    assert libpq == ours


@pytest.mark.parametrize("attrs,reason", [
    ("read-write", "session is read-only"),
    ("primary", "server is in hot standby mode"),
])
def test_no_server_with_the_attributes_is_an_operational_error(pg_pair, attrs, reason):
    with pytest.raises(dbapi.OperationalError, match=reason):
        _ours(host=LOCAL, port=pg_pair.standby.port, target_session_attrs=attrs)


@pytest.mark.parametrize("attrs,reason", [
    ("read-only", "session is not read-only"),
    ("standby", "server is not in hot standby mode"),
])
def test_no_standby_is_an_operational_error(pg_pair, attrs, reason):
    with pytest.raises(dbapi.OperationalError, match=reason):
        _ours(host=LOCAL, port=pg_pair.primary.port, target_session_attrs=attrs)


def test_prefer_standby_falls_back_to_the_primary(pg_pair):
    dead = _refused_port()
    port = f"{dead},{pg_pair.primary.port}"
    assert _ours(host=f"{LOCAL},{LOCAL}", port=port, target_session_attrs="prefer-standby") == pg_pair.primary.port
    assert _libpq(host=f"{LOCAL},{LOCAL}", port=port, target_session_attrs="prefer-standby") == pg_pair.primary.port


@pytest.mark.parametrize("key,value,message", [
    ("target_session_attrs", "bogus", 'invalid target_session_attrs value: "bogus"'),
    ("target_session_attrs", "", 'invalid target_session_attrs value: ""'),
    ("load_balance_hosts", "sometimes", 'invalid load_balance_hosts value: "sometimes"'),
    ("port", "x", 'invalid integer value "x" for connection option "port"'),
    ("hostaddr", "not-an-address", 'could not parse network address "not-an-address"'),
])
def test_bogus_values_are_errors_naming_the_key(pg_pair, key, value, message):
    params = {"host": LOCAL, "port": pg_pair.primary.port, key: value}
    with pytest.raises(dbapi.OperationalError) as info:
        _ours(**params)
    assert message in str(info.value)
    with pytest.raises(psycopg.OperationalError, match=message.split(":")[0]):
        _libpq(**params)


def test_unknown_keyword_is_a_programming_error(pg_pair):
    with pytest.raises(dbapi.ProgrammingError, match='invalid connection option "target_sesion_attrs"'):
        _ours(host=LOCAL, port=pg_pair.primary.port, target_sesion_attrs="read-write")


def test_port_count_must_match_host_count(pg_pair):
    with pytest.raises(dbapi.OperationalError, match="could not match 3 port numbers to 2 hosts"):
        _ours(host=f"{LOCAL},{LOCAL}", port=f"{pg_pair.primary.port},1,2")


def _refused_port():
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]


def test_one_port_for_every_host(pg_pair):
    # 127.0.0.2 is loopback too, but no server listens there: refused, then the next host.
    host = f"127.0.0.2,{LOCAL}"
    assert _ours(host=host, port=pg_pair.standby.port) == pg_pair.standby.port
    assert _libpq(host=host, port=pg_pair.standby.port) == pg_pair.standby.port


def test_empty_port_entry_means_the_default(pg_pair):
    # "port=,N": the first host gets 5432 (as libpq); 127.0.0.2:5432 refuses.
    assert _ours(host=f"127.0.0.2,{LOCAL}", port=f",{pg_pair.primary.port}") == pg_pair.primary.port


def test_hostaddr_skips_name_resolution(pg_pair):
    # The host name does not resolve; hostaddr is what is dialled (and host names the server).
    params = {"host": "db.invalid", "hostaddr": LOCAL, "port": pg_pair.primary.port, "sslmode": "disable"}
    assert _ours(**params) == pg_pair.primary.port
    assert _libpq(**params) == pg_pair.primary.port


def test_hostaddr_list_pairs_with_hosts(pg_pair):
    params = {"host": "a.invalid,b.invalid", "hostaddr": f"127.0.0.2,{LOCAL}",
              "port": f"{pg_pair.primary.port},{pg_pair.standby.port}", "sslmode": "disable"}
    assert _ours(**params) == pg_pair.standby.port
    with pytest.raises(dbapi.OperationalError, match="could not match 2 host names with 1 hostaddr values"):
        _ours(host="a.invalid,b.invalid", hostaddr=LOCAL, port=pg_pair.primary.port)


def test_load_balance_hosts_random_varies_and_disable_does_not(pg_pair):
    ports = f"{pg_pair.primary.port},{pg_pair.standby.port}"
    seen = {_ours(host=f"{LOCAL},{LOCAL}", port=ports, load_balance_hosts="random") for _ in range(40)}
    assert seen == {pg_pair.primary.port, pg_pair.standby.port}
    seen = {_ours(host=f"{LOCAL},{LOCAL}", port=ports, load_balance_hosts="disable") for _ in range(10)}
    assert seen == {pg_pair.primary.port}


def test_service_file(pg_pair, tmp_path, monkeypatch):
    f = tmp_path / "pg_service.conf"
    f.write_text(
        "# a comment\n"
        f"[both]\nhost={LOCAL},{LOCAL}\nport={pg_pair.standby.port},{pg_pair.primary.port}\n"
        "target_session_attrs=read-write\n"
        f"[replica]\nhost={LOCAL}\nport={pg_pair.standby.port}\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(f))
    assert _ours(service="both") == pg_pair.primary.port
    assert _libpq(service="both") == pg_pair.primary.port
    # Keys given explicitly win over the file's.
    assert _ours(service="both", target_session_attrs="read-only") == pg_pair.standby.port
    assert _ours(service="replica") == pg_pair.standby.port
    with pytest.raises(dbapi.OperationalError, match='definition of service "nope" not found'):
        _ours(service="nope")
    monkeypatch.setenv("PGSERVICE", "replica")
    assert _ours() == pg_pair.standby.port


def test_service_from_the_system_file(pg_pair, tmp_path, monkeypatch):
    (tmp_path / "pg_service.conf").write_text(f"[sys]\nhost={LOCAL}\nport={pg_pair.standby.port}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "missing.conf"))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path))
    assert _ours(service="sys") == pg_pair.standby.port


def test_bad_service_file_line_is_an_error(pg_pair, tmp_path, monkeypatch):
    f = tmp_path / "pg_service.conf"
    f.write_text("[x]\nhost\n")
    monkeypatch.setenv("PGSERVICEFILE", str(f))
    with pytest.raises(dbapi.OperationalError, match="syntax error in service file .*line 2"):
        _ours(service="x")
    f.write_text("[x]\nfavourite_colour=blue\n")
    with pytest.raises(dbapi.OperationalError, match='invalid connection option "favourite_colour"'):
        _ours(service="x")


class _Silent:
    """A TCP listener that accepts connections and never answers (a hung server)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((LOCAL, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def test_connect_timeout_applies_to_each_host(pg_pair):
    silent = _Silent()
    try:
        started = time.monotonic()
        port = _ours(host=f"{LOCAL},{LOCAL}", port=f"{silent.port},{pg_pair.primary.port}", connect_timeout=2)
        took = time.monotonic() - started
    finally:
        silent.close()
    assert port == pg_pair.primary.port
    assert 1.5 < took < 6, took


def test_connect_timeout_on_a_single_hung_host_is_an_operational_error(pg_pair):
    silent = _Silent()
    try:
        started = time.monotonic()
        with pytest.raises(dbapi.OperationalError, match="timeout expired"):
            _ours(host=LOCAL, port=silent.port, connect_timeout=2)
        assert time.monotonic() - started < 6
    finally:
        silent.close()


def test_info_reports_the_host_connected_to(pg_pair):
    c = dbapi.connect(user="postgres", dbname="postgres", pool=False, host=f"127.0.0.2,{LOCAL}",
                      port=f"{pg_pair.primary.port},{pg_pair.standby.port}")
    try:
        assert (c.info.host, c.info.port) == (LOCAL, pg_pair.standby.port)
    finally:
        c.close()
    with psycopg.connect(user="postgres", dbname="postgres", host=f"127.0.0.2,{LOCAL}",
                         port=f"{pg_pair.primary.port},{pg_pair.standby.port}") as s:
        assert (s.info.host, s.info.port) == (LOCAL, pg_pair.standby.port)


def test_cancel_reaches_the_server_of_the_session(pg_pair):
    # The session is on the second host of the list, with a port of its own.
    c = dbapi.connect(user="postgres", dbname="postgres", pool=False, host=f"{LOCAL},{LOCAL}",
                      port=f"{pg_pair.standby.port},{pg_pair.primary.port}", target_session_attrs="read-write")
    try:
        assert c.info.port == pg_pair.primary.port
        threading.Timer(0.5, c.cancel).start()
        started = time.monotonic()
        with pytest.raises(dbapi.errors.QueryCanceled):
            c.cursor().execute("SELECT pg_sleep(20)")
        assert time.monotonic() - started < 10
    finally:
        c.close()
