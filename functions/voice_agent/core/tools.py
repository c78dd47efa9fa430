"""Function calling: a fork adds a tool as one typed Python function.

    @tool
    def lookup_order(order_id: Annotated[str, "The order number"]) -> str:
        '''Look up the status of an order.'''

The JSON schema the model sees is generated from the signature (``str``, ``int``, ``float``,
``bool``, ``Literal[...]``, ``list[...]``, optional parameters) and the docstring; ``Annotated``
strings describe parameters. A parameter annotated ``ToolContext`` receives the call's context
and is not shown to the model. A tool returns text, a JSON-able value, or a :class:`ToolResult`
that also asks the engine for an effect (speak and end the session, switch language, send digits,
expect words, change session settings, say a line the caller cannot talk over).

Tool results are data from outside the agent: they go back to the model in the ``tool`` role and
what the agent then says passes the output guard like everything else.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin, overload

from voice_agent.core.call_context import CallContext
from voice_agent.core.model import ToolSpec
from voice_agent.errors import ConfigurationError, ToolError
from voice_agent.protocol.live_config import SessionSettings

if typing.TYPE_CHECKING:
    from voice_agent.agent.config import AgentConfig


@dataclass(frozen=True, slots=True)
class ToolContext:
    call_sid: str
    connection_id: str
    direction: str
    language: str | None
    agent: AgentConfig
    call: CallContext | None = None  # numbers (in full), parameters, the agent, the hook's values


@dataclass(frozen=True, slots=True)
class EndSession:
    """Say ``line``, then end the relay session (with ``handoff`` as JSON ``handoffData``)."""

    line: str
    handoff: Mapping[str, str] | None = None
    farewell: bool = False  # the caller has been told goodbye: /action just hangs up


@dataclass(frozen=True, slots=True)
class SwitchLanguage:
    code: str


@dataclass(frozen=True, slots=True)
class SendDigitsEffect:
    digits: str


@dataclass(frozen=True, slots=True)
class StartKeyEntry:
    """Say ``line``, end the turn, and collect the caller's keys as their next message
    (``count`` keys, or 0: until ``#``); see ``core/key_entry.py``."""

    line: str
    count: int = 0


@dataclass(frozen=True, slots=True)
class SetHints:
    """Words speech recognition should expect from now on (a name being spelled, an order code);
    an empty tuple clears them. ``language``: that language's hints (``None``: the active one)."""

    hints: tuple[str, ...]
    language: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateSession:
    """Change session settings mid-call (``protocol/live_config.py``), e.g. a longer
    ``speech_timeout_ms`` while the caller reads out a number."""

    settings: SessionSettings


@dataclass(frozen=True, slots=True)
class SayUninterrupted:
    """Say ``line`` so the caller cannot talk over it (a legal notice, a confirmation code)."""

    line: str


Effect = EndSession | SwitchLanguage | SendDigitsEffect | StartKeyEntry | SetHints | UpdateSession | SayUninterrupted


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]
    func: Callable[..., Any]
    context_param: str | None = None
    # Only offered on calls whose direction starts with one of these (None: every call).
    directions: tuple[str, ...] | None = None
    # Adjusts the schema from the agent configuration (e.g. the languages a call may use).
    customize: Callable[[dict[str, Any], AgentConfig], dict[str, Any]] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def offered_for(self, direction: str) -> bool:
        return self.directions is None or any(direction.startswith(d) for d in self.directions)

    def spec(self, agent: AgentConfig) -> ToolSpec:
        params = json.loads(json.dumps(self.parameters))
        if self.customize is not None:
            params = self.customize(params, agent)
        return ToolSpec(name=self.name, description=self.description, parameters=params)

    def invoke(self, arguments: str, ctx: ToolContext) -> ToolResult:
        kwargs = _parse_arguments(self, arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = ctx
        result = self.func(**kwargs)
        if isinstance(result, ToolResult):
            return result
        if isinstance(result, str):
            return ToolResult(content=result)
        return ToolResult(content=json.dumps(result, default=str))


Customize = Callable[[dict[str, Any], "AgentConfig"], dict[str, Any]]


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, directions: tuple[str, ...] | None = None, customize: Customize | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    directions: tuple[str, ...] | None = None,
    customize: Customize | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator: turn a typed function into a :class:`Tool`."""

    def wrap(f: Callable[..., Any]) -> Tool:
        schema, context_param = _schema_for(f)
        doc = inspect.getdoc(f) or ""
        description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
        if not description:
            raise ConfigurationError(f"tool {f.__name__}: add a docstring, the model reads it")
        return Tool(
            name=name or f.__name__,
            description=description,
            parameters=schema,
            func=f,
            context_param=context_param,
            directions=directions,
            customize=customize,
        )

    return wrap(func) if func is not None else wrap


@dataclass(slots=True)
class ToolRegistry:
    tools: dict[str, Tool] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: Iterable[Tool]) -> ToolRegistry:
        registry = cls()
        for t in tools:
            if t.name in registry.tools:
                raise ConfigurationError(f"two tools are named {t.name!r}")
            registry.tools[t.name] = t
        return registry

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.tools)

    def offered(self, agent: AgentConfig, direction: str) -> list[Tool]:
        return [self.tools[n] for n in agent.tools if n in self.tools and self.tools[n].offered_for(direction)]

    def get(self, name: str) -> Tool:
        try:
            return self.tools[name]
        except KeyError:
            raise ToolError(f"unknown tool {name!r}") from None


# -- schema generation ----------------------------------------------------------------------

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_for(f: Callable[..., Any]) -> tuple[dict[str, Any], str | None]:
    hints = typing.get_type_hints(f, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    context_param: str | None = None
    for pname, param in inspect.signature(f).parameters.items():
        hint = hints.get(pname)
        if hint is None:
            raise ConfigurationError(f"tool {f.__name__}: parameter {pname!r} needs a type annotation")
        if hint is ToolContext:
            context_param = pname
            continue
        prop, optional = _property(hint, f"{f.__name__}.{pname}")
        properties[pname] = prop
        if param.default is inspect.Parameter.empty and not optional:
            required.append(pname)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema, context_param


def _property(hint: Any, where: str) -> tuple[dict[str, Any], bool]:
    description = None
    if get_origin(hint) is Annotated:
        hint, *meta = get_args(hint)
        description = next((m for m in meta if isinstance(m, str)), None)
    optional = False
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        optional = len(args) < len(get_args(hint))
        if len(args) != 1:
            raise ConfigurationError(f"tool parameter {where}: unions other than Optional are not supported")
        hint = args[0]
        origin = get_origin(hint)
    if hint in _SIMPLE:
        prop: dict[str, Any] = {"type": _SIMPLE[hint]}
    elif origin is Literal:
        values = list(get_args(hint))
        prop = {"type": _SIMPLE[type(values[0])], "enum": values}
    elif origin is list and get_args(hint) and get_args(hint)[0] in _SIMPLE:
        prop = {"type": "array", "items": {"type": _SIMPLE[get_args(hint)[0]]}}
    else:
        raise ConfigurationError(f"tool parameter {where}: type {hint!r} is not supported")
    if description:
        prop["description"] = description
    return prop, optional


def _parse_arguments(t: Tool, arguments: str) -> dict[str, Any]:
    try:
        raw = json.loads(arguments or "{}")
    except ValueError as exc:
        raise ToolError(f"{t.name}: arguments are not JSON") from exc
    if not isinstance(raw, dict):
        raise ToolError(f"{t.name}: arguments are not an object")
    props: Mapping[str, Any] = t.parameters.get("properties", {})
    kwargs: dict[str, Any] = {}
    for key, prop in props.items():
        if key not in raw or raw[key] is None:
            continue
        kwargs[key] = _coerce(raw[key], prop, f"{t.name}.{key}")
    missing = [k for k in t.parameters.get("required", []) if k not in kwargs]
    if missing:
        raise ToolError(f"{t.name}: missing arguments {', '.join(missing)}")
    return kwargs


def _as_integer(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError
    return int(value)


def _as_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    return float(value)


def _as_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _as_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError
    return value


# JSON-schema type -> how a model's argument becomes it (ValueError or TypeError: it cannot).
_COERCIONS: dict[str, Callable[[Any], Any]] = {
    "string": lambda v: v if isinstance(v, str) else str(v),
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "array": _as_list,
}


def _coerce(value: Any, prop: Mapping[str, Any], where: str) -> Any:
    kind = prop.get("type")
    convert = _COERCIONS.get(kind) if isinstance(kind, str) else None
    try:
        if convert is not None:
            value = convert(value)
    except (TypeError, ValueError):
        raise ToolError(f"{where}: expected {kind}") from None
    if kind == "array":
        value = [_coerce(v, prop.get("items", {}), where) for v in value]
    if "enum" in prop and value not in prop["enum"]:
        raise ToolError(f"{where}: must be one of {prop['enum']}")
    return value
