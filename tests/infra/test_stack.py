"""What the stack promises, asserted on the synthesized template (intent, not a snapshot)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra import outputs
from infra.permissions import (
    MESSAGE_STORE_ACTIONS,
    RECORDS_STORE_ACTIONS,
    SESSION_STORE_ACTIONS,
    TIMERS_STORE_ACTIONS,
)
from infra.stack import CONNECT, DISCONNECT, MESSAGE, RECORDS, TIMERS, WEBHOOK
from tests.infra import cfn
from tests.infra.conftest import Synthesized
from tests.support.emitted_metrics import emitted_metric_names
from voice_agent import env_names as names
from voice_agent import metric_names, table_schema
from voice_agent.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]


def _functions(s: Synthesized) -> dict[str, str]:
    """Entry point name -> logical id of its Lambda function."""
    st = s.stack
    return {
        "connect": s.logical_id(st.connect_fn.function),
        "message": s.logical_id(st.message_fn.function),
        "disconnect": s.logical_id(st.disconnect_fn.function),
        "webhook": s.logical_id(st.webhook_fn.function),
        "timers": s.logical_id(st.timers_fn.function),
        "records": s.logical_id(st.records_fn.function),
    }


def _roles(s: Synthesized) -> dict[str, str]:
    return {name: cfn.function_role(s.template, fid) for name, fid in _functions(s).items()}


# --- the relay (WebSocket API) ----------------------------------------------------------------


def test_relay_has_exactly_the_three_routes_each_on_its_own_function(default: Synthesized) -> None:
    t = default.template
    api_id = default.logical_id(default.stack.relay.api)
    fns = _functions(default)
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in cfn.of_type(t, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id}
    }
    assert set(routes) == {"$connect", "$default", "$disconnect"}
    expected = {"$connect": fns["connect"], "$default": fns["message"], "$disconnect": fns["disconnect"]}
    for route_key, function_id in expected.items():
        (integration_id,) = cfn.refs(routes[route_key]["Target"])
        integration = t["Resources"][integration_id]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert cfn.refs(integration["IntegrationUri"]) == {function_id}, route_key
        if route_key != "$connect":  # API Gateway allows an authorizer on $connect only
            assert routes[route_key].get("AuthorizationType", "NONE") == "NONE"


def test_connect_is_authorized_by_the_connect_function_whose_context_names_the_call(default: Synthesized) -> None:
    t = default.template
    api_id = default.logical_id(default.stack.relay.api)
    [connect] = [
        r["Properties"]
        for r in cfn.of_type(t, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id} and r["Properties"]["RouteKey"] == "$connect"
    ]
    assert connect["AuthorizationType"] == "CUSTOM"
    (authorizer_id,) = cfn.refs(connect["AuthorizerId"])
    authorizer = t["Resources"][authorizer_id]["Properties"]
    assert authorizer["AuthorizerType"] == "REQUEST"
    # Twilio signs every upgrade; one without the header is refused (401) before a function runs.
    assert authorizer["IdentitySource"] == ["route.request.header.X-Twilio-Signature"]
    assert "AuthorizerResultTtlInSeconds" not in authorizer  # (WebSocket authorizers cache nothing)
    assert _functions(default)["connect"] in cfn.refs(authorizer["AuthorizerUri"])
    invokers = [
        p["Properties"]
        for p in cfn.of_type(t, "AWS::Lambda::Permission").values()
        if cfn.refs(p["Properties"]["FunctionName"]) == {_functions(default)["connect"]}
        and "authorizers" in json.dumps(p["Properties"].get("SourceArn", ""))
    ]
    assert invokers and invokers[0]["Principal"] == "apigateway.amazonaws.com"


def test_relay_sends_every_frame_to_default(default: Synthesized) -> None:
    api = default.template["Resources"][default.logical_id(default.stack.relay.api)]["Properties"]
    assert api["ProtocolType"] == "WEBSOCKET"
    # No route is keyed on a type, so setup/prompt/interrupt/... all fall through to $default.
    assert api["RouteSelectionExpression"] == "$request.body.type"


def test_api_gateway_may_invoke_each_route_function(default: Synthesized) -> None:
    permitted = {
        next(iter(cfn.refs(p["Properties"]["FunctionName"])))
        for p in cfn.of_type(default.template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    routed = {name: f for name, f in _functions(default).items() if name not in ("timers", "records")}
    assert set(routed.values()) <= permitted
    # The queued functions are invoked by their event source mappings, never by API Gateway.
    assert not {_functions(default)["timers"], _functions(default)["records"]} & permitted


def test_relay_stage_is_throttled_and_never_traces_message_bodies(default: Synthesized, options: Synthesized) -> None:
    for s, rate, burst, stage in ((default, 50, 100, "prod"), (options, 20, 40, "live")):
        props = s.template["Resources"][s.logical_id(s.stack.relay.stage)]["Properties"]
        assert props["StageName"] == stage
        assert props["AutoDeploy"] is True
        settings = props["DefaultRouteSettings"]
        assert settings["DataTraceEnabled"] is False
        assert settings["LoggingLevel"] == "OFF"
        assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (rate, burst)
        for route_settings in (props.get("RouteSettings") or {}).values():
            assert not route_settings.get("DataTraceEnabled")


def test_relay_access_logs_are_opt_in_and_hold_no_bodies(default: Synthesized, options: Synthesized) -> None:
    default_stage = default.template["Resources"][default.logical_id(default.stack.relay.stage)]["Properties"]
    assert "AccessLogSettings" not in default_stage  # needs the account-wide role; see docs/deploy.md
    stage = options.template["Resources"][options.logical_id(options.stack.relay.stage)]["Properties"]
    log_format = stage["AccessLogSettings"]["Format"]
    assert "$context.requestId" in log_format
    assert "body" not in log_format.lower()


def test_access_logs_go_to_vended_log_groups_named_for_the_stack(default: Synthesized, options: Synthesized) -> None:
    """Under /aws/vendedlogs/ a log delivery adds nothing to the account's CloudWatch Logs resource
    policy (capped at 5,120 characters): an account near the cap cannot fail the deploy."""
    for s, expected in (
        (default, {"webhook": "/aws/vendedlogs/apigateway/VoiceAgent/webhook-access"}),
        (
            options,
            {
                "webhook": "/aws/vendedlogs/apigateway/VoiceAgentDev/webhook-access",
                "relay": "/aws/vendedlogs/apigateway/VoiceAgentDev/relay-access",
            },
        ),
    ):
        t = s.template
        stages = {"webhook": s.stack.webhook_api.stage, "relay": s.stack.relay.stage}
        found = {}
        for api, stage in stages.items():
            settings = t["Resources"][s.logical_id(stage)]["Properties"].get("AccessLogSettings")
            if settings is None:
                continue
            (group_id,) = cfn.refs(settings["DestinationArn"])
            found[api] = t["Resources"][group_id]["Properties"]["LogGroupName"]
        assert found == expected
        # The functions' own groups are Lambda's, named by Lambda: only access logs are vended.
        named = {g["Properties"].get("LogGroupName") for g in cfn.of_type(t, "AWS::Logs::LogGroup").values()}
        assert named - {None} == set(expected.values())


# --- the webhook (HTTP API) -------------------------------------------------------------------


def test_webhook_routes_go_to_the_webhook_function_and_nothing_else_is_routed(default: Synthesized) -> None:
    t = default.template
    api_id = default.logical_id(default.stack.webhook_api.api)
    routes = [
        r["Properties"]
        for r in cfn.of_type(t, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id}
    ]
    assert {r["RouteKey"] for r in routes} == {"POST /voice", "POST /action", "POST /dial-status", "GET /health"}
    for route in routes:
        (integration_id,) = cfn.refs(route["Target"])
        integration = t["Resources"][integration_id]["Properties"]
        assert cfn.refs(integration["IntegrationUri"]) == {_functions(default)["webhook"]}
        assert integration["PayloadFormatVersion"] == "2.0"


def test_webhook_stage_is_throttled_and_logged(default: Synthesized) -> None:
    props = default.template["Resources"][default.logical_id(default.stack.webhook_api.stage)]["Properties"]
    assert props["StageName"] == "$default"
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == 10
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 20
    assert "$context.requestId" in props["AccessLogSettings"]["Format"]


def test_webhook_has_no_function_url(default: Synthesized) -> None:
    # The HTTP API is the public door (docs/deploy.md says why); a Function URL would be a second one.
    assert cfn.of_type(default.template, "AWS::Lambda::Url") == {}


# --- the sessions table -----------------------------------------------------------------------


def test_table_follows_the_runtime_schema(default: Synthesized) -> None:
    default.assertions.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [dict(k) for k in table_schema.KEY_SCHEMA],
            "AttributeDefinitions": Match.array_equals([dict(a) for a in table_schema.ATTRIBUTE_DEFINITIONS]),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": table_schema.TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_table_is_retained_by_default_and_can_be_let_go(default: Synthesized, options: Synthesized) -> None:
    default.assertions.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"DeletionProtectionEnabled": False},
        },
    )
    options.assertions.has_resource(
        "AWS::DynamoDB::Table",
        {"DeletionPolicy": "Delete", "Properties": {"DeletionProtectionEnabled": True}},
    )


def test_session_store_permissions_are_per_function(default: Synthesized) -> None:
    table_id = default.logical_id(default.stack.sessions.table)
    roles = _roles(default)
    granted: dict[str, set[str]] = {}
    for role, statement in cfn.statements_by_role(default.template):
        if any(table_id in cfn.refs(r) for r in cfn.resources(statement)):
            granted.setdefault(role, set()).update(cfn.actions(statement))
    assert granted == {
        roles["message"]: set(MESSAGE_STORE_ACTIONS),
        roles["webhook"]: {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        roles["disconnect"]: {"dynamodb:UpdateItem"},  # it only marks its connection closed
        roles["timers"]: set(TIMERS_STORE_ACTIONS),  # a key entry's last turn is a turn
        roles["records"]: {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},  # no PutItem, no Scan
        roles["connect"]: {"dynamodb:UpdateItem", "dynamodb:PutItem"},  # it notes each socket's call
    }


def test_session_store_actions_cover_every_call_the_runtime_store_makes() -> None:
    source = "".join(
        p.read_text(encoding="utf-8") for p in (PROJECT / "functions/voice_agent/adapters").glob("dynamo_*.py")
    )
    calls = set(re.findall(r"\._db\.([a-z_]+)\(", source))
    assert calls, "the store's DynamoDB calls were not found; update this test with the store"
    needed = {"dynamodb:" + "".join(word.capitalize() for word in call.split("_")) for call in calls}
    assert needed <= set(SESSION_STORE_ACTIONS)


# --- the functions ----------------------------------------------------------------------------


def test_every_function_is_python313_on_arm64_with_its_own_entry_point(default: Synthesized) -> None:
    fns = cfn.of_type(default.template, "AWS::Lambda::Function")
    assert len(fns) == 6
    for props in (f["Properties"] for f in fns.values()):
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
    handlers = {f["Properties"]["Handler"] for f in fns.values()}
    assert handlers == {spec.handler for spec in (CONNECT, MESSAGE, DISCONNECT, WEBHOOK, TIMERS, RECORDS)}


def test_all_functions_share_one_code_asset(default: Synthesized) -> None:
    keys = {
        json.dumps(f["Properties"]["Code"]) for f in cfn.of_type(default.template, "AWS::Lambda::Function").values()
    }
    assert len(keys) == 1


def test_message_function_outlives_the_turn_budget_but_not_api_gateway(default: Synthesized) -> None:
    props = default.template["Resources"][_functions(default)["message"]]["Properties"]
    assert 25 < props["Timeout"] < 29  # runtime budget 25 s < timeout < API Gateway's 29 s
    assert props["MemorySize"] == MESSAGE.memory_mb
    for name in ("connect", "disconnect", "webhook"):
        assert default.template["Resources"][_functions(default)[name]]["Properties"]["Timeout"] <= 15
    # A key entry that ends on a timer runs a turn: the timers function keeps the turn's bound too.
    assert default.template["Resources"][_functions(default)["timers"]]["Properties"]["Timeout"] < 29


def test_every_function_logs_to_its_own_group_with_retention(default: Synthesized, options: Synthesized) -> None:
    for s, days in ((default, 14), (options, 30)):
        t = s.template
        groups = cfn.of_type(t, "AWS::Logs::LogGroup")
        for function_id in _functions(s).values():
            (group_id,) = cfn.refs(t["Resources"][function_id]["Properties"]["LoggingConfig"]["LogGroup"])
            assert groups[group_id]["Properties"]["RetentionInDays"] == days
        for group in groups.values():  # access logs too: nothing is kept forever
            assert group["Properties"]["RetentionInDays"] == days
            assert group["DeletionPolicy"] == "Delete"


def test_roles_have_no_managed_policies_and_no_wildcard_resources(default: Synthesized, options: Synthesized) -> None:
    for s in (default, options):
        for role in cfn.of_type(s.template, "AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"]
        for _, statement in cfn.statements_by_role(s.template):
            assert "*" not in cfn.resources(statement)


def test_each_function_may_write_only_its_own_logs(default: Synthesized) -> None:
    t = default.template
    for function_id in _functions(default).values():
        role = cfn.function_role(t, function_id)
        (own_group,) = cfn.refs(t["Resources"][function_id]["Properties"]["LoggingConfig"]["LogGroup"])
        log_statements = [
            s for r, s in cfn.statements_by_role(t) if r == role and "logs:PutLogEvents" in cfn.actions(s)
        ]
        assert [cfn.refs(s["Resource"]) for s in log_statements] == [{own_group}]


def _grants(s: Synthesized) -> dict[str, set[tuple[str, frozenset[str]]]]:
    """Role logical id -> every (action, logical ids its resources refer to) the role is allowed."""
    found: dict[str, set[tuple[str, frozenset[str]]]] = {}
    for role, statement in cfn.statements_by_role(s.template):
        assert statement["Effect"] == "Allow"
        assert "Condition" not in statement, statement
        targets = frozenset(ref for r in cfn.resources(statement) for ref in cfn.refs(r))
        found.setdefault(role, set()).update((action, targets) for action in cfn.actions(statement))
    return found


def model_grants(s: Synthesized) -> set[tuple[str, frozenset[str]]]:
    """The message role's access to its models: the OpenAI key's secret when an OpenAI model is in
    the chain, streaming invocation when a Bedrock one is (its ARNs are checked in
    ``test_model_access.py``: they hold no logical id)."""
    grants: set[tuple[str, frozenset[str]]] = set()
    if s.stack.openai_api_key is not None:
        grants.add(("secretsmanager:GetSecretValue", frozenset({s.logical_id(s.stack.openai_api_key.secret)})))
    if s.stack.model_access is not None:
        grants.add(("bedrock:InvokeModelWithResponseStream", frozenset()))
    return grants


@pytest.mark.parametrize("variant", ["default", "options", "snap_start"])
def test_each_role_is_allowed_exactly_the_actions_its_function_makes(
    variant: str, request: pytest.FixtureRequest
) -> None:
    """The whole policy of every role, action by action and resource by resource."""
    s: Synthesized = request.getfixturevalue(variant)
    st, t = s.stack, s.template
    fns, roles = _functions(s), _roles(s)
    table = s.logical_id(st.sessions.table)
    twilio_secret = s.logical_id(st.twilio_auth_token.secret)

    def own_logs(name: str) -> set[tuple[str, frozenset[str]]]:
        group = cfn.refs(t["Resources"][fns[name]]["Properties"]["LoggingConfig"]["LogGroup"])
        return {("logs:CreateLogStream", frozenset(group)), ("logs:PutLogEvents", frozenset(group))}

    def on(resource: str, *actions: str) -> set[tuple[str, frozenset[str]]]:
        return {(action, frozenset({resource})) for action in actions}

    timer_queue = s.logical_id(st.timers.queue)
    record_queue = s.logical_id(st.call_records.queue)
    send = ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
    consume = (
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
    )
    connections = on(s.logical_id(st.relay.api), "execute-api:ManageConnections")

    expected = {
        roles["connect"]: own_logs("connect")
        | on(twilio_secret, "secretsmanager:GetSecretValue")
        | on(table, "dynamodb:UpdateItem", "dynamodb:PutItem"),
        roles["message"]: own_logs("message")
        | on(table, *MESSAGE_STORE_ACTIONS)
        | connections
        | on(timer_queue, *send)
        | model_grants(s),
        roles["disconnect"]: own_logs("disconnect") | on(table, "dynamodb:UpdateItem"),
        roles["webhook"]: own_logs("webhook")
        | on(table, "dynamodb:GetItem", "dynamodb:UpdateItem")
        | on(twilio_secret, "secretsmanager:GetSecretValue")
        | on(record_queue, *send),
        roles["timers"]: own_logs("timers")
        | on(table, *TIMERS_STORE_ACTIONS)
        | connections
        | on(timer_queue, *send, *consume)
        | on(record_queue, *send)
        | model_grants(s),
        roles["records"]: own_logs("records")
        | on(table, *RECORDS_STORE_ACTIONS)
        | on(record_queue, *consume)
        | on(s.logical_id(st.call_records.bucket), "s3:PutObject", "s3:GetObject")
        | on(s.logical_id(st.call_records.bus), "events:PutEvents"),
    }
    assert _grants(s) == expected
    # No other role in the stack: nothing runs with permissions the test above does not see.
    assert set(cfn.of_type(t, "AWS::IAM::Role")) == set(roles.values())


# --- permissions that matter ------------------------------------------------------------------


def test_only_the_message_and_timers_functions_may_post_to_connections_of_this_api_and_stage(
    default: Synthesized,
) -> None:
    api_id = default.logical_id(default.stack.relay.api)
    grants = [
        (r, s) for r, s in cfn.statements_by_role(default.template) if "execute-api:ManageConnections" in cfn.actions(s)
    ]
    roles = _roles(default)
    assert sorted(r for r, _ in grants) == sorted([roles["message"], roles["timers"]])
    for _, statement in grants:
        (resource,) = cfn.resources(statement)
        assert resource != "*"
        assert cfn.refs(resource) == {api_id}
        assert cfn.render(resource).endswith(f":{api_id.lower()}-id/prod/*/@connections/*")


@pytest.mark.parametrize(
    ("variant", "secret", "readers"),
    [
        ("default", "twilio_auth_token", {"connect", "webhook"}),
        ("options", "twilio_auth_token", {"connect", "webhook"}),
        ("options", "openai_api_key", {"message", "timers"}),  # the timers: a key entry's last turn
        ("fallbacks", "openai_api_key", {"message", "timers"}),
    ],
)
def test_secrets_are_readable_only_by_the_functions_that_need_them(
    variant: str, secret: str, readers: set[str], request: pytest.FixtureRequest
) -> None:
    s: Synthesized = request.getfixturevalue(variant)
    secret_id = s.logical_id(getattr(s.stack, secret).secret)
    roles = _roles(s)
    can_read = {
        role
        for role, statement in cfn.statements_by_role(s.template)
        if "secretsmanager:GetSecretValue" in cfn.actions(statement)
        and any(secret_id in cfn.refs(r) for r in cfn.resources(statement))
    }
    assert can_read == {roles[n] for n in readers}
    assert cfn.of_type(s.template, "AWS::SecretsManager::ResourcePolicy") == {}


def test_no_openai_secret_without_an_openai_model(default: Synthesized) -> None:
    """Bedrock needs no key: the default stack holds one secret (Twilio's), $0.40 a month less."""
    assert default.stack.openai_api_key is None
    assert len(cfn.of_type(default.template, "AWS::SecretsManager::Secret")) == 1
    assert outputs.OPENAI_API_KEY_SECRET_ARN not in default.template["Outputs"]


# --- the model: Bedrock by IAM, exactly the configured models ------------------------------------

BEDROCK_ACTION = "bedrock:InvokeModelWithResponseStream"
NOVA_LITE_US = {
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
    *(
        f"arn:aws:bedrock:{r}::foundation-model/amazon.nova-lite-v1:0"
        for r in ("us-east-1", "us-east-2", "us-west-1", "us-west-2")
    ),
}


def _bedrock_grants(s: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r, st)
        for r, st in cfn.statements_by_role(s.template)
        if any(a.startswith("bedrock:") for a in cfn.actions(st))
    ]


