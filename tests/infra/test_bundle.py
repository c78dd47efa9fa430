"""The real Lambda bundle, built the way `make synth` builds it: locally, no Docker.

One synthesis with bundling on (the other fixtures skip it); every check reads its output.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from infra.bundling import FUNCTIONS_DIR, MACHINE, PACKAGE, PYTHON_VERSION, REQUIREMENTS, find_installer
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
    assert not list((asset / PACKAGE).rglob("__pycache__"))
    assert not (asset / "bin").exists()


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
