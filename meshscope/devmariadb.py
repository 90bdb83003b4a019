"""MariaDB for the demo and the MySQL tests: the machine's server on 127.0.0.1:3306 when it answers, otherwise
a private ``mariadbd`` on a temporary datadir and a free port, started and stopped here."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from meshscope.devbroker import free_port


@dataclass
class MariaDB:
    host: str
    port: int
    user: str = "root"
    password: str = ""
    database: str = "test"
    process: subprocess.Popen | None = None
    datadir: Path | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
        if self.datadir is not None:
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.datadir = None


def _answers(host: str, port: int) -> bool:
    try:
        import pymysql

        pymysql.connect(host=host, port=port, user="root", password="", connect_timeout=2).close()
        return True
    except Exception:
        return False


def start_mariadb() -> MariaDB:
    if _answers("127.0.0.1", 3306):
        server = MariaDB("127.0.0.1", 3306)
    else:
        server = _start_private()
    import pymysql

    with pymysql.connect(host=server.host, port=server.port, user="root", password="") as conn:
        conn.cursor().execute("CREATE DATABASE IF NOT EXISTS test")
    return server


def _start_private() -> MariaDB:
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
    datadir = Path(tempfile.mkdtemp(prefix="meshscope-mariadb-"))
    port = free_port()
    subprocess.run([install, "--no-defaults", f"--datadir={datadir}", "--auth-root-authentication-method=normal",
                    "--user=root", "--skip-test-db"], check=True, capture_output=True)
    socket_path = datadir / "mysqld.sock"
    process = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={datadir}", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={socket_path}", "--user=root", "--skip-grant-tables=0", "--max-allowed-packet=64M",
         "--local-infile=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _answers("127.0.0.1", port):
            return MariaDB("127.0.0.1", port, process=process, datadir=datadir)
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("private mariadbd did not start within 60 s")
