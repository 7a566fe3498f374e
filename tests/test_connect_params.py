"""connect_params.check_connect_value: the rules connect() applies to libpq keyword values,
asked without connecting (Django's OPTIONS are checked with it when the settings are read)."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_rustpg import _native, dbapi
from django_rustpg.options import validate_options

VALID = {
    "sslmode": ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
    "target_session_attrs": ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
    "load_balance_hosts": ["disable", "random"],
}


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in VALID.items() for v in vs])
def test_libpq_values_pass(key, value):
    assert _native.check_connect_value(key, value) is None
    validate_options({key: value}, {})


@pytest.mark.parametrize("key", sorted(VALID))
@pytest.mark.parametrize("value", ["bogus", "", "Read-Write "])
def test_bad_values_name_key_and_value_as_connect_does(key, value, dsn_params):
    with pytest.raises(dbapi.ProgrammingError, match=key) as checked:
        _native.check_connect_value(key, value)
    assert f'"{value}"' in str(checked.value)
    with pytest.raises(ImproperlyConfigured, match=f"OPTIONS\\['{key}'\\]"):
        validate_options({key: value}, {})
    # connect() refuses the same value, by the same rule.
    with pytest.raises(dbapi.Error, match=key):
        dbapi.connect(**dsn_params, **{key: value}).close()


def test_unknown_key_is_refused():
    with pytest.raises(dbapi.ProgrammingError, match="gssencmode"):
        _native.check_connect_value("gssencmode", "disable")


@pytest.mark.parametrize("key,value", [("keepalives", "0"), ("keepalives", 1), ("keepalives_idle", 30), ("keepalives_idle", "0")])
def test_keepalive_values_pass(key, value):
    assert _native.check_connect_value(key, str(value)) is None
    validate_options({key: value}, {})


@pytest.mark.parametrize("key,value", [("keepalives", "on"), ("keepalives_idle", "-1"), ("keepalives_idle", "1.5")])
def test_bad_keepalive_values_are_refused_naming_the_key(key, value, dsn_params):
    with pytest.raises(ImproperlyConfigured, match=f"OPTIONS\\['{key}'\\].*{value}"):
        validate_options({key: value}, {})
    with pytest.raises(dbapi.Error, match=key):
        dbapi.connect(**dsn_params, **{key: value}).close()


def test_keepalive_idle_reaches_the_socket(dsn_params):
    """keepalives_idle is applied (not accepted and ignored): the server sees a client socket
    whose keepalive idle time is the one asked, read from its side of the TCP connection."""
    if str(dsn_params["host"]).startswith("/"):
        pytest.skip("a Unix-domain socket has no TCP keepalives")
    import os
    import socket

    conn = dbapi.connect(**dsn_params, keepalives_idle=37, pool=False)
    try:
        cur = conn.cursor()
        cur.execute("SELECT inet_client_port()")
        port = cur.fetchone()[0]
        # The client's own socket: found among this process's descriptors by its local port.
        found = None
        for fd in map(int, os.listdir("/proc/self/fd")):
            try:
                s = socket.socket(fileno=os.dup(fd))
            except OSError:
                continue
            try:
                if s.type == socket.SOCK_STREAM and s.getsockname()[1:2] == (port,):
                    found = (s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                             s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
            except (OSError, IndexError, TypeError):
                pass
            finally:
                os.close(s.detach())
        assert found == (1, 37), found
    finally:
        conn.close()