def test_the_message_function_may_stream_from_exactly_the_configured_bedrock_models(default: Synthesized) -> None:
    """The default model is the US inference profile for Nova Lite: the profile in the stack's
    Region and the foundation model in every Region the profile routes to. Nothing else."""
    grants = _bedrock_grants(default)
    roles = _roles(default)
    # The message function, and the timers (a key entry's last turn); the records function only
    # when the agent asks the model for a summary or fields (not by default).
    assert sorted(role for role, _ in grants) == sorted([roles["message"], roles["timers"]])
    for _, statement in grants:
        assert statement["Effect"] == "Allow"
        assert cfn.actions(statement) == {BEDROCK_ACTION}
        resources = [cfn.render(r) for r in cfn.resources(statement)]
        assert set(resources) == NOVA_LITE_US
        assert not any("*" in r for r in resources)
        assert "Condition" not in statement


def test_a_chain_grants_each_bedrock_model_and_keys_only_for_openai(fallbacks: Synthesized) -> None:
    grants = dict(_bedrock_grants(fallbacks))
    statement = grants[_roles(fallbacks)["message"]]
    assert grants[_roles(fallbacks)["timers"]] == statement
    assert cfn.actions(statement) == {BEDROCK_ACTION}
    resources = {cfn.render(r) for r in cfn.resources(statement)}
    claude_in_region = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
    assert resources == NOVA_LITE_US | {claude_in_region}
    env = cfn.environment(fallbacks.template, _functions(fallbacks)["message"])
    assert names.OPENAI_API_KEY_SECRET_ARN in env  # the OpenAI fallback needs its key
    assert fallbacks.template["Outputs"][outputs.LLM_MODELS]["Value"] == (
        "bedrock:us.amazon.nova-lite-v1:0 bedrock:anthropic.claude-3-5-haiku-20241022-v1:0 openai:gpt-4.1-mini"
    )


