"""The real Lambda bundle, built the way `make synth` builds it: locally, no Docker.

One synthesis with bundling on (the other fixtures skip it); every check reads its output.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bundling import (
    FUNCTIONS_DIR,
    LAMBDA_CODE_ROOT,
    MACHINE,
    PACKAGE,
    PYTHON_VERSION,
    REQUIREMENTS,
    RUNTIME_PYTHON_ENV,
    docker_command,
    find_installer,
    find_runtime_python,
)
from infra.cli.bundle_size import code_assets
from infra.package_size import LAMBDA_UNZIPPED_LIMIT_BYTES, directory_size
from tests.infra.conftest import Synthesized, synthesize

PROJECT = Path(__file__).resolve().parents[2]
ELF_MACHINE_AARCH64 = 183
# Build and test tools that must never ship to Lambda.
NOT_RUNTIME = {
    "aws_cdk", "constructs", "jsii", "cdk_nag", "cfnlint", "publication", "typeguard",
    "pytest", "_pytest", "pytest_timeout", "hypothesis", "moto", "mypy", "ruff",
    "uvicorn", "websockets", "httpx", "boto3_stubs", "mypy_boto3_dynamodb",
}  # fmt: skip

pytestmark = pytest.mark.slow


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked_requirements() -> dict[str, str]:
    text = (FUNCTIONS_DIR / REQUIREMENTS).read_text(encoding="utf-8")
    return {_normalise(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", text, re.MULTILINE)}


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synthesized, Path]:
    synthesized = synthesize(tmp_path_factory.mktemp("bundled"), {})
    (asset,) = code_assets(synthesized.outdir)  # one asset, shared by every function
    return synthesized, asset


def test_bundle_holds_the_package_and_its_entry_points(bundled: tuple[Synthesized, Path]) -> None:
    _, asset = bundled
    for module in ("entry/ws_connect.py", "entry/ws_message.py", "entry/ws_disconnect.py", "env_names.py"):
        assert (asset / PACKAGE / module).is_file(), module
    assert (asset / PACKAGE / "agent" / "system_prompt.md").is_file()  # data files travel too
    assert not (asset / "bin").exists()


PYC_TAG = f"cpython-{PYTHON_VERSION.replace('.', '')}"
HASH_BASED_UNCHECKED = 0b01  # PEP 552 flags: hash-based, source not checked


def _run(python: str, code: str, *args: str) -> str:
    return subprocess.run(  # noqa: S603 - an interpreter of the runtime's version, fixed code
        [python, "-c", code, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_bytecode_is_the_runtimes_or_absent(bundled: tuple[Synthesized, Path]) -> None:
    """Lambda cannot write a bytecode cache into /var/task: the bundle ships one compiled by the
    runtime's Python when the build machine has it, and never one from another Python."""
    _, asset = bundled
    pycs = list(asset.rglob("*.pyc"))
    assert all(PYC_TAG in p.name for p in pycs), {p.name for p in pycs if PYC_TAG not in p.name}
    python = find_runtime_python()
    if python is None:
        assert not pycs  # the synth said so; each cold start compiles what it imports
        return
    cache = asset / PACKAGE / "entry" / "__pycache__"
    for module in ("ws_connect", "ws_message", "ws_disconnect", "webhook"):
        data = (cache / f"{module}.{PYC_TAG}.pyc").read_bytes()
        assert int.from_bytes(data[4:8], "little") == HASH_BASED_UNCHECKED, module
    assert (asset / "boto3" / "__pycache__" / f"__init__.{PYC_TAG}.pyc").is_file()
    magic = _run(python, "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())")
    assert (cache / f"ws_connect.{PYC_TAG}.pyc").read_bytes()[:4].hex() == magic
    # Tracebacks in Lambda name the files where Lambda unpacks them.
    filename = _run(
        python, "import marshal, sys; print(marshal.loads(open(sys.argv[1], 'rb').read()[16:]).co_filename)",
        str(cache / f"ws_connect.{PYC_TAG}.pyc"),
    )  # fmt: skip
    assert filename == f"{LAMBDA_CODE_ROOT}/{PACKAGE}/entry/ws_connect.py"


