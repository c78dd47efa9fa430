"""Every test runs with a clean, local, credential-free environment: never real AWS or Twilio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from voice_agent import wiring

TEST_AGENTS_DIR = Path(__file__).resolve().parent / "fixtures" / "agents"
TEST_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "VOICE_AGENT_ENVIRONMENT": "local",
    "SESSIONS_TABLE_NAME": "test-sessions",
    "RELAY_PUBLIC_URL": "wss://abc123.execute-api.us-east-1.amazonaws.com/prod",
    "RELAY_CALLBACK_URL": "https://abc123.execute-api.us-east-1.amazonaws.com/prod",
    "WEBHOOK_PUBLIC_URL": "https://hooks.example.com",
    "TWILIO_AUTH_TOKEN": "test-auth-token",
    "POWERTOOLS_METRICS_NAMESPACE": "VoiceAgentTest",
    # Nothing listens on the discard port: a test that forgets to point Bedrock at a stand-in
    # fails at once instead of reaching AWS.
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:9",
    # The tests' own agents (a default one with the schema's defaults, and "sales"), not the fork's.
    "AGENTS_DIR": str(TEST_AGENTS_DIR),
}
REMOVED = (
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "LLM_MODEL",
    "LLM_PROVIDER",
    "AWS_BEARER_TOKEN_BEDROCK",
    "DYNAMODB_ENDPOINT_URL",
    "TWILIO_SIGNATURE_VALIDATION",
    "LOG_SENSITIVE_DATA",
    "TWILIO_ACCOUNT_SID",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in REMOVED:
        monkeypatch.delenv(name, raising=False)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    wiring.reset()
    yield
    wiring.reset()