def test_an_openai_deployment_has_no_bedrock_permission(options: Synthesized) -> None:
    assert _bedrock_grants(options) == []
    assert options.stack.model_access is None


def test_secrets_start_with_the_placeholder_the_runtime_refuses(default: Synthesized) -> None:
    for secret in cfn.of_type(default.template, "AWS::SecretsManager::Secret").values():
        assert secret["Properties"]["SecretString"].startswith("REPLACE")


# --- environment ------------------------------------------------------------------------------

COMMON = {
    names.RUNTIME_ENVIRONMENT,
    names.POWERTOOLS_SERVICE_NAME,
    names.POWERTOOLS_METRICS_NAMESPACE,
    names.POWERTOOLS_LOG_LEVEL,
}
EXPECTED_ENVIRONMENT = {
    "connect": COMMON | {names.SESSIONS_TABLE_NAME, names.RELAY_PUBLIC_URL, names.TWILIO_AUTH_TOKEN_SECRET_ARN},
    # Bedrock: IAM, no key
    "message": COMMON | {names.SESSIONS_TABLE_NAME, names.RELAY_CALLBACK_URL, names.TIMER_QUEUE_URL},
    "disconnect": COMMON | {names.SESSIONS_TABLE_NAME},
    "webhook": COMMON
    | {
        names.SESSIONS_TABLE_NAME,
        names.WEBHOOK_PUBLIC_URL,
        names.RELAY_PUBLIC_URL,
        names.TWILIO_AUTH_TOKEN_SECRET_ARN,
        names.RECORD_QUEUE_URL,
    },
    "timers": COMMON
    | {names.SESSIONS_TABLE_NAME, names.RELAY_CALLBACK_URL, names.TIMER_QUEUE_URL, names.RECORD_QUEUE_URL},
    "records": COMMON | {names.SESSIONS_TABLE_NAME, names.CALL_RECORDS_BUCKET, names.CALL_EVENTS_BUS},
}


