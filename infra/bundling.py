"""Docker-free bundling of the one code asset every function runs.

The asset's source is ``functions/``: the ``voice_agent`` package and ``requirements.txt``, the
runtime dependencies exported from ``uv.lock`` (``make requirements`` regenerates it; a test checks
it matches the lock). Bundling installs exactly those pinned wheels for the Lambda platform
(manylinux2014, aarch64, CPython 3.13) next to a copy of the package: no CDK, no test tools.

It runs on the build machine with uv (the project's own tool) or, failing that, pip. Only if
neither exists does CDK fall back to the SAM build image, which needs Docker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infra.package_size import LAMBDA_UNZIPPED_LIMIT_BYTES, directory_size

RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64
PYTHON_VERSION = RUNTIME.name.removeprefix("python")  # "3.13"
MANYLINUX = "manylinux2014"
MACHINE = "aarch64"

PROJECT_DIR = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = PROJECT_DIR / "functions"
PACKAGE = "voice_agent"
REQUIREMENTS = "requirements.txt"

_NOT_SHIPPED = ("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True, slots=True)
class Installer:
    """A command that installs wheels for another platform into a directory."""

    kind: str  # "uv" or "pip"
    executable: str

    def command(self, requirements: Path, target: Path) -> list[str]:
        if self.kind == "uv":
            return [
                self.executable, "pip", "install", "--quiet",
                "--requirements", str(requirements), "--target", str(target),
                "--python-platform", f"{MACHINE}-{MANYLINUX}", "--python-version", PYTHON_VERSION,
                "--only-binary", ":all:", "--no-deps",
            ]  # fmt: skip
        return [
            self.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--requirement", str(requirements), "--target", str(target),
            "--platform", f"{MANYLINUX}_{MACHINE}", "--implementation", "cp", "--python-version", PYTHON_VERSION,
            "--only-binary=:all:", "--no-deps",
        ]  # fmt: skip


def find_installer() -> Installer | None:
    """uv if it can be found (``uv run`` sets ``UV``; ``make setup`` puts one in .tools/), else pip."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(PROJECT_DIR / ".tools" / "bin" / "uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Installer("uv", candidate)
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    return Installer("pip", sys.executable) if probe.returncode == 0 else None


def build_bundle(output_dir: Path, *, source_dir: Path = FUNCTIONS_DIR, installer: Installer | None = None) -> int:
    """Install the locked runtime dependencies and copy the package into ``output_dir``.

    Returns the bundle's unzipped size in bytes. Raises if no installer exists or if the bundle
    would be too large for Lambda.
    """
    installer = installer or find_installer()
    if installer is None:
        raise RuntimeError("bundling needs uv or pip: run `make setup` (or install uv) and try again")
    subprocess.run(installer.command(source_dir / REQUIREMENTS, output_dir), check=True)  # noqa: S603 - argv built above
    shutil.rmtree(output_dir / "bin", ignore_errors=True)  # console scripts with this machine's shebang
    shutil.copytree(source_dir / PACKAGE, output_dir / PACKAGE, ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
    size = directory_size(output_dir)
    if size > LAMBDA_UNZIPPED_LIMIT_BYTES:
        raise RuntimeError(f"the bundle is {size / 1e6:.0f} MB unzipped; Lambda allows 250 MB")
    return size


@jsii.implements(cdk.ILocalBundling)
class LocalBundler:
    """CDK's local bundling hook: build the bundle on this machine and tell CDK to skip Docker."""

    def __init__(self, source_dir: Path) -> None:
        # CDK does not pass the asset's source path to a local bundler, so it is given here.
        self._source_dir = source_dir

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_options: Any) -> bool:
        installer = find_installer()
        if installer is None:
            print("no uv or pip found (`make setup` installs uv): trying Docker bundling", file=sys.stderr)  # noqa: T201
            return False
        size = build_bundle(Path(output_dir), source_dir=self._source_dir, installer=installer)
        print(  # noqa: T201 - the size is part of make synth's report
            f"bundled {PACKAGE} + locked runtime dependencies for {MANYLINUX}_{MACHINE} / CPython {PYTHON_VERSION} "
            f"with {installer.kind}: {size / 1e6:.1f} MB unzipped (Lambda limit 250 MB)",
            file=sys.stderr,
        )
        return True


def docker_command() -> list[str]:
    """The same install inside the SAM build image, for machines with Docker but no uv or pip."""
    pip = Installer("pip", "python").command(Path("/asset-input") / REQUIREMENTS, Path("/asset-output"))
    return ["bash", "-c", " ".join([*pip, "&&", "cp", "-r", f"/asset-input/{PACKAGE}", "/asset-output/"])]


def runtime_code(source_dir: Path = FUNCTIONS_DIR) -> lambda_.Code:
    """The code asset shared by every function: ``voice_agent`` plus its locked dependencies."""
    return lambda_.Code.from_asset(
        str(source_dir),
        exclude=[f"**/{pattern}" for pattern in _NOT_SHIPPED],
        bundling=cdk.BundlingOptions(
            image=RUNTIME.bundling_image,
            command=docker_command(),
            local=LocalBundler(source_dir),
        ),
    )
