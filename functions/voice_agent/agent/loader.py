"""The agents folder: every agent a stack serves, as data a fork edits without touching Python.

::

    agents/
      ada/                 # the agent's name (lower case, digits, - or _)
        agent.toml         # settings: any field of AgentConfig (agent/config.py), tables for nested ones
        prompt.md          # the system prompt, a template (core/prompt_template.py)
      support/
        ...

``agent.toml`` keys are ``AgentConfig``'s field names, nested dataclasses are tables of their own
field names (``[lines]``, ``[timing]``, ``[[languages]]``, ``[timing.lines.es-ES]``...), so a field
the schema gains is settable here with no change to this loader. What a key leaves out keeps the
schema's default. One table is the loader's own::

    [route]
    numbers = ["+15555550199"]   # the called numbers (To) this agent answers
    default = true               # the agent for every other number (exactly one, unless alone)

Loaded and checked once at cold start (and by ``make synth``): every problem of every agent is
listed in one ``ConfigurationError``, so a bad edit fails loudly before any call.
"""

from __future__ import annotations

import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, Union, get_args, get_origin, get_type_hints

from voice_agent.agent.config import AgentConfig
from voice_agent.core.prompt_template import template_problems
from voice_agent.core.routing import Agents
from voice_agent.errors import ConfigurationError

AGENTS_DIR: Final = Path(__file__).resolve().parent.parent / "agents"  # the fork's agents, shipped in the asset
CONFIG_FILE: Final = "agent.toml"
PROMPT_FILE: Final = "prompt.md"
ROUTE_TABLE: Final = "route"
_AGENT_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")
_BAD: Final[Any] = object()


def load_agents(
    folder: Path = AGENTS_DIR, *, known_tools: frozenset[str] | None = None, hooks: frozenset[str] | None = None
) -> Agents:
    """Every agent in ``folder``, validated (raises ``ConfigurationError`` listing every problem)."""
    problems: list[str] = []
    configs: dict[str, AgentConfig] = {}
    routes: dict[str, Mapping[str, Any]] = {}
    entries = _entries(folder)
    if not entries:
        problems.append(f"{folder}: no agents (each is a folder with {CONFIG_FILE} and {PROMPT_FILE})")
    for entry in entries:
        config, route = _load_one(entry, known_tools, hooks, problems)
        if route is not None:  # routing is checked for every agent whose file reads
            routes[entry.name] = route
        if config is not None:
            configs[entry.name] = config
    numbers, default = _routing(routes, problems)
    if problems:
        raise ConfigurationError(f"invalid agents folder {folder}:\n- " + "\n- ".join(problems))
    return Agents(by_name=MappingProxyType(configs), default_name=default, numbers=MappingProxyType(numbers))