def test_each_function_gets_only_the_settings_its_entry_point_reads(default: Synthesized) -> None:
    for name, function_id in _functions(default).items():
        env = cfn.environment(default.template, function_id)
        assert set(env) == EXPECTED_ENVIRONMENT[name], name
        assert env[names.RUNTIME_ENVIRONMENT] == "aws"
        assert env[names.POWERTOOLS_SERVICE_NAME] == names.SERVICE_NAME
        assert env[names.POWERTOOLS_METRICS_NAMESPACE] == "VoiceAgent"
        # Never a secret in plain text, never a switch that weakens the signature check.
        assert not set(env) & {names.TWILIO_AUTH_TOKEN, names.OPENAI_API_KEY, names.TWILIO_SIGNATURE_VALIDATION}


def test_optional_llm_settings_reach_only_the_functions_that_call_the_model(options: Synthesized) -> None:
    fns = _functions(options)
    env = cfn.environment(options.template, fns["message"])
    assert env[names.OPENAI_BASE_URL] == "https://llm.example.com/v1"
    assert env[names.LLM_PROVIDER] == "openai"
    assert env[names.LLM_MODEL] == "gpt-test"
    assert names.OPENAI_API_KEY_SECRET_ARN in env
    assert {k: v for k, v in cfn.environment(options.template, fns["timers"]).items() if "LLM" in k} == {
        k: v for k, v in env.items() if "LLM" in k
    }
    for name in ("connect", "disconnect", "webhook", "records"):
        assert names.LLM_MODEL not in cfn.environment(options.template, fns[name])
        assert names.LLM_PROVIDER not in cfn.environment(options.template, fns[name])


