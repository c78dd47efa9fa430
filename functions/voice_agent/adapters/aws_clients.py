"""boto3 clients, built once per execution environment (lazily, so tests can start moto first).

Timeouts are explicit and short: a voice turn cannot wait 60 s (botocore's default) for a socket.
Retries use botocore's standard mode, which backs off on throttling (DynamoDB, and the management
API's ``LimitExceededException``) and never retries a ``GoneException``.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol, cast

import boto3
from botocore.config import Config

from voice_agent.settings import load_settings

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# boto3's default session is not safe to share between threads while clients are being created
# (the local stand-in runs invocations on threads). One lock around the cached factories also makes
# concurrent first uses share one client (lru_cache alone would let each of them build its own).
_CREATE = threading.RLock()

DYNAMODB_CONFIG = Config(
    connect_timeout=1.0,
    read_timeout=2.0,
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
    max_pool_connections=20,
)
MANAGEMENT_API_CONFIG = Config(
    connect_timeout=1.0,
    read_timeout=1.5,  # a post takes milliseconds; a stuck one must not eat the turn
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
    max_pool_connections=20,
)
SECRETS_CONFIG = Config(connect_timeout=2.0, read_timeout=3.0, retries={"mode": "standard", "total_max_attempts": 3})
# A timer is set after a reply's last frame (the caller is listening): quick, one retry.
SQS_CONFIG = Config(
    connect_timeout=1.0, read_timeout=2.0, retries={"mode": "standard", "total_max_attempts": 2}, tcp_keepalive=True
)
# The records function has time: the queue retries it anyway.
RECORDS_CONFIG = Config(connect_timeout=2.0, read_timeout=10.0, retries={"mode": "standard", "total_max_attempts": 3})


class SqsClient(Protocol):
    """The SQS calls the runtime makes (typed here: no stubs package for one call)."""

    def send_message(self, **kwargs: Any) -> Any: ...


class S3Client(Protocol):
    def put_object(self, **kwargs: Any) -> Any: ...

    def get_object(self, **kwargs: Any) -> Any: ...


class EventsClient(Protocol):
    def put_events(self, **kwargs: Any) -> Any: ...


def bedrock_runtime(*, connect_timeout_s: float, read_timeout_s: float, max_attempts: int) -> BedrockRuntimeClient:
    """The Bedrock runtime client for one set of timeouts (a model chain shares it).

    The endpoint is boto3's own choice: the region's, or ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (a
    Bedrock-compatible server, the local stand-in). ``read_timeout_s`` bounds every socket read,
    the wait for the first event included; the turn engine's own deadlines are shorter and close
    the stream first. Retries back off on throttling; a model with a fallback behind it is not
    retried (``max_attempts=1``): the next model is the better retry.
    """
    with _CREATE:
        return _bedrock_runtime(connect_timeout_s, read_timeout_s, max_attempts)


def dynamodb() -> DynamoDBClient:
    with _CREATE:
        return _dynamodb()


def management_api(endpoint_url: str) -> ApiGatewayManagementApiClient:
    with _CREATE:
        return _management_api(endpoint_url)


def secrets_manager() -> SecretsManagerClient:
    with _CREATE:
        return _secrets_manager()


def sqs() -> SqsClient:
    """SQS at its regional endpoint, or ``AWS_ENDPOINT_URL_SQS`` (boto3's own variable: the local stack)."""
    with _CREATE:
        return _sqs()


def s3() -> S3Client:
    with _CREATE:
        return _s3()


def events() -> EventsClient:
    with _CREATE:
        return _events()


@lru_cache(maxsize=1)
def _sqs() -> SqsClient:
    return cast(SqsClient, boto3.client("sqs", config=SQS_CONFIG))


@lru_cache(maxsize=1)
def _s3() -> S3Client:
    return cast(S3Client, boto3.client("s3", config=RECORDS_CONFIG))


@lru_cache(maxsize=1)
def _events() -> EventsClient:
    return cast(EventsClient, boto3.client("events", config=RECORDS_CONFIG))


@lru_cache(maxsize=1)
def _dynamodb() -> DynamoDBClient:
    endpoint = load_settings().dynamodb_endpoint_url
    return boto3.client("dynamodb", endpoint_url=endpoint, config=DYNAMODB_CONFIG)


@lru_cache(maxsize=4)
def _management_api(endpoint_url: str) -> ApiGatewayManagementApiClient:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=MANAGEMENT_API_CONFIG)


@lru_cache(maxsize=1)
def _secrets_manager() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=SECRETS_CONFIG)


@lru_cache(maxsize=8)
def _bedrock_runtime(connect_timeout_s: float, read_timeout_s: float, max_attempts: int) -> BedrockRuntimeClient:
    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        tcp_keepalive=True,
        max_pool_connections=20,
    )
    return boto3.client("bedrock-runtime", config=config)


def reset_clients() -> None:
    """Forget cached clients (tests that restart moto, and SnapStart restore hooks)."""
    with _CREATE:
        _dynamodb.cache_clear()
        _management_api.cache_clear()
        _secrets_manager.cache_clear()
        _bedrock_runtime.cache_clear()
        _sqs.cache_clear()
        _s3.cache_clear()
        _events.cache_clear()