def _entries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _load_one(
    entry: Path, known_tools: frozenset[str] | None, hooks: frozenset[str] | None, problems: list[str]
) -> tuple[AgentConfig | None, Mapping[str, Any] | None]:
    name, mine = entry.name, []
    if not _AGENT_NAME.match(name):
        mine.append("the folder's name must be lower case letters, digits, - or _")
    try:
        data = tomllib.loads((entry / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"{name}/{CONFIG_FILE}: {exc}")
        return None, None
    route = data.pop(ROUTE_TABLE, {})
    if not isinstance(route, dict):
        mine.append(f"[{ROUTE_TABLE}] must be a table")
        route = {}
    data.setdefault("system_prompt_file", PROMPT_FILE)
    config = build(AgentConfig, data, "", mine, base=entry)
    if isinstance(config, AgentConfig):
        mine += _checked(config, known_tools, hooks)
    problems += [f"{name}: {p}" for p in mine]
    return (config if isinstance(config, AgentConfig) and not mine else None), route


def _checked(config: AgentConfig, known_tools: frozenset[str] | None, hooks: frozenset[str] | None) -> list[str]:
    p: list[str] = []
    try:
        config.validate(known_tools=known_tools)
    except ConfigurationError as exc:
        p += [line.removeprefix("- ") for line in str(exc).splitlines()[1:]]
    hook = config.context.start_hook
    if hooks is not None and hook is not None and hook not in hooks:
        p.append(f"context.start_hook: unknown hook {hook!r} (agent/hooks.py HOOKS)")
    if config.system_prompt_file.is_file():
        p += template_problems(config.system_prompt)
    return p


def _routing(routes: Mapping[str, Mapping[str, Any]], problems: list[str]) -> tuple[dict[str, str], str]:
    numbers: dict[str, str] = {}
    defaults = [n for n, r in routes.items() if r.get("default") is True]
    for name, route in routes.items():
        unknown = set(route) - {"numbers", "default"}
        if unknown:
            problems.append(f"{name}: [{ROUTE_TABLE}] unknown keys {sorted(unknown)}")
        raw = route.get("numbers", [])
        for number in raw if isinstance(raw, list) else [raw]:
            if not isinstance(number, str) or not _E164.match(number):
                problems.append(f"{name}: [{ROUTE_TABLE}] numbers: {number!r} is not an E.164 number")
            elif number in numbers:
                problems.append(f"{name}: [{ROUTE_TABLE}] {number} is answered by {numbers[number]} too")
            else:
                numbers[number] = name
    if len(routes) == 1 and not defaults:
        defaults = list(routes)
    if routes and len(defaults) != 1:
        problems.append(f"exactly one agent needs [{ROUTE_TABLE}] default = true (found {len(defaults)})")
    return numbers, defaults[0] if defaults else ""


# -- the file's keys onto the schema's dataclasses ---------------------------------------------


def build(cls: type, data: Mapping[str, Any], where: str, problems: list[str], *, base: Path) -> Any:
    """An instance of the dataclass ``cls`` from a TOML table: keys are field names, nested
    dataclasses nested tables. Every problem goes to ``problems``; a key with one keeps its
    default, so the instance can still be validated and its other problems listed too."""
    hints = get_type_hints(cls)
    settable = {f.name for f in fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in settable:
            problems.append(f"{where}{key}: no such setting")
            continue
        converted = _convert(hints[key], value, f"{where}{key}", problems, base)
        if converted is not _BAD:
            kwargs[key] = converted
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where.rstrip('.') or cls.__name__}: {exc}")
        return _BAD


def _convert(tp: Any, value: Any, where: str, problems: list[str], base: Path) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return _frozen(value)
    if origin in (Union, types.UnionType):
        return _union(args, value, where, problems, base)
    if origin is Literal:
        return value if value in args else _problem(problems, f"{where}: must be one of {', '.join(map(str, args))}")
    if is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            return _problem(problems, f"{where}: must be a table")
        return build(tp, value, f"{where}.", problems, base=base)
    if origin is tuple:
        return _sequence(args[0], value, where, problems, base)
    if origin is Mapping or tp is Mapping:
        return _mapping(args[1] if args else Any, value, where, problems, base)
    return _scalar(tp, value, where, problems, base)


def _union(args: tuple[Any, ...], value: Any, where: str, problems: list[str], base: Path) -> Any:
    others = [a for a in args if a is not type(None)]
    if value is False and len(others) < len(args) and bool not in others:
        return None  # TOML has no null: `false` turns an optional setting off
    return _convert(others[0] if len(others) == 1 else Any, value, where, problems, base)


def _sequence(item: Any, value: Any, where: str, problems: list[str], base: Path) -> Any:
    if not isinstance(value, list):
        return _problem(problems, f"{where}: must be a list")
    items = [_convert(item, v, f"{where}[{i}]", problems, base) for i, v in enumerate(value)]
    return _BAD if any(i is _BAD for i in items) else tuple(items)


def _mapping(item: Any, value: Any, where: str, problems: list[str], base: Path) -> Any:
    if not isinstance(value, dict):
        return _problem(problems, f"{where}: must be a table")
    if item is Any:
        return dict(value)
    items = {k: _convert(item, v, f"{where}.{k}", problems, base) for k, v in value.items()}
    return _BAD if any(i is _BAD for i in items.values()) else MappingProxyType(items)


def _scalar(tp: Any, value: Any, where: str, problems: list[str], base: Path) -> Any:
    if tp is Path:
        return (base / value).resolve() if isinstance(value, str) else _problem(problems, f"{where}: must be a path")
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, bool) and (type(value) is not tp):
        return _problem(problems, f"{where}: must be {'an' if tp is int else 'a'} {tp.__name__}")
    return value


def _frozen(value: Any) -> Any:
    return value  # free-form (a JSON schema): kept as TOML gave it, so it serialises as JSON


def _problem(problems: list[str], text: str) -> Any:
    problems.append(text)
    return _BAD
