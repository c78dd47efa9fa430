"""Docker-free bundling of the one code asset every function runs.

The asset's source is ``functions/``: the ``voice_agent`` package and ``requirements.txt``, the
runtime dependencies exported from ``uv.lock`` (``make requirements`` regenerates it; a test checks
it matches the lock). Bundling installs exactly those pinned wheels for the Lambda platform
(manylinux2014, aarch64, CPython 3.13) next to a copy of the package: no CDK, no test tools.

It runs on the build machine with uv (the project's own tool) or, failing that, pip. Only if
neither exists does CDK fall back to the SAM build image, which needs Docker.

Bytecode: Lambda unpacks the code into a read-only ``/var/task``, so Python cannot cache what it
compiles, and every cold start compiles every module it imports (``make bench``: ``import boto3``
takes ~5 times longer from source). When the build machine has an interpreter of the runtime's
version (``LAMBDA_PYTHON``, ``python3.13`` on the PATH, a pyenv version, or one uv finds), the bundle ships its
``.pyc`` files; otherwise the synth says so and the bundle works as before, only slower to start.
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
LAMBDA_CODE_ROOT = "/var/task"  # where Lambda unpacks the code: compiled paths name it in tracebacks
RUNTIME_PYTHON_ENV = "LAMBDA_PYTHON"
# Hash-based and unchecked: the asset's zip does not keep modification times exactly (2 s
# resolution at best), so timestamp-checked .pyc files would look stale and be compiled again.
_COMPILEALL = ["-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]


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


def _python_version(executable: str) -> str | None:
    probe = subprocess.run(  # noqa: S603 - an interpreter found on this machine, fixed arguments
        [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    return probe.stdout.strip() if probe.returncode == 0 else None


def find_runtime_python() -> str | None:
    """An interpreter of the Lambda runtime's Python version on this machine, if there is one."""
    candidates = [os.environ.get(RUNTIME_PYTHON_ENV), shutil.which(f"python{PYTHON_VERSION}")]
    # pyenv installs versions side by side, but its shim runs only the selected one.
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"))
    installer = find_installer()
    if installer is not None and installer.kind == "uv":
        found = subprocess.run(  # noqa: S603 - finds installed interpreters only, never downloads
            [installer.executable, "python", "find", "--no-project", "--python-preference", "system", PYTHON_VERSION],
            capture_output=True, text=True, check=False, timeout=30,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )  # fmt: skip
        if found.returncode == 0:
            candidates.append(found.stdout.strip())
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _python_version(candidate) == PYTHON_VERSION:
            return candidate
    return None


def compile_bytecode(bundle: Path, python: str) -> bool:
    """Compile every module in ``bundle`` with ``python``, as if it lived in ``/var/task``.

    A file that does not compile (some wheels ship sources for other Pythons) is left to compile
    at import, as without bytecode; returns False if there was any.
    """
    result = subprocess.run(  # noqa: S603 - argv built here
        [python, *_COMPILEALL, "-s", str(bundle), "-p", LAMBDA_CODE_ROOT, str(bundle)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        print(f"some modules did not compile (they compile at import):\n{result.stdout[-2000:]}", file=sys.stderr)  # noqa: T201
    return result.returncode == 0


def build_bundle(
    output_dir: Path,
    *,
    source_dir: Path = FUNCTIONS_DIR,
    installer: Installer | None = None,
    runtime_python: str | None = None,
) -> int:
    """Install the locked runtime dependencies and copy the package into ``output_dir``; with
    ``runtime_python`` (an interpreter of the runtime's version), compile the bytecode too.

    Returns the bundle's unzipped size in bytes. Raises if no installer exists or if the bundle
    would be too large for Lambda.
    """
    installer = installer or find_installer()
    if installer is None:
        raise RuntimeError("bundling needs uv or pip: run `make setup` (or install uv) and try again")
    subprocess.run(installer.command(source_dir / REQUIREMENTS, output_dir), check=True)  # noqa: S603 - argv built above
    shutil.rmtree(output_dir / "bin", ignore_errors=True)  # console scripts with this machine's shebang
    shutil.copytree(source_dir / PACKAGE, output_dir / PACKAGE, ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
    if runtime_python is not None:
        compile_bytecode(output_dir, runtime_python)
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
        python = find_runtime_python()
        size = build_bundle(Path(output_dir), source_dir=self._source_dir, installer=installer, runtime_python=python)
        bytecode = (
            f"bytecode compiled with {python}"
            if python
            else f"no bytecode: no Python {PYTHON_VERSION} here (install one, e.g. `uv python install "
            f"{PYTHON_VERSION}`, or set {RUNTIME_PYTHON_ENV}), so each cold start compiles what it imports"
        )
        print(  # noqa: T201 - the size is part of make synth's report
            f"bundled {PACKAGE} + locked runtime dependencies for {MANYLINUX}_{MACHINE} / CPython {PYTHON_VERSION} "
            f"with {installer.kind}: {size / 1e6:.1f} MB unzipped (Lambda limit 250 MB); {bytecode}",
            file=sys.stderr,
        )
        return True


def docker_command() -> list[str]:
    """The same install inside the SAM build image, for machines with Docker but no uv or pip."""
    pip = Installer("pip", "python").command(Path("/asset-input") / REQUIREMENTS, Path("/asset-output"))
    compile_ = ["python", *_COMPILEALL, "-s", "/asset-output", "-p", LAMBDA_CODE_ROOT, "/asset-output"]
    copy = ["cp", "-r", f"/asset-input/{PACKAGE}", "/asset-output/"]
    # The image's Python is the runtime's: compile there too (a file that fails is left as source).
    return ["bash", "-c", " ".join([*pip, "&&", *copy, "&&", "(", *compile_, "||", "true", ")"])]


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
