"""Report the size of the Lambda code bundle in a synthesized cloud assembly.

    python -m infra.cli.bundle_size cdk.out [--no-zip]

Prints the unzipped size (Lambda allows 250 MB), the zipped size (what `cdk deploy` uploads) and
the largest top-level packages, so a fork that adds a dependency sees what it costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.package_size import LAMBDA_UNZIPPED_LIMIT_BYTES, directory_size


def code_assets(assembly: Path) -> Iterator[Path]:
    """The directories that CDK will zip for Lambda (file assets packaged as "zip")."""
    for manifest in sorted(assembly.glob("*.assets.json")):
        for asset in json.loads(manifest.read_text(encoding="utf-8")).get("files", {}).values():
            source = asset.get("source", {})
            if source.get("packaging") == "zip" and (assembly / source["path"]).is_dir():
                yield assembly / source["path"]


def zipped_size(directory: Path) -> int:
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(directory.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(directory))
        return handle.tell()


def largest(directory: Path, count: int = 6) -> list[tuple[str, int]]:
    sizes = [
        (entry.name, directory_size(entry) if entry.is_dir() else entry.stat().st_size)
        for entry in directory.iterdir()
        if not entry.name.endswith(".dist-info")
    ]
    return sorted(sizes, key=lambda item: item[1], reverse=True)[:count]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assembly", nargs="?", type=Path, default=Path("cdk.out"))
    parser.add_argument("--no-zip", action="store_true", help="skip the zipped size (it takes a few seconds)")
    args = parser.parse_args(argv)
    assets = list(code_assets(args.assembly))
    if not assets:
        print(f"no Lambda code asset in {args.assembly}: was bundling skipped?", file=sys.stderr)
        return 1
    for asset in assets:
        unzipped = directory_size(asset)
        files = sum(1 for f in asset.rglob("*") if f.is_file())
        line = f"Lambda bundle {asset.name[:18]}…: {unzipped / 1e6:.1f} MB unzipped in {files} files"
        line += f" ({unzipped / LAMBDA_UNZIPPED_LIMIT_BYTES:.0%} of Lambda's 250 MB)"
        if not args.no_zip:
            line += f", {zipped_size(asset) / 1e6:.1f} MB zipped"
        print(line)
        print("  largest: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in largest(asset)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
