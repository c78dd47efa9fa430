"""The secrets adapter against Secrets Manager (moto): values in both shapes, read once and cached,
and the refusals that keep a half-deployed stack from running with a placeholder."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from voice_agent.adapters import aws_clients, secrets
from voice_agent.errors import ConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


@pytest.fixture
def manager() -> Iterator[SecretsManagerClient]:
    with mock_aws():
        aws_clients.reset_clients()
        secrets.clear_cache()
        yield boto3.client("secretsmanager", region_name="us-east-1")
        secrets.clear_cache()
        aws_clients.reset_clients()


def put(manager: SecretsManagerClient, name: str, value: str) -> str:
    return manager.create_secret(Name=name, SecretString=value)["ARN"]


@pytest.mark.parametrize("stored", ["tok-123", '{"value": "tok-123"}', "  tok-123\n"])
def test_a_secret_is_read_in_either_shape(manager: SecretsManagerClient, stored: str) -> None:
    arn = put(manager, "token", stored)
    assert secrets.secret_value(arn=arn, plain="ignored", name="Twilio auth token") == "tok-123"


@pytest.mark.parametrize(
    "stored",
    ["REPLACE_ME", "REPLACE_ME: put your Twilio auth token here", '{"value": "REPLACE_ME"}', "   ", '{"value": ""}'],
)
def test_the_placeholder_or_an_empty_secret_is_refused(manager: SecretsManagerClient, stored: str) -> None:
    arn = put(manager, "token", stored)
    with pytest.raises(ConfigurationError, match="placeholder"):
        secrets.secret_value(arn=arn, plain=None, name="Twilio auth token")


def test_a_missing_secret_is_a_configuration_error_and_a_value_is_read_once(manager: SecretsManagerClient) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        secrets.secret_value(arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:nope", plain=None, name="x")
    arn = put(manager, "token", "first")
    assert secrets.secret_value(arn=arn, plain=None, name="x") == "first"
    manager.put_secret_value(SecretId=arn, SecretString="second")
    assert secrets.secret_value(arn=arn, plain=None, name="x") == "first"  # cached for the cold start


def test_without_an_arn_the_plain_local_value_is_used() -> None:
    assert secrets.secret_value(arn=None, plain="local-token", name="x") == "local-token"