def test_the_runtime_loads_the_shipped_bytecode_without_compiling(
    bundled: tuple[Synthesized, Path], tmp_path: Path
) -> None:
    """Unchecked hash-based .pyc files are used as they are: proven by changing a source after
    compiling and importing the module under the runtime's Python with no cache writes."""
    python = find_runtime_python()
    if python is None:
        pytest.skip(f"no Python {PYTHON_VERSION} on this machine: the bundle ships no bytecode")
    _, asset = bundled
    copy = tmp_path / PACKAGE
    (copy / "__pycache__").mkdir(parents=True)
    for name in ("__init__.py", "env_names.py"):
        (copy / name).write_bytes((asset / PACKAGE / name).read_bytes())
    for name in (f"__init__.{PYC_TAG}.pyc", f"env_names.{PYC_TAG}.pyc"):
        (copy / "__pycache__" / name).write_bytes((asset / PACKAGE / "__pycache__" / name).read_bytes())
    (copy / "env_names.py").write_text("raise SystemExit('compiled from source')\n", encoding="utf-8")
    loaded = subprocess.run(  # noqa: S603 - fixed argv
        [python, "-B", "-c", f"import {PACKAGE}.env_names as m; print(m.__name__)"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == f"{PACKAGE}.env_names"


def test_only_an_interpreter_of_the_runtimes_version_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNTIME_PYTHON_ENV, sys.executable)  # this machine's Python, not 3.13
    found = find_runtime_python()
    if f"{sys.version_info.major}.{sys.version_info.minor}" != PYTHON_VERSION:
        assert found != sys.executable
    if found is not None:
        assert _run(found, "import sys; print('%d.%d' % sys.version_info[:2])") == PYTHON_VERSION


def test_bundle_holds_exactly_the_locked_runtime_dependencies(bundled: tuple[Synthesized, Path]) -> None:
    _, asset = bundled
    installed = {}
    for dist_info in asset.glob("*.dist-info"):
        name, version = dist_info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[_normalise(name)] = version
    locked = _locked_requirements()
    # Markers exclude a few (e.g. emscripten-only) packages on Lambda; nothing else may differ.
    assert set(installed) <= set(locked)
    assert {"aws-lambda-powertools", "boto3", "fastapi", "mangum", "openai", "twilio"} <= set(installed)
    for name, version in installed.items():
        assert locked[name] == version, name
    top_level = {p.name.removesuffix(".py") for p in asset.iterdir()}
    assert not top_level & NOT_RUNTIME


def test_compiled_extensions_are_for_lambda_arm64_and_its_python(bundled: tuple[Synthesized, Path]) -> None:
    _, asset = bundled
    shared_objects = list(asset.rglob("*.so"))
    assert shared_objects, "expected compiled wheels (pydantic-core, jiter, ...)"
    abi = f"cpython-{PYTHON_VERSION.replace('.', '')}"
    for so in shared_objects:
        header = so.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", so
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE_AARCH64, so
        tags = so.name.split(".")
        assert len(tags) == 2 or MACHINE in so.name or "abi3" in so.name, so
        assert "x86_64" not in so.name
        if "cpython" in so.name:
            assert abi in so.name, so


def test_bundle_fits_lambda_and_its_size_is_reported(
    bundled: tuple[Synthesized, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, asset = bundled
    size = directory_size(asset)
    assert size < LAMBDA_UNZIPPED_LIMIT_BYTES
    with capsys.disabled():  # the size is part of the tier's report
        print(  # noqa: T201
            f"\n[bundle] {size / 1e6:.1f} MB unzipped ({size / LAMBDA_UNZIPPED_LIMIT_BYTES:.0%} of Lambda's 250 MB)"
        )


def test_requirements_file_matches_the_lock() -> None:
    """functions/requirements.txt is what bundling installs; it must be exactly uv.lock's runtime set."""
    installer = find_installer()
    if installer is None or installer.kind != "uv":
        pytest.fail("uv is needed to check the requirements against uv.lock (run through `make test-infra`)")
    exported = subprocess.run(  # noqa: S603 - fixed argv
        [installer.executable, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--format", "requirements-txt", "--quiet"],
        cwd=PROJECT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#")]

    committed = (FUNCTIONS_DIR / REQUIREMENTS).read_text(encoding="utf-8")
    assert body(committed) == body(exported), "functions/requirements.txt is stale: run `make requirements`"


def test_the_docker_fallback_installs_copies_and_compiles_in_that_order() -> None:
    """Machines with neither uv nor pip bundle in the SAM image, whose Python is the runtime's."""
    shell, flag, script = docker_command()
    assert (shell, flag) == ("bash", "-c")
    install, copy, compile_ = script.split(" && ")
    assert install.startswith("python -m pip install") and "--target /asset-output" in install
    assert copy == f"cp -r /asset-input/{PACKAGE} /asset-output/"
    assert "compileall" in compile_ and "--invalidation-mode unchecked-hash" in compile_
    assert f"-p {LAMBDA_CODE_ROOT}" in compile_ and compile_.endswith("|| true )")