def test_the_runtime_accepts_the_environment_the_stack_sets(default: Synthesized, options: Synthesized) -> None:
    """Render each function's environment (intrinsics -> stand-ins) and load it the way a cold start does."""
    rendered = {}
    for s in (default, options):
        for name, function_id in _functions(s).items():
            env = {k: cfn.render(v) for k, v in cfn.environment(s.template, function_id).items()}
            env["AWS_LAMBDA_FUNCTION_NAME"] = name
            settings = Settings.from_env(env)
            assert settings.environment == "aws"
            assert settings.signature_validation is True
            rendered[(s.stack.stack_name, name)] = settings
    relay_api = default.logical_id(default.stack.relay.api).lower()
    webhook_api = default.logical_id(default.stack.webhook_api.api).lower()
    connect = rendered[("VoiceAgent", "connect")]
    assert connect.relay_public_url == f"wss://{relay_api}-id.execute-api.us-east-1.amazonaws.com/prod"
    assert rendered[("VoiceAgent", "webhook")].relay_public_url == connect.relay_public_url
    assert rendered[("VoiceAgent", "message")].relay_callback_url == (
        f"https://{relay_api}-id.execute-api.us-east-1.amazonaws.com/prod"
    )
    assert rendered[("VoiceAgent", "webhook")].webhook_public_url == (
        f"https://{webhook_api}-id.execute-api.us-east-1.amazonaws.com"
    )
    # With custom domains, Twilio dials (and signs) the custom URLs; posts still use execute-api.
    assert rendered[("VoiceAgentDev", "connect")].relay_public_url == "wss://relay.example.com/relay"
    assert rendered[("VoiceAgentDev", "webhook")].relay_public_url == "wss://relay.example.com/relay"
    assert rendered[("VoiceAgentDev", "webhook")].webhook_public_url == "https://voice.example.com"
    assert str(rendered[("VoiceAgentDev", "message")].relay_callback_url).endswith(".amazonaws.com/live")


