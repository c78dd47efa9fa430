"""Figure 4, the cold-start proxy: each entry point imported (and invoked once) in fresh interpreters,
relative to ``import boto3`` measured in the same run, interleaved, medians.

Two ways to load code, both reported:

- ``source``: no bytecode cache, so every module is compiled as it is imported. This is what Lambda
  does with a bundle built where no Python of the runtime's version was found (``/var/task`` is
  read-only, so nothing is cached between cold starts either).
- ``bytecode``: a warm ``__pycache__`` (kept under a temporary ``PYTHONPYCACHEPREFIX``), as on a
  laptop after the first run, and as Lambda runs a bundle that ships its ``.pyc`` files (built
  where Python 3.13 is found: ``infra/bundling.py``).

The probes reach the benchmark's running stack: DynamoDB Local, the management API, the fake
model, and a stand-in for Secrets Manager that serves the Twilio auth token (a deployed
``$connect`` reads it from there once per cold start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median
from typing import Any

from local.servers import LOOPBACK

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("probe.py")
SCENARIOS = ("boto3", "ws_connect", "ws_disconnect", "ws_message", "webhook")
MODES = ("source", "bytecode")
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-twilio-auth-token"  # noqa: S105 (a name)


class SecretsManagerStandIn:
    """Answers ``GetSecretValue`` with one value, like Secrets Manager's JSON protocol."""

    def __init__(self, value: str) -> None:
        secret = value

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps(
                    {"ARN": SECRET_ARN, "Name": "bench", "SecretString": secret, "VersionId": "1", "CreatedDate": 0}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="secrets-stand-in", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}"

    def __enter__(self) -> SecretsManagerStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@dataclass(frozen=True)
class ProbeEnvironment:
    """What the probes need from the running stack."""

    env: Mapping[str, str]  # the stack's handler environment
    bind_connection: Callable[[str, str], None]  # (connection id, call SID): as a setup would


def run(probe_env: ProbeEnvironment, *, repeats: int, bytecode_repeats: int, upgrade_signature: str) -> dict[str, Any]:
    token = probe_env.env.get("TWILIO_AUTH_TOKEN", "")
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {m: {s: [] for s in SCENARIOS} for m in MODES}
    with (
        SecretsManagerStandIn(token) as secrets,
        tempfile.TemporaryDirectory(prefix="bench-nopyc-") as empty,
        tempfile.TemporaryDirectory(prefix="bench-pyc-") as cache,
    ):
        base = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
        base.update(probe_env.env)
        base.pop("TWILIO_AUTH_TOKEN", None)  # read from the Secrets Manager stand-in instead
        base.update(
            {
                "TWILIO_AUTH_TOKEN_SECRET_ARN": SECRET_ARN,
                "TWILIO_SIGNATURE_VALIDATION": "true",
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets.url,
                "BENCH_UPGRADE_SIGNATURE": upgrade_signature,
                "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
            }
        )
        envs = {
            "source": {**base, "PYTHONPYCACHEPREFIX": empty, "PYTHONDONTWRITEBYTECODE": "1"},
            "bytecode": {**base, "PYTHONPYCACHEPREFIX": cache},
        }
        envs["bytecode"].pop("PYTHONDONTWRITEBYTECODE", None)
        counter = 0

        def probe(mode: str, scenario: str) -> dict[str, Any]:
            nonlocal counter
            counter += 1
            conn, call = f"probe-{os.getpid()}-{counter}", f"CAprobe{os.getpid()}x{counter}"
            probe_env.bind_connection(conn, call)
            env = {**envs[mode], "BENCH_CONNECTION_ID": conn, "BENCH_CALL_SID": call}
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                subprocess.run(  # noqa: S603 (this interpreter, our own script)
                    [sys.executable, str(PROBE), scenario, out.name],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=True,
                    timeout=120,
                )
                return dict(json.loads(Path(out.name).read_text(encoding="utf-8")))

        if bytecode_repeats:
            for scenario in SCENARIOS:  # fill the bytecode cache (not measured)
                probe("bytecode", scenario)
        for i in range(max(repeats, bytecode_repeats)):  # interleaved: every scenario in every round
            for mode in MODES:
                if i >= (repeats if mode == "source" else bytecode_repeats):
                    continue
                for scenario in SCENARIOS:
                    samples[mode][scenario].append(probe(mode, scenario))
    return {mode: _summarise(samples[mode]) for mode in MODES if any(samples[mode].values())}


def _summarise(by_scenario: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(scenario: str, key: str) -> float | None:
        values = [float(s[key]) for s in by_scenario[scenario] if key in s]
        return round(median(values), 1) if values else None

    boto3_import = med("boto3", "import_ms") or float("nan")
    floor = (med("boto3", "import_ms") or 0.0) + (med("boto3", "call_ms") or 0.0)
    out: dict[str, Any] = {
        "repeats": len(by_scenario["boto3"]),
        "boto3_import_ms": boto3_import,
        "boto3_client_and_request_ms": med("boto3", "call_ms"),
        "entry_points": {},
    }
    for scenario in SCENARIOS[1:]:
        imp, call = med(scenario, "import_ms"), med(scenario, "call_ms")
        entry: dict[str, Any] = {
            "import_ms": imp,
            "import_ratio": None if imp is None else round(imp / boto3_import, 2),
        }
        if call is not None and imp is not None:
            entry["import_and_first_call_ms"] = round(imp + call, 1)
            entry["first_call_ratio"] = round((imp + call) / floor, 2) if floor else None
        runs = by_scenario[scenario]
        if runs:
            entry["modules_after_non_prompt_frames"] = runs[-1].get("after_non_prompt_frames")
            if "after_setup" in runs[-1]:
                entry["modules_after_setup"] = runs[-1]["after_setup"]
                entry["setup_ms"] = med(scenario, "setup_ms")
            if "status" in runs[-1]:
                entry["status"] = runs[-1]["status"]
        out["entry_points"][scenario] = entry
    out["first_call_floor_ms"] = round(floor, 1)
    return out
