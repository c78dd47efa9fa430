"""Read the outputs of a deployed stack from ``cdk-outputs.json`` (``make deploy`` writes it).

python -m infra.cli.stack_outputs cdk-outputs.json      # print them, with what to do next
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from infra import outputs

DEFAULT_FILE = Path("cdk-outputs.json")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def load_outputs(path: Path, stack: str | None = None) -> Mapping[str, str]:
    """The outputs of ``stack`` (or of the only stack in the file)."""
    return load_stack(path, stack)[1]


def load_stack(path: Path, stack: str | None = None) -> tuple[str, Mapping[str, str]]:
    """The name and outputs of ``stack`` (or of the only stack in the file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CliError(f"{path} not found: run `make deploy` first (it writes the stack's outputs there)") from exc
    except ValueError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CliError(f"{path} does not look like `cdk deploy --outputs-file` output")
    if stack is None:
        if len(data) != 1:
            raise CliError(f"{path} holds {len(data)} stacks ({', '.join(sorted(data))}); pick one with --stack")
        stack = next(iter(data))
    if stack not in data:
        raise CliError(f"{path} has no stack {stack!r} (it has {', '.join(sorted(data)) or 'none'})")
    return stack, {str(k): str(v) for k, v in data[stack].items()}


def require(values: Mapping[str, str], name: str) -> str:
    value = values.get(name)
    if not value:
        raise CliError(f"the stack outputs have no {name}; is this the voice agent stack?")
    return value


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Which deployed stack a command reads: cdk-outputs.json, and the stack in it."""
    parser.add_argument("--stack-outputs", type=Path, default=DEFAULT_FILE, help="cdk-outputs.json from make deploy")
    parser.add_argument("--stack", help="stack name, when the outputs file holds several")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--stack", help="stack name, when the file holds several")
    parser.add_argument("--get", metavar="NAME", help="print only this output's value (for scripts)")
    args = parser.parse_args(argv)
    try:
        values = load_outputs(args.file, args.stack)
        if args.get:
            print(require(values, args.get))
            return 0
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    width = max(map(len, values), default=0)
    for name in sorted(values):
        print(f"{name:<{width}}  {values[name]}")
    openai = values.get(outputs.OPENAI_API_KEY_SECRET_ARN)
    print(
        "\nNext: put the secret values in (once), then wire your number:\n"
        f"  aws secretsmanager put-secret-value --secret-id {values.get(outputs.TWILIO_AUTH_TOKEN_SECRET_ARN, '<arn>')}"
        ' --secret-string "$TWILIO_AUTH_TOKEN"\n'
        + (
            f'  aws secretsmanager put-secret-value --secret-id {openai} --secret-string "$OPENAI_API_KEY"\n'
            if openai
            else "  (a Bedrock model needs no key: enable model access in the Bedrock console, docs/deploy.md)\n"
        )
        + "  make twilio-number NUMBER=+15551234567"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