def test_webhook_public_url_has_no_trailing_slash_in_the_template(default: Synthesized) -> None:
    # settings.py strips one anyway, but the signature is over base + "/voice": keep it exact.
    env = cfn.environment(default.template, _functions(default)["webhook"])
    assert not cfn.render(env[names.WEBHOOK_PUBLIC_URL]).endswith("/")


# --- options ----------------------------------------------------------------------------------


def test_custom_domains_map_the_relay_with_its_base_path_and_the_webhook_at_the_root(options: Synthesized) -> None:
    t = options.template
    domains = {d["Properties"]["DomainName"] for d in cfn.of_type(t, "AWS::ApiGatewayV2::DomainName").values()}
    assert domains == {"relay.example.com", "voice.example.com"}
    mappings = {
        next(iter(cfn.refs(m["Properties"]["ApiId"]))): m
        for m in cfn.of_type(t, "AWS::ApiGatewayV2::ApiMapping").values()
    }
    relay = mappings[options.logical_id(options.stack.relay.api)]
    assert relay["Properties"]["ApiMappingKey"] == "relay"
    assert relay["Properties"]["Stage"] == "live"
    assert options.logical_id(options.stack.relay.stage) in relay["DependsOn"]
    assert "ApiMappingKey" not in mappings[options.logical_id(options.stack.webhook_api.api)]["Properties"]


