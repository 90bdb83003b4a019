"""A TLS connection (SSLRequest, then a TLS handshake) through the real proxy: forwarded byte for
byte, the decoder opaque from the SSLRequest on and the connection counted. The machine's MariaDB
has TLS off, so this module starts a private one with a throw-away certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
import pytest

from meshscope.devbroker import free_port
from tests.agents.mysql.support import ProxyRelay

pytestmark = pytest.mark.skipif(not shutil.which("openssl") or not Path("/usr/sbin/mariadbd").exists(),
                                reason="needs openssl and mariadbd")


@pytest.fixture(scope="module")
def tls_server():
    root = Path(tempfile.mkdtemp(prefix="meshscope-tls-mariadb-"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(root / "key.pem"),
                    "-out", str(root / "cert.pem"), "-days", "2", "-subj", "/CN=localhost"], check=True,
                   capture_output=True)
    # --no-defaults: the machine's my.cnf (user=mysql, its datadir) must not apply here
    subprocess.run([shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db", "--no-defaults",
                    f"--datadir={root / 'data'}", "--auth-root-authentication-method=normal", "--user=root",
                    "--skip-test-db"], check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={root / 'data'}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={root / 'mysqld.sock'}", "--user=root", "--skip-log-bin",
         f"--ssl-cert={root / 'cert.pem'}", f"--ssl-key={root / 'key.pem'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
            break
        except pymysql.MySQLError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("private TLS mariadbd did not start")
            time.sleep(0.2)
    yield port
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    shutil.rmtree(root, ignore_errors=True)


def test_tls_connection_is_opaque_forwarded_and_counted(tls_server, telemetry):
    relay = ProxyRelay("127.0.0.1", tls_server, telemetry).start()
    try:
        conn = pymysql.connect(host="127.0.0.1", port=relay.port, user="root",
                               ssl={"check_hostname": False, "verify_mode": ssl.CERT_NONE})
        cursor = conn.cursor()
        cursor.execute("SHOW STATUS LIKE 'Ssl_cipher'")
        assert cursor.fetchone()[1]  # really encrypted
        conn.close()
        plain = pymysql.connect(host="127.0.0.1", port=relay.port, user="root", ssl_disabled=True)
        plain.cursor().execute("SELECT 1")
        plain.close()
        relay.check_forwarding()
    finally:
        relay.stop()
    encrypted, clear = (c.observer.decoder.stats for c in relay.connections)
    assert encrypted.tls and encrypted.resyncs == 0 and encrypted.statements == 0 and not clear.tls
    assert [o["endpoint"] for o in telemetry.observations][-1] == "SELECT ?"  # the clear connection only
