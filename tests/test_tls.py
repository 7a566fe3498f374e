"""TLS against a throwaway PostgreSQL server started with ssl=on.

A small CA and a server certificate it signs (subjectAltName DNS:localhost only) are made
with the `openssl` CLI; the server runs from this machine's initdb/pg_ctl, as an
unprivileged user when we are root (scripts/find_pg.py's helpers do that part).
"""
import importlib.util
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from django_rustpg import dbapi

ROOT = Path(__file__).resolve().parent.parent


def _find_pg():
    spec = importlib.util.spec_from_file_location("find_pg", ROOT / "scripts" / "find_pg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")


def _make_certificates(d: Path):
    """ca.crt signs server.crt (SAN DNS:localhost); other-ca.crt is an unrelated CA."""
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost\n"
    )
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=rustpg test {ca}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.crt", "-extfile", "server.ext",
        cwd=d,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tls_server():
    if not shutil.which("openssl"):
        pytest.skip("TLS cannot be set up: the openssl CLI is not installed (needed to make certificates)")
    fp = _find_pg()
    try:
        bindir, user = fp.pg_bindir(), fp.server_user()
    except fp.Skip as e:
        pytest.skip(f"TLS cannot be set up: no PostgreSQL server binaries to start one ({e})")
    tmp = fp.new_tmpdir("tls", user)
    pgdata = tmp / "data"
    pg_ctl = os.path.join(bindir, "pg_ctl")
    started = False
    try:
        certs = tmp / "certs"
        certs.mkdir()
        _make_certificates(certs)
        if user:
            pw = __import__("pwd").getpwnam(user)
            for f in [certs, *certs.iterdir()]:
                os.chown(f, pw.pw_uid, pw.pw_gid)
        (certs / "server.key").chmod(0o600)
        certs.chmod(0o755)
        for f in ("ca.crt", "other-ca.crt", "server.crt"):
            (certs / f).chmod(0o644)
        r = subprocess.run(
            fp.as_user(user, [os.path.join(bindir, "initdb"), "-D", str(pgdata), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
            cwd=tmp, capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            pytest.skip(f"TLS cannot be set up: initdb failed: {r.stderr.strip()[-300:]}")
        port = fp.free_port()
        opts = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c ssl=on -c ssl_cert_file={certs / 'server.crt'} -c ssl_key_file={certs / 'server.key'}"
        )
        r = subprocess.run(
            fp.as_user(user, [pg_ctl, "-D", str(pgdata), "-l", str(tmp / "log"), "-w", "-t", "60", "-o", opts, "start"]),
            cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
            pytest.fail(f"PostgreSQL with ssl=on did not start: {r.stderr}\n{log[-2000:]}")
        started = True
        yield {
            "params": {"host": "127.0.0.1", "port": port, "user": "postgres", "dbname": "postgres", "pool": False},
            "ca": str(certs / "ca.crt"),
            "other_ca": str(certs / "other-ca.crt"),
        }
    finally:
        if started:
            subprocess.run(fp.as_user(user, [pg_ctl, "-D", str(pgdata), "-m", "immediate", "-w", "stop"]), cwd="/", capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def ssl_in_use(conn):
    cur = conn.cursor()
    cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    row = cur.fetchone()
    cur.close()
    return row


def test_sslmode_require(tls_server):
    c = dbapi.connect(**tls_server["params"], sslmode="require")
    try:
        ssl, version = ssl_in_use(c)
        assert ssl is True and version.startswith("TLS")
    finally:
        c.close()


def test_sslmode_prefer_uses_tls_when_offered(tls_server):
    c = dbapi.connect(**tls_server["params"], sslmode="prefer")
    try:
        assert ssl_in_use(c)[0] is True
    finally:
        c.close()


def test_sslmode_disable_is_plain(tls_server):
    c = dbapi.connect(**tls_server["params"], sslmode="disable")
    try:
        assert ssl_in_use(c)[0] is False
    finally:
        c.close()


def test_sslmode_verify_ca(tls_server):
    c = dbapi.connect(**tls_server["params"], sslmode="verify-ca", sslrootcert=tls_server["ca"])
    try:
        # 127.0.0.1 is not in the certificate: verify-ca does not check the name.
        assert ssl_in_use(c)[0] is True
    finally:
        c.close()


def test_sslmode_verify_ca_with_an_untrusted_ca_fails(tls_server):
    with pytest.raises(dbapi.OperationalError):
        dbapi.connect(**tls_server["params"], sslmode="verify-ca", sslrootcert=tls_server["other_ca"])


def test_sslmode_verify_full_with_a_wrong_host_name_fails(tls_server):
    # The certificate names "localhost"; we connect to "127.0.0.1".
    with pytest.raises(dbapi.OperationalError):
        dbapi.connect(**tls_server["params"], sslmode="verify-full", sslrootcert=tls_server["ca"])


def test_sslmode_verify_full_with_the_right_host_name(tls_server):
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo("localhost", None, socket.AF_INET)}
    except OSError:
        addresses = set()
    if "127.0.0.1" not in addresses:
        pytest.skip("'localhost' does not resolve to 127.0.0.1 here, so the certificate's name cannot be reached")
    params = {**tls_server["params"], "host": "localhost"}
    c = dbapi.connect(**params, sslmode="verify-full", sslrootcert=tls_server["ca"])
    try:
        assert ssl_in_use(c)[0] is True
    finally:
        c.close()


def test_missing_root_certificate_file(tls_server, tmp_path):
    with pytest.raises(dbapi.OperationalError, match="root certificate"):
        dbapi.connect(**tls_server["params"], sslmode="verify-ca", sslrootcert=str(tmp_path / "missing.crt"))