def test_message_function_can_be_kept_warm_with_provisioned_concurrency(options: Synthesized) -> None:
    t = options.template
    alias_id, alias = cfn.only(t, "AWS::Lambda::Alias")
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    message = t["Resources"][_functions(options)["message"]]["Properties"]
    assert message["ReservedConcurrentExecutions"] == 20
    # The relay's $default route invokes the alias, not $LATEST.
    api_id = options.logical_id(options.stack.relay.api)
    (default_route,) = (
        r["Properties"]
        for r in cfn.of_type(t, "AWS::ApiGatewayV2::Route").values()
        if r["Properties"]["ApiId"] == {"Ref": api_id} and r["Properties"]["RouteKey"] == "$default"
    )
    (integration_id,) = cfn.refs(default_route["Target"])
    assert cfn.refs(t["Resources"][integration_id]["Properties"]["IntegrationUri"]) == {alias_id}


def test_message_function_can_use_snap_start_instead(snap_start: Synthesized, default: Synthesized) -> None:
    message = snap_start.template["Resources"][_functions(snap_start)["message"]]["Properties"]
    assert message["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    _, alias = cfn.only(snap_start.template, "AWS::Lambda::Alias")
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    # Off by default: no alias, no version, nothing billed while idle.
    assert cfn.of_type(default.template, "AWS::Lambda::Alias") == {}
    assert "SnapStart" not in default.template["Resources"][_functions(default)["message"]]["Properties"]
    assert (
        "ReservedConcurrentExecutions"
        not in default.template["Resources"][_functions(default)["message"]]["Properties"]
    )


# --- monitoring -------------------------------------------------------------------------------


def test_alarms_on_errors_and_throttles_of_every_function(default: Synthesized) -> None:
    alarms = cfn.of_type(default.template, "AWS::CloudWatch::Alarm").values()
    queued = {"timers", "records"}  # retried by their queues: their dead-letter queues are alarmed
    for function_id in (f for name, f in _functions(default).items() if name not in queued):
        for metric in ("Errors", "Throttles"):
            assert any(
                a["Properties"].get("MetricName") == metric
                and a["Properties"]["Namespace"] == "AWS/Lambda"
                and a["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
                for a in alarms
            ), (function_id, metric)


def test_alarm_on_a_slow_time_to_first_phrase(default: Synthesized, options: Synthesized) -> None:
    for s, namespace, threshold in ((default, "VoiceAgent", 2500), (options, "VoiceAgentDev", 1800)):
        s.assertions.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric_names.TIME_TO_FIRST_PHRASE,
                "Namespace": namespace,
                "Dimensions": [{"Name": metric_names.SERVICE_DIMENSION, "Value": names.SERVICE_NAME}],
                "ExtendedStatistic": "p90",
                "Threshold": threshold,
                "ComparisonOperator": "GreaterThanThreshold",
                "TreatMissingData": "notBreaching",
            },
        )
    default.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": metric_names.LLM_ERRORS, "Statistic": "Sum"}
    )


