"""Real remote stores for integration tests, on 127.0.0.1, each started and ALWAYS stopped by a context
manager: PostgreSQL (MLflow's backend store), an S3-compatible server (moto) and `mlflow server` with the
two behind it (tracking + registry in PostgreSQL, artifacts proxied to S3).

PostgreSQL comes from the `pgserver` wheel (binaries inside the package, in the `test` extra) or, where
that is not installed, from a `postgres` + `initdb` found on PATH or under /usr/lib/postgresql. It never
runs as root (PostgreSQL refuses to): as root the server runs as an existing unprivileged user
(`postgres`, else `nobody`) with its data dir in a private /tmp folder owned by that user, because
pytest's own tmp folder is closed to other users; the folder is deleted on exit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.services import free_port, mlflow_cli, wait_http

# Dummy credentials: moto accepts any; MLflow, boto3 and DVC only need them to be present.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "lfsd-test",
    "AWS_SECRET_ACCESS_KEY": "lfsd-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PG_USER = "lfsd"
PG_PASSWORD = "lfsd-test-pw"
PG_DB = "mlflow"


class ServiceUnavailable(RuntimeError):
    """No way to run this service on this machine (the caller skips, naming the reason)."""


def _tail(log: Path, n: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def _stop_group(
    proc: subprocess.Popen | None, first: int = signal.SIGTERM, wait: float = 20, leader_only: bool = False
) -> None:
    """Send `first` to the process group (or only its leader), wait, then SIGKILL whatever is left of the
    group. Every server here runs in a session of its own, so the group holds nothing else."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            if leader_only:
                os.kill(proc.pid, first)
            else:
                os.killpg(proc.pid, first)
            proc.wait(timeout=wait)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------ PostgreSQL


def postgres_bin_dir() -> Path:
    """The folder holding `postgres` and `initdb`: the pgserver wheel's, else a system installation."""
    spec = importlib.util.find_spec("pgserver")  # not imported: its module code is not needed
    if spec is not None and spec.origin:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel / "postgres").is_file() and (wheel / "initdb").is_file():
            return wheel
    candidates = []
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for d in candidates:
        if (d / "postgres").is_file() and (d / "initdb").is_file():
            return d
    raise ServiceUnavailable(
        "no PostgreSQL binaries: `pip install pgserver` (in the test extra) or a system postgres + initdb on PATH"
    )


