"""What each function may do to the sessions table, by DynamoDB action (no CDK import: the
integration tests read it next to the code it describes).

Exactly the calls each function's code makes through the session store
(``voice_agent/adapters/dynamo_store.py``); ``tests/integration/test_store_permissions.py`` runs
every entry point against moto and records the operations each one makes. No Scan and no
DeleteItem anywhere: a leaked role can neither dump nor wipe the transcripts.
"""

from __future__ import annotations

from typing import Final

MESSAGE_STORE_ACTIONS: Final = (
    "dynamodb:GetItem",  # a retried setup reads back its own binding
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",  # the history, once per turn
    "dynamodb:BatchWriteItem",  # a tool round's messages in one request
)
# /action: reads the call, counts reconnects, marks it ended. /voice touches no table.
WEBHOOK_STORE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# $disconnect marks its connection closed: one update.
DISCONNECT_STORE_ACTIONS: Final = ("dynamodb:UpdateItem",)
# The timers: the call watch reads the call and its socket, a timer takes a generation and stores
# its line; a key entry that ends on a timer runs one turn (the message function's requests).
TIMERS_STORE_ACTIONS: Final = MESSAGE_STORE_ACTIONS
# The records function reads the call and every turn, and marks the record made (a lease first).
RECORDS_STORE_ACTIONS: Final = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem")
# $connect notes which call the socket belongs to (before any setup): the call counts the upgrade,
# the connection item is created. No read: the call token in the URL is checked without the table.
CONNECT_STORE_ACTIONS: Final = ("dynamodb:UpdateItem", "dynamodb:PutItem")
# Everything the store can do, whoever calls it.
SESSION_STORE_ACTIONS: Final = tuple(
    dict.fromkeys(
        MESSAGE_STORE_ACTIONS
        + WEBHOOK_STORE_ACTIONS
        + DISCONNECT_STORE_ACTIONS
        + TIMERS_STORE_ACTIONS
        + RECORDS_STORE_ACTIONS
        + CONNECT_STORE_ACTIONS
    )
)
