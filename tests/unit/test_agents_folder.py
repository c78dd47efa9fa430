"""The agents folder: loaded onto the schema generically, routed by number, and every problem of
every agent listed at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_AGENTS_DIR
from voice_agent.agent.config import AgentConfig
from voice_agent.agent.hooks import HOOKS
from voice_agent.agent.loader import AGENTS_DIR, load_agents
from voice_agent.core.routing import Agents, routed_setup
from voice_agent.core.tools import ToolRegistry
from voice_agent.errors import ConfigurationError
from voice_agent.protocol.inbound import Setup
from voice_agent.wiring import tool_registry


def known() -> frozenset[str]:
    registry: ToolRegistry = tool_registry()
    return registry.names


def write_agent(folder: Path, name: str, toml: str, prompt: str = "You are a test agent.") -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "agent.toml").write_text(toml, encoding="utf-8")
    (folder / name / "prompt.md").write_text(prompt, encoding="utf-8")


def test_the_tests_agents_load_with_their_own_values() -> None:
    agents = load_agents(TEST_AGENTS_DIR, known_tools=known(), hooks=frozenset(HOOKS))
    assert agents.default_name == "front_desk"
    assert dict(agents.numbers) == {"+15555550199": "front_desk", "+15555550188": "sales"}
    sales = agents.by_name["sales"]
    assert (sales.name, sales.voice, sales.transfer_target) == ("Sal", "en-US-Chirp3-HD-Charon", "+15555550111")
    assert sales.lines.welcome_greeting.startswith("Sales desk")
    assert sales.lines.apology == AgentConfig().lines.apology  # left out: the schema's default
    assert sales.context.timezone == "Europe/Paris"
    assert sales.system_prompt_file == TEST_AGENTS_DIR.resolve() / "sales" / "prompt.md"
    assert agents.by_name["front_desk"].lines == AgentConfig().lines


def test_the_shipped_agents_folder_is_valid() -> None:
    agents = load_agents(AGENTS_DIR, known_tools=known(), hooks=frozenset(HOOKS))
    assert len(agents.by_name) >= 2
    assert agents.default_name in agents.by_name


def test_nested_settings_map_onto_the_schema_by_name(tmp_path: Path) -> None:
    write_agent(
        tmp_path,
        "deep",
        """
llm_fallbacks = [{provider = "bedrock", model = "us.amazon.nova-micro-v1:0"}]
human_key = false
[timing]
silence_after_s = 12
[timing.lines.fr-FR]
reminders = ["Vous êtes là ?"]
silence_goodbye = "Au revoir."
time_limit = "Fin."
key_prompt = "Tapez."
key_reprompt = "Encore."
[call_record]
summary = true
fields_schema = {type = "object", properties = {resolved = {type = "boolean"}}}
[phrases]
min_chars = 30
""",
    )
    agent = load_agents(tmp_path, known_tools=known()).default
    assert agent.timing.silence_after_s == 12
    assert agent.timing.lines["fr-FR"].reminders == ("Vous êtes là ?",)
    assert agent.llm_fallbacks[0].model == "us.amazon.nova-micro-v1:0"
    assert agent.human_key is None
    assert agent.phrases.min_chars == 30
    assert agent.call_record.fields_schema == {"type": "object", "properties": {"resolved": {"type": "boolean"}}}


def test_every_problem_of_every_agent_is_listed_at_once(tmp_path: Path) -> None:
    write_agent(
        tmp_path,
        "one",
        """
voice = ""
tools = ["no_such_tool"]
max_reply_tokens = "many"
colour = "blue"
[route]
numbers = ["555-0100"]
default = true
[context]
start_hook = "no_such_hook"
""",
        prompt="Hello {{caller_name}} and {{hook.name}}",
    )
    write_agent(tmp_path, "two", "transfer_target = 'nobody'\n[route]\ndefault = true\n")
    (tmp_path / "three").mkdir()  # no agent.toml
    with pytest.raises(ConfigurationError) as raised:
        load_agents(tmp_path, known_tools=known(), hooks=frozenset(HOOKS))
    message = str(raised.value)
    for expected in (
        "one: max_reply_tokens: must be an int",
        "one: colour: no such setting",
        "one: voice is empty",
        "one: tools: unknown tool 'no_such_tool'",
        "one: context.start_hook: unknown hook 'no_such_hook'",
        "one: prompt: unknown placeholder {{caller_name}}",
        "one: [route] numbers: '555-0100' is not an E.164 number",
        "two: transfer_target must be an E.164 number",
        "three/agent.toml",
        "exactly one agent needs [route] default = true (found 2)",
    ):
        assert expected in message, expected


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no agents"):
        load_agents(tmp_path)


def two_agents() -> Agents:
    return load_agents(TEST_AGENTS_DIR, known_tools=known())


@pytest.mark.parametrize(
    ("to", "frm", "direction", "params", "expected"),
    [
        ("+15555550188", "+15555550123", "inbound", {}, "sales"),
        ("+15555550199", "+15555550123", "inbound", {}, "front_desk"),
        ("+15550000000", "+15555550123", "inbound", {}, "front_desk"),  # unknown number: the default
        ("+15555550123", "+15555550188", "outbound-api", {}, "sales"),  # outbound: this stack's number
        ("+15555550123", "+15550000000", "outbound-api", {"agent": "sales"}, "sales"),  # explicit
        ("+15555550188", "+15555550123", "inbound", {"agent": "nobody"}, "sales"),  # unknown name: by number
    ],
)
def test_routing(to: str, frm: str, direction: str, params: dict[str, str], expected: str) -> None:
    assert two_agents().route(to_number=to, from_number=frm, direction=direction, parameters=params) == expected


def test_a_setup_names_the_agent_that_answers() -> None:
    setup = Setup(session_id="VX1", call_sid="CA1", from_number="+15555550123", to_number="+15555550188")
    assert routed_setup(two_agents(), setup).custom_parameters == {"agent": "sales"}
