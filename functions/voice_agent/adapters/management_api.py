"""Posts frames to the caller's WebSocket through API Gateway's management (callback) API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from voice_agent.errors import ConnectionGoneError, SendError
from voice_agent.log import logger
from voice_agent.protocol.outbound import OutboundMessage, Text, encode, split_text

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

_GONE = {"GoneException"}


class ManagementApiSender:
    """One message -> one or more ``PostToConnection`` calls, strictly in order.

    ``GoneException`` (410: the caller hung up, or the socket was replaced) is final and never
    retried. Throttling is retried by the client's standard retry mode within its attempt cap.
    """

    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    def send(self, connection_id: str, message: OutboundMessage) -> None:
        parts = split_text(message) if isinstance(message, Text) else [message]
        for part in parts:
            data = encode(part)
            try:
                self._client.post_to_connection(ConnectionId=connection_id, Data=data)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _GONE or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
                    raise ConnectionGoneError(connection_id) from exc
                logger.warning("post to connection failed", extra={"error_code": code})
                raise SendError(code) from exc
            except BotoCoreError as exc:
                logger.warning("post to connection failed", extra={"error": type(exc).__name__})
                raise SendError(type(exc).__name__) from exc
