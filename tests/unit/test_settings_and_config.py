from __future__ import annotations

import dataclasses

import pytest

from voice_agent import env_names as names
from voice_agent.agent.config import AGENT, AgentConfig, LanguageOption, Lines
from voice_agent.agent.relay_options import Backups, RelayOptions, SttBackup, TtsBackup
from voice_agent.errors import ConfigurationError
from voice_agent.settings import Settings
from voice_agent.wiring import tool_registry

BASE = {
    names.RELAY_PUBLIC_URL: "wss://abc.execute-api.us-east-1.amazonaws.com/prod/",
    names.RELAY_CALLBACK_URL: "https://abc.execute-api.us-east-1.amazonaws.com/prod",
    names.WEBHOOK_PUBLIC_URL: "https://hooks.example.com",
}


def test_local_defaults_without_a_token_do_not_check_signatures() -> None:
    s = Settings.from_env(BASE)
    assert s.environment == "local"
    assert s.signature_validation is False
    assert s.relay_public_url == "wss://abc.execute-api.us-east-1.amazonaws.com/prod"  # trailing slash dropped
    assert s.log_sensitive_data is False


def test_local_with_a_token_checks_signatures() -> None:
    s = Settings.from_env({**BASE, names.TWILIO_AUTH_TOKEN: "tok"})
    assert s.signature_validation is True
    assert Settings.from_env({**BASE, names.TWILIO_AUTH_TOKEN: "tok", names.TWILIO_SIGNATURE_VALIDATION: "off"})


def test_a_deployed_stack_always_checks_signatures() -> None:
    lambda_env = {**BASE, "AWS_LAMBDA_FUNCTION_NAME": "fn", names.RUNTIME_ENVIRONMENT: "aws"}
    assert Settings.from_env(lambda_env).signature_validation is True
    with pytest.raises(ConfigurationError, match="only honoured locally"):
        Settings.from_env({**lambda_env, names.TWILIO_SIGNATURE_VALIDATION: "off"})
    with pytest.raises(ConfigurationError, match="refused inside AWS Lambda"):
        Settings.from_env({**lambda_env, names.RUNTIME_ENVIRONMENT: "local"})
    # Inside Lambda the environment defaults to aws even if the variable is missing.
    assert Settings.from_env({**BASE, "AWS_LAMBDA_FUNCTION_NAME": "fn"}).environment == "aws"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (names.RELAY_PUBLIC_URL, "https://abc/prod"),
        (names.RELAY_PUBLIC_URL, "wss://abc/prod?token=1"),
        (names.WEBHOOK_PUBLIC_URL, "ftp://x"),
        (names.LOG_SENSITIVE_DATA, "maybe"),
        (names.RUNTIME_ENVIRONMENT, "prod"),
    ],
)
def test_bad_settings_fail_with_the_variable_name(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({**BASE, name: value})


def test_insecure_urls_only_locally() -> None:
    local = {**BASE, names.RELAY_PUBLIC_URL: "ws://127.0.0.1:8765/local"}
    assert Settings.from_env(local).relay_public_url == "ws://127.0.0.1:8765/local"
    with pytest.raises(ConfigurationError):
        Settings.from_env({**local, names.RUNTIME_ENVIRONMENT: "aws"})


def test_require_names_the_missing_variable() -> None:
    s = Settings.from_env({})
    with pytest.raises(ConfigurationError, match=names.RELAY_CALLBACK_URL):
        s.require(s.relay_callback_url, names.RELAY_CALLBACK_URL)


def test_the_shipped_agent_configuration_is_valid() -> None:
    assert AGENT.validate(known_tools=tool_registry().names) is AGENT
    assert "Example Hardware" in AGENT.system_prompt
    # Providers, voices and models are explicit: account defaults differ (64101).
    assert AGENT.tts_provider and AGENT.voice and AGENT.transcription_provider and AGENT.speech_model


def test_every_problem_is_reported_at_once() -> None:
    bad = dataclasses.replace(
        AGENT,
        voice="",
        transfer_target="555-1234",
        human_key="00",
        turn_budget_s=40,
        languages=(LanguageOption("fr-FR", "Google", "fr-FR-x", "Deepgram", "nova-3-general"),),
        lines=Lines(dtmf_note="pressed", goodbye=""),
        tools=("transfer_to_human", "order_pizza"),
    )
    with pytest.raises(ConfigurationError) as err:
        bad.validate(known_tools=tool_registry().names)
    message = str(err.value)
    for fragment in (
        "voice is empty",
        "transfer_target",
        "human_key",
        "turn_budget_s",
        "languages must include",
        "dtmf_note",
        "lines.goodbye",
        "order_pizza",
    ):
        assert fragment in message


def test_sip_transfer_targets_are_accepted(tmp_path: object) -> None:
    assert dataclasses.replace(AGENT, transfer_target="sip:desk@pbx.example.com").validate()


def test_missing_prompt_file_is_reported(tmp_path: pytest.TempPathFactory) -> None:
    cfg = AgentConfig(system_prompt_file=AGENT.system_prompt_file.with_name("missing.md"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        cfg.validate()


def test_documented_attributes_are_typed_and_extras_are_checked_against_the_documented_names() -> None:
    relay = RelayOptions(
        interrupt_sensitivity="extreme",  # type: ignore[arg-type]
        eager_eot_threshold=0.95,
        speech_timeout_ms=50,
        hints=("Nguyen", "a,b"),
        debug=("verbose",),  # type: ignore[arg-type]
        events=("everything",),  # type: ignore[arg-type]
    )
    bad = dataclasses.replace(
        AGENT,
        relay=relay,
        extra_relay_attributes={"speechTimeOut": "1200", "interruptSensitivity": "low", "customerName": ""},
        failover_twiml="inside",  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError) as err:
        bad.validate()
    message = str(err.value)
    for fragment in (
        "interrupt_sensitivity",
        "eager_eot_threshold",
        "speech_timeout_ms",
        "relay.hints",
        "relay.debug",
        "relay.events",
        "'speechTimeOut' is not a documented",
        "'interruptSensitivity' has a typed field",
        "'customerName' needs a non-empty",
        "failover_twiml",
    ):
        assert fragment in message
    ok = dataclasses.replace(AGENT, extra_relay_attributes={"customerName": "Example Hardware"})
    assert ok.validate() is ok


def test_backups_are_typed_per_language_and_checked() -> None:
    broken = LanguageOption(
        "en-US",
        "Google",
        "en-US-Chirp3-HD-Aoede",
        "Deepgram",
        "nova-3-general",
        backups=Backups(tts=TtsBackup("Polly", ""), stt=SttBackup("Deepgram", " ")),  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigurationError) as err:
        dataclasses.replace(AGENT, languages=(broken,)).validate()
    assert "en-US TTS backup" in str(err.value)
    assert "en-US STT backup" in str(err.value)
    assert all(o.backups.tts is not None and o.backups.stt is not None for o in AGENT.languages)


def test_the_call_language_must_be_declared_in_the_twiml() -> None:
    hidden = dataclasses.replace(AGENT.languages[0], in_twiml=False)
    with pytest.raises(ConfigurationError, match="must be in the TwiML"):
        dataclasses.replace(AGENT, languages=(hidden, *AGENT.languages[1:])).validate()