def test_alarms_email_only_when_asked(default: Synthesized, options: Synthesized) -> None:
    assert cfn.of_type(default.template, "AWS::SNS::Topic") == {}
    for alarm in cfn.of_type(default.template, "AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm["Properties"]
    topic_id, _ = cfn.only(options.template, "AWS::SNS::Topic")
    options.assertions.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )
    for alarm in cfn.of_type(options.template, "AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


def test_cloudwatch_may_publish_alarms_to_the_topic_despite_enforce_ssl(options: Synthesized) -> None:
    """The topic's own policy replaces SNS's default one: without an Allow for CloudWatch, the
    enforce-SSL Deny is all it holds and every alarm e-mail is dropped without a word."""
    t = options.template
    topic_id, _ = cfn.only(t, "AWS::SNS::Topic")
    _, policy = cfn.only(t, "AWS::SNS::TopicPolicy")
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = (st for st in statements if st["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (allow,) = (st for st in statements if st["Effect"] == "Allow")
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Resource"] == {"Ref": topic_id}
    assert set(allow["Condition"]) == {"StringEquals", "ArnLike"}
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # Exactly the alarms that notify the topic, by ARN: no other alarm of the account may use it.
    notifying = {
        alarm_id
        for alarm_id, alarm in cfn.of_type(t, "AWS::CloudWatch::Alarm").items()
        if {"Ref": topic_id} in alarm["Properties"].get("AlarmActions", [])
    }
    assert len(notifying) == 12  # 4 functions x (errors, throttles), first phrase, LLM errors, 2 dead-letter queues
    source_arns = allow["Condition"]["ArnLike"]["aws:SourceArn"]
    assert all(arn == {"Fn::GetAtt": [arn["Fn::GetAtt"][0], "Arn"]} for arn in source_arns)
    assert {arn["Fn::GetAtt"][0] for arn in source_arns} == notifying


def test_dashboard_charts_every_metric_the_runtime_emits(default: Synthesized) -> None:
    _, dashboard = cfn.only(default.template, "AWS::CloudWatch::Dashboard")
    body = cfn.render(dashboard["Properties"]["DashboardBody"])
    declared = {v for k, v in vars(metric_names).items() if k.isupper() and k != "SERVICE_DIMENSION"}
    charted = {name for name in declared if f'"{name}"' in body}
    emitted = emitted_metric_names()  # by running the emitting code, not by reading the names
    assert charted == declared, declared - charted
    assert charted <= emitted, f"charted but never emitted: {charted - emitted}"


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_say_where_to_point_twilio_and_where_to_look(default: Synthesized, options: Synthesized) -> None:
    out = default.template["Outputs"]
    for name in (
        outputs.WEBHOOK_VOICE_URL,
        outputs.RELAY_URL,
        outputs.DASHBOARD_URL,
        outputs.TWILIO_AUTH_TOKEN_SECRET_ARN,
        outputs.SESSIONS_TABLE_NAME,
        outputs.LLM_MODELS,
        outputs.CALL_RECORDS_BUCKET,  # `make smoke` reads it to find the scripted call's record
        outputs.CALL_EVENTS_BUS,
        outputs.CALL_RECORDS_DEAD_LETTER_QUEUE,
        outputs.RECORDS_LOG_GROUP,
        outputs.TIMERS_LOG_GROUP,
    ):
        assert name in out, name
    assert out[outputs.LLM_MODELS]["Value"] == "bedrock:us.amazon.nova-lite-v1:0"
    assert outputs.OPENAI_API_KEY_SECRET_ARN in options.template["Outputs"]
    assert cfn.render(out[outputs.WEBHOOK_VOICE_URL]["Value"]).endswith(".amazonaws.com/voice")
    assert cfn.render(out[outputs.RELAY_URL]["Value"]).startswith("wss://")
    assert "#dashboards:name=" in cfn.render(out[outputs.DASHBOARD_URL]["Value"])
    assert outputs.RELAY_DOMAIN_TARGET not in out
    assert (
        cfn.render(options.template["Outputs"][outputs.WEBHOOK_VOICE_URL]["Value"]) == "https://voice.example.com/voice"
    )
    assert outputs.RELAY_DOMAIN_TARGET in options.template["Outputs"]
    assert outputs.WEBHOOK_DOMAIN_TARGET in options.template["Outputs"]