def _unprivileged_user() -> pwd.struct_passwd | None:
    """None when not root; else the account PostgreSQL will run as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceUnavailable("running as root and no unprivileged account (postgres, nobody) to run PostgreSQL as")


def check_postgres_runnable() -> None:
    """Raise ServiceUnavailable (with the reason) where `postgres_server` cannot work on this machine."""
    postgres_bin_dir()
    _unprivileged_user()


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def uri(self) -> str:
        """SQLAlchemy URI, as MLflow's --backend-store-uri takes it. The driver is named: SQLAlchemy 2.1
        maps a bare `postgresql://` to psycopg 3, and the test extra installs psycopg2-binary."""
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def connect(self, database: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )


@contextlib.contextmanager
def postgres_server(workdir: Path, timeout: float = 90) -> Iterator[Postgres]:
    """initdb (password auth) + `postgres` on 127.0.0.1:<free port>, TCP only, fsync off; creates the
    database `mlflow`. Logs to workdir/postgres.log. Stopped with a fast shutdown (SIGINT), then SIGKILL."""
    import psycopg2

    bin_dir = postgres_bin_dir()
    account = _unprivileged_user()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "postgres.log"
    if account is None:
        base = workdir / "postgres"
        base.mkdir()
        private = False
    else:  # pytest's tmp folder (0700, root) is closed to the server's user
        base = Path(tempfile.mkdtemp(prefix="lfsd-pg-", dir="/tmp"))
        os.chown(base, account.pw_uid, account.pw_gid)
        private = True
    as_user = {} if account is None else {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
    port = free_port()
    proc = None
    try:
        pwfile = base / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        with log.open("w") as out:
            init = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(base / "data"),
                    "-U",
                    PG_USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                cwd=base,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                **as_user,
            )
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{_tail(log)}")
        with log.open("a") as out:
            proc = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(base / "data"),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "shared_buffers=32MB",
                    "-c",
                    "max_connections=40",
                ],
                cwd=base,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )
        server = Postgres("127.0.0.1", port, PG_USER, PG_PASSWORD, PG_DB)
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited {proc.returncode}:\n{_tail(log)}")
            try:
                con = server.connect("postgres")
                break
            except psycopg2.OperationalError as e:
                if time.time() > deadline:
                    raise TimeoutError(
                        f"postgres on port {port} not ready after {timeout:.0f} s ({e}):\n{_tail(log)}"
                    ) from None
                time.sleep(0.5)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {PG_DB}")
        con.close()
        yield server
    finally:
        # SIGINT to the postmaster alone: a fast shutdown (its children are its to stop)
        _stop_group(proc, first=signal.SIGINT, wait=30, leader_only=True)
        if private:
            shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------------ S3 (moto)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    @property
    def env(self) -> dict[str, str]:
        """What an S3 client (MLflow, boto3) needs to reach this server."""
        return {"MLFLOW_S3_ENDPOINT_URL": self.endpoint, **S3_CREDENTIALS}


def _moto_cli() -> list[str]:
    exe = Path(sys.executable).with_name("moto_server")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]


@contextlib.contextmanager
def s3_server(workdir: Path, bucket: str = "lfsd", timeout: float = 60) -> Iterator[S3Server]:
    """`moto_server` (in-memory S3) on 127.0.0.1:<free port>, with `bucket` created. Logs to
    workdir/moto.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | S3_CREDENTIALS
    proc = None
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                [*_moto_cli(), "-H", "127.0.0.1", "-p", str(port)],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(f"{endpoint}/moto-api/", proc, timeout, log)
        server = S3Server(endpoint, bucket)
        server.client().create_bucket(Bucket=bucket)
        yield server
    finally:
        _stop_group(proc)


# ------------------------------------------------------------------------------------------ MLflow


@dataclass(frozen=True)
class RemoteMlflow:
    uri: str  # tracking + registry URI for clients
    postgres: Postgres
    s3: S3Server
    artifacts: str  # the server's --artifacts-destination

    @property
    def client_env(self) -> dict[str, str]:
        """Environment for a client process: the tracking URI and the S3 endpoint and credentials."""
        return {"MLFLOW_TRACKING_URI": self.uri, **self.s3.env}


@contextlib.contextmanager
def mlflow_remote_server(
    workdir: Path, postgres: Postgres, s3: S3Server, prefix: str = "mlflow", timeout: float = 180
) -> Iterator[RemoteMlflow]:
    """`mlflow server --backend-store-uri postgresql://... --artifacts-destination s3://<bucket>/<prefix>`
    (one worker, no job execution) on 127.0.0.1:<free port>; clients upload and download artifacts
    through its proxy. Ready when /health answers (the schema migrations run before the server listens).
    Logs to workdir/mlflow-server.log."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "mlflow-server.log"
    artifacts = f"s3://{s3.bucket}/{prefix}"
    drop = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AWS_")}
    env |= s3.env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = None
    try:
        with log.open("w") as out:
            proc = subprocess.Popen(
                [
                    *mlflow_cli(),
                    "server",
                    "--backend-store-uri",
                    postgres.uri,
                    "--artifacts-destination",
                    artifacts,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                cwd=workdir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        uri = f"http://127.0.0.1:{port}"
        wait_http(f"{uri}/health", proc, timeout, log)
        yield RemoteMlflow(uri, postgres, s3, artifacts)
    finally:
        _stop_group(proc)


@contextlib.contextmanager
def remote_stores(workdir: Path, bucket: str = "lfsd") -> Iterator[RemoteMlflow]:
    """PostgreSQL + S3 + an MLflow server on both; all three stopped on exit, in reverse order."""
    with postgres_server(workdir) as pg, s3_server(workdir, bucket) as s3, mlflow_remote_server(workdir, pg, s3) as ml:
        yield ml
