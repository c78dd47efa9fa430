#!/usr/bin/env python3
"""The CDK app: the one place that reads CDK context and the environment.

    CDK_OUTDIR=cdk.out python app.py      # synthesize (what `make synth` runs; no CLI, no Docker)
    make deploy                           # the pinned CDK CLI runs this file via cdk.json

Options come from the "context" block of cdk.json, overridden by `-c key=value` on the CDK command
line; they are listed, with defaults, in infra/config.py and docs/deploy.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import ConfigError, StackConfig
from infra.stack import VoiceAgentStack
from voice_agent.agent.config import AgentConfig
from voice_agent.core.routing import Agents
from voice_agent.errors import ConfigurationError

CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context. The CDK CLI passes it itself; `python app.py` alone would not see it,
    so it is loaded here as the base that the CLI's values (including -c) override."""
    context = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    if not isinstance(context, dict):
        raise ConfigError("cdk.json: 'context' must be an object")
    return context


def shipped_agents(folder: Path | None = None) -> Agents:
    """The agents folder the Lambda asset ships (``functions/voice_agent/agents``), validated as a
    cold start validates it: an invalid folder stops synth with every problem listed."""
    from voice_agent.agent.hooks import HOOKS
    from voice_agent.agent.loader import AGENTS_DIR, load_agents
    from voice_agent.wiring import tool_registry

    try:
        return load_agents(folder or AGENTS_DIR, known_tools=tool_registry().names, hooks=frozenset(HOOKS))
    except ConfigurationError as exc:
        raise ConfigError(str(exc)) from exc


def build_app(
    context: dict[str, Any] | None = None,
    outdir: str | None = None,
    agent: AgentConfig | None = None,
    agents_dir: Path | None = None,
) -> cdk.App:
    """The app with its one stack and cdk-nag. ``context`` is added on top of cdk.json's (tests
    use it the way `-c` is used on the command line); ``outdir`` defaults to $CDK_OUTDIR;
    ``agent`` replaces the agents folder with one agent (tests of other model chains);
    ``agents_dir`` checks another agents folder (tests)."""
    app = cdk.App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    config = StackConfig.from_context(app.node.get_all_context())
    agents = Agents.single(agent) if agent is not None else shipped_agents(agents_dir)
    VoiceAgentStack(app, config.stack_name, config=config, agent=agents.default, agents=agents)
    # AWS Solutions checks run at synthesis: an unacknowledged error stops synth (and deploy).
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


if __name__ == "__main__":
    try:
        app = build_app()
    except ConfigError as exc:
        print(f"app.py: {exc}", file=sys.stderr)  # noqa: T201 - a usage error, not a crash
        raise SystemExit(2) from None
    app.synth()
