"""Sizes of a Lambda code bundle (no CDK import, so reporting stays instant)."""

from __future__ import annotations

from pathlib import Path

# Lambda refuses a function whose unzipped code (with its layers) is larger than this.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


def directory_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
