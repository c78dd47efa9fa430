"""The sessions table's shape, defined once for the CDK stack, the local stack and the tests.

One table, generic keys, TTL on every item:

| item       | pk                     | sk                                   | holds                              |
|------------|------------------------|--------------------------------------|------------------------------------|
| connection | ``CONN#<connectionId>`` | ``CONN``                             | callSid, generation counters       |
| call       | ``CALL#<callSid>``      | ``CALL``                             | status, counters, language, params |
| turn       | ``CALL#<callSid>``      | ``TURN#<conn:04d>#<gen:06d>#<part>`` | one user / assistant / tool message|

Nothing here imports boto3: the CDK app imports this module at synth time.
"""

from typing import Any, Final

PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
TTL_ATTRIBUTE: Final = "expiresAt"

KEY_SCHEMA: Final = (
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
)
ATTRIBUTE_DEFINITIONS: Final = (
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": SORT_KEY, "AttributeType": "S"},
)


def create_table_request(table_name: str) -> dict[str, Any]:
    """Keyword arguments for boto3 ``create_table`` (local stack and tests)."""
    return {
        "TableName": table_name,
        "KeySchema": [dict(k) for k in KEY_SCHEMA],
        "AttributeDefinitions": [dict(a) for a in ATTRIBUTE_DEFINITIONS],
        "BillingMode": "PAY_PER_REQUEST",
    }


def time_to_live_request(table_name: str) -> dict[str, Any]:
    """Keyword arguments for boto3 ``update_time_to_live``."""
    return {
        "TableName": table_name,
        "TimeToLiveSpecification": {"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    }
