"""The whole system on one machine, in this process: what ``make dev`` runs and the e2e tests start.

- API Gateway WebSocket API and its three Lambdas: the ``apigw_ws`` stand-in on ``LOCAL_WS_PORT``,
  calling the real ``voice_agent.entry.ws_*`` handlers on threads; the management API
  (``/<stage>/@connections/{id}``) on the same port.
- The webhook: ``voice_agent.webhook.app:app`` (the app Mangum serves in Lambda) under uvicorn on
  ``LOCAL_HTTP_PORT``.
- The sessions table: DynamoDB Local (a Java child process) or moto server.
- The timer and records queues and their functions: moto's SQS server and a poller per queue that
  invokes the real ``voice_agent.entry.silence_timer`` / ``record_builder`` handlers (``timers.py``);
  call records land in ``LOCAL_CALL_RECORDS_DIR`` (``.local/calls/``) as ``<CallSid>.json``, their
  events in ``events.jsonl`` beside them.
- The language model: whichever provider the agent runs on (``LLM_PROVIDER``, else the agent
  configuration's), at the endpoint the environment names, or the offline demo model behind a
  stand-in that speaks that provider's wire protocol (Bedrock's event stream, or OpenAI's
  server-sent events), so the real client runs either way.

The handlers read their configuration from ``os.environ`` (once per process, as a Lambda does per
cold start), so :meth:`LocalStack.start` puts the local values there and :meth:`LocalStack.stop`
restores what was there before. Credentials are dummies: nothing local ever reaches real AWS.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from local.apigw_ws import INTEGRATION_TIMEOUT_S, ApiGatewayWebSocketStandIn, Invocation, Routes
from local.bedrock_server import BedrockStandIn
from local.demo_model import TIME_TO_FIRST_TOKEN_S, TOKEN_INTERVAL_S, DemoBrain
from local.dynamodb import LOCAL_CREDENTIALS, DynamoEngine, create_sessions_table, start_engine
from local.openai_server import Brain, OpenAICompatibleServer
from local.servers import LOOPBACK, BackgroundServer
from local.timers import RECORDS, TIMERS, LocalQueues
from voice_agent import env_names as names
from voice_agent.model_choice import PROVIDERS, Provider, providers
from voice_agent.signatures import SIGNATURE_HEADER

log = logging.getLogger("local.stack")

DEFAULT_HTTP_PORT: Final = 8080
DEFAULT_WS_PORT: Final = 8765
HTTP_PORT_VARIABLE: Final = "LOCAL_HTTP_PORT"
WS_PORT_VARIABLE: Final = "LOCAL_WS_PORT"
DEFAULT_STAGE: Final = "local"
DEFAULT_TABLE: Final = "voice-agent-local-sessions"
VOICE_PATH: Final = "/voice"
ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_RECORDS_DIR: Final = ROOT / ".local" / "calls"

# Variables that would send a local process to real AWS or to a real secret.
_CLEARED: Final = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI",
    "AWS_LAMBDA_FUNCTION_NAME",
    names.TWILIO_AUTH_TOKEN_SECRET_ARN,
    names.OPENAI_API_KEY_SECRET_ARN,
    names.TWILIO_SIGNATURE_VALIDATION,
    # Queues, records and events: always the local stand-ins, never an account's.
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    names.TIMER_QUEUE_URL,
    names.RECORD_QUEUE_URL,
    names.CALL_RECORDS_BUCKET,
    names.CALL_EVENTS_BUS,
)


# A Bedrock API key (boto3 sends it as a bearer token instead of signing).
BEDROCK_API_KEY: Final = "AWS_BEARER_TOKEN_BEDROCK"


def records_dir_from_env(env: Mapping[str, str] | None = None) -> Path:
    """``LOCAL_CALL_RECORDS_DIR`` (relative to the working directory), else ``.local/calls/``."""
    raw = (os.environ if env is None else env).get(names.LOCAL_CALL_RECORDS_DIR, "").strip()
    return Path(raw).resolve() if raw else DEFAULT_RECORDS_DIR


def port_from_env(variable: str, default: int, env: Mapping[str, str] | None = None) -> int:
    raw = (os.environ if env is None else env).get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ValueError(f"{variable} must be a port number (0 picks a free one), got {raw!r}")
    return int(raw)


LlmChoice = Literal["auto", "demo"]


@dataclass(frozen=True)
class StackOptions:
    http_port: int = DEFAULT_HTTP_PORT  # 0: a free port
    ws_port: int = DEFAULT_WS_PORT
    stage: str = DEFAULT_STAGE
    table_name: str = DEFAULT_TABLE
    dynamodb: Literal["auto", "dynamodb-local", "moto"] = "auto"
    # auto: each provider the model chain needs at the endpoint the environment names (OpenAI with
    # OPENAI_API_KEY, the server at OPENAI_BASE_URL, the Bedrock endpoint at
    # AWS_ENDPOINT_URL_BEDROCK_RUNTIME), else the demo model behind that provider's stand-in;
    # demo: the demo model whatever the environment says.
    llm: LlmChoice = "auto"
    # The first model's provider; None: LLM_PROVIDER, else OpenAI when an OPENAI_* variable is set
    # (as before Bedrock), else the agent configuration's.
    provider: Provider | None = None
    # Providers to serve even if the chain does not need them (tests switch between them).
    serve: tuple[Provider, ...] = ()
    # The Bedrock stand-in thinks aloud before a tool call, as Amazon Nova does.
    think_aloud: bool = True
    # None: TWILIO_AUTH_TOKEN from the environment (unset: signatures are not checked, loudly).
    twilio_auth_token: str | None = None
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S
    model_ttft_s: float = TIME_TO_FIRST_TOKEN_S
    model_token_interval_s: float = TOKEN_INTERVAL_S
    brain: Brain | None = None  # replaces the demo model's rules (tests)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    on_invocation: Callable[[Invocation], None] | None = None
    # Silence reminders, key-entry pauses, the time limit (the timer queue); off: none of them.
    timers: bool = True
    # Where call records go (None: LOCAL_CALL_RECORDS_DIR, else .local/calls/).
    records_dir: Path | None = None


@dataclass(frozen=True)
class StackUrls:
    webhook: str | None  # http://127.0.0.1:8080 (None: the webhook app is not in this checkout)
    relay: str  # ws://127.0.0.1:8765/local
    callback: str  # http://127.0.0.1:8765/local
    dynamodb: str
    llm: str  # which model, served where
    records_dir: Path | None = None  # <CallSid>.json per finished call, events.jsonl

    @property
    def voice(self) -> str | None:
        return None if self.webhook is None else self.webhook + VOICE_PATH


def webhook_app() -> Any | None:
    """The FastAPI app Mangum serves in Lambda, or None if this checkout has no webhook yet."""
    try:
        module = importlib.import_module("voice_agent.webhook.app")
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("voice_agent.webhook"):
            return None
        raise
    return module.app


class LocalStack:
    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.engine: DynamoEngine | None = None
        self.model: OpenAICompatibleServer | None = None
        self.bedrock: BedrockStandIn | None = None
        self.provider: Provider = "bedrock"
        self.brain: Brain | None = None
        self.gateway: ApiGatewayWebSocketStandIn | None = None
        self.webhook: BackgroundServer | None = None
        self.queues: LocalQueues | None = None
        self.records_dir = self.options.records_dir or records_dir_from_env()
        self.env: dict[str, str] = {}
        self.llm_description = ""
        self._saved_env: dict[str, str | None] = {}
        self._urls: StackUrls | None = None
        self._external_bedrock = False  # the environment's Bedrock endpoint, with its credentials

    @property
    def urls(self) -> StackUrls:
        if self._urls is None:
            raise RuntimeError("the stack is not started")
        return self._urls

    @property
    def signatures_checked(self) -> bool:
        return bool(self.env.get(names.TWILIO_AUTH_TOKEN))

    @property
    def auth_token(self) -> str | None:
        return self.env.get(names.TWILIO_AUTH_TOKEN) or None

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        o = self.options
        # 1. DynamoDB first: the Java child is forked before this process starts its threads.
        self.engine = start_engine(o.dynamodb)
        self._external_bedrock = self._names_a_bedrock_endpoint()
        create_sessions_table(self.engine.endpoint_url, o.table_name, self._credentials())
        # 2. The model, and the queues of the timers and the records.
        llm_env = self._start_model()
        handlers = {RECORDS: _record_handler, **({TIMERS: _timer_handler} if o.timers else {})}
        self.queues = LocalQueues(handlers).start()
        # 3. Both ports are bound now, so the public URLs are known before any handler runs.
        # As deployed (infra/constructs/relay_api.py): the connect function is also the $connect
        # route's authorizer, and its context (the socket's call) reaches every message event.
        routes = Routes(
            connect=_connect_handler,
            authorizer=_connect_handler,
            authorizer_headers=(SIGNATURE_HEADER,) if self._twilio_auth_token() else (),
            default=_message_handler,
            disconnect=_disconnect_handler,
        )
        self.gateway = ApiGatewayWebSocketStandIn(
            routes,
            stage=o.stage,
            port=o.ws_port,
            integration_timeout_s=o.integration_timeout_s,
            function_timeout_s=o.integration_timeout_s,
            on_invocation=o.on_invocation,
        )
        app = webhook_app()
        if app is not None:
            self.webhook = BackgroundServer(app, name="webhook", port=o.http_port)
        webhook_url = None if self.webhook is None else f"http://{LOOPBACK}:{self.webhook.port}"
        self._urls = StackUrls(
            webhook=webhook_url,
            relay=self.gateway.url,
            callback=self.gateway.callback_url,
            dynamodb=self.engine.endpoint_url,
            llm=self.llm_description,
            records_dir=self.records_dir,
        )
        # 4. The environment the handlers read, then the servers.
        self._apply_env(self._environment(llm_env, webhook_url or f"http://{LOOPBACK}:{o.http_port}"))
        from voice_agent import wiring

        wiring.reset()
        self.gateway.start()
        if self.webhook is not None:
            self.webhook.start()

    def _start_model(self) -> dict[str, str]:
        """Serve every provider the model chain needs; returns the handlers' model settings."""
        from voice_agent.agent.config import AGENT

        o = self.options
        self.provider = self._provider()
        chain = AGENT.llm_chain(self.provider, os.environ.get(names.LLM_MODEL, "").strip() or None)
        needed = providers(chain) | set(o.serve)
        out: dict[str, str] = {names.LLM_PROVIDER: self.provider}
        said: list[str] = []
        if "bedrock" in needed:
            out.update(self._bedrock(said))
        if "openai" in needed:
            out.update(self._openai(said))
        first = chain[0]
        self.llm_description = f"{first} on " + "; ".join(said)
        return out

    def _provider(self) -> Provider:
        from voice_agent.agent.config import AGENT

        env = os.environ
        chosen = self.options.provider or env.get(names.LLM_PROVIDER, "").strip().lower() or None
        if chosen is not None:
            if chosen not in PROVIDERS:
                raise ValueError(f"{names.LLM_PROVIDER} must be one of {', '.join(PROVIDERS)}, not {chosen!r}")
            return chosen
        openai_set = any(env.get(n, "").strip() for n in (names.OPENAI_BASE_URL, names.OPENAI_API_KEY))
        if self.options.llm == "auto" and openai_set:
            return "openai"
        return AGENT.llm_provider

    def _brain(self) -> Brain:
        if self.brain is None:
            self.brain = self.options.brain or DemoBrain()
        return self.brain

    def _bedrock(self, said: list[str]) -> dict[str, str]:
        o = self.options
        endpoint = os.environ.get(names.BEDROCK_ENDPOINT_URL, "").strip()
        if self._external_bedrock:
            said.append(f"the Bedrock endpoint at {endpoint} ({names.BEDROCK_ENDPOINT_URL})")
            return {names.BEDROCK_ENDPOINT_URL: endpoint}
        self.bedrock = BedrockStandIn(
            self._brain(), ttft_s=o.model_ttft_s, token_interval_s=o.model_token_interval_s, think_aloud=o.think_aloud
        ).start()
        said.append(f"the offline demo model behind the Bedrock stand-in at {self.bedrock.endpoint_url}")
        return {names.BEDROCK_ENDPOINT_URL: self.bedrock.endpoint_url}

    def _openai(self, said: list[str]) -> dict[str, str]:
        o = self.options
        env = os.environ
        if o.llm == "auto" and env.get(names.OPENAI_BASE_URL, "").strip():
            said.append(f"the OpenAI-compatible server at {env[names.OPENAI_BASE_URL].strip()}")
            return {names.OPENAI_BASE_URL: env[names.OPENAI_BASE_URL].strip()}
        if o.llm == "auto" and env.get(names.OPENAI_API_KEY, "").strip():
            said.append("OpenAI (OPENAI_API_KEY is set)")
            return {}
        self.model = OpenAICompatibleServer(
            self._brain(), ttft_s=o.model_ttft_s, token_interval_s=o.model_token_interval_s, model="local-demo"
        ).start()
        said.append(f"the offline demo model behind the OpenAI-compatible stand-in at {self.model.base_url}")
        # A dummy key: a real one must not travel to the demo server.
        return {names.OPENAI_BASE_URL: self.model.base_url, names.OPENAI_API_KEY: "local-demo"}

    def _names_a_bedrock_endpoint(self) -> bool:
        """The environment's own Bedrock endpoint is used (the chain needs Bedrock, llm=auto)."""
        from voice_agent.agent.config import AGENT

        if self.options.llm != "auto" or not os.environ.get(names.BEDROCK_ENDPOINT_URL, "").strip():
            return False
        chain = AGENT.llm_chain(self._provider(), os.environ.get(names.LLM_MODEL, "").strip() or None)
        return "bedrock" in providers(chain)

    def _credentials(self) -> dict[str, str]:
        """Dummies, so nothing local reaches AWS; with a Bedrock endpoint of the environment's own
        (``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), the environment's credentials and region, which that
        endpoint may check. Every other client still has a loopback endpoint."""
        credentials = dict(LOCAL_CREDENTIALS)
        env = os.environ
        if self._external_bedrock and env.get("AWS_ACCESS_KEY_ID", "").strip():
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                credentials[name] = env.get(name, "").strip()  # empty: unset (no session token)
        if self._external_bedrock:
            region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip()
            if region:
                credentials["AWS_REGION"] = credentials["AWS_DEFAULT_REGION"] = region
        else:
            credentials[BEDROCK_API_KEY] = ""  # a real Bedrock API key must not travel to the stand-in
        return credentials

    def _twilio_auth_token(self) -> str:
        """The token the handlers will check signatures with ("" when they check none)."""
        o = self.options
        token = o.twilio_auth_token if o.twilio_auth_token is not None else os.environ.get(names.TWILIO_AUTH_TOKEN, "")
        return token.strip()

    def _environment(self, llm_env: Mapping[str, str], webhook_url: str) -> dict[str, str]:
        assert self.engine is not None
        assert self.gateway is not None
        assert self.queues is not None
        o = self.options
        queues = {names.RECORD_QUEUE_URL: self.queues.url(RECORDS)}
        if TIMERS in self.queues.queues:
            queues[names.TIMER_QUEUE_URL] = self.queues.url(TIMERS)
        token = self._twilio_auth_token()
        env = {
            **self._credentials(),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            names.RUNTIME_ENVIRONMENT: "local",
            names.SESSIONS_TABLE_NAME: o.table_name,
            names.DYNAMODB_ENDPOINT_URL: self.engine.endpoint_url,
            names.RELAY_PUBLIC_URL: self.gateway.url,
            names.RELAY_CALLBACK_URL: self.gateway.callback_url,
            names.WEBHOOK_PUBLIC_URL: webhook_url,
            names.TWILIO_AUTH_TOKEN: token,
            names.SQS_ENDPOINT_URL: self.queues.endpoint_url,
            names.LOCAL_CALL_RECORDS_DIR: str(self.records_dir),
            **queues,
            **llm_env,
            **o.extra_env,
        }
        return env

    def _apply_env(self, env: dict[str, str]) -> None:
        for name in (*_CLEARED, *env):
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
        for name in _CLEARED:
            os.environ.pop(name, None)
        for name, value in env.items():
            if value:
                os.environ[name] = value
            else:
                os.environ.pop(name, None)  # empty means unset (e.g. no Twilio token)
        self.env = {k: v for k, v in env.items() if v}

    def stop(self) -> None:
        """Stop everything that was started, in reverse order, and restore the environment."""
        for stop in (
            self.webhook.stop if self.webhook else None,
            self.gateway.stop if self.gateway else None,
            self.queues.stop if self.queues else None,
            self.model.stop if self.model else None,
            self.bedrock.stop if self.bedrock else None,
            self.engine.stop if self.engine else None,
        ):
            if stop is None:
                continue
            try:
                stop()
            except Exception:
                log.exception("stopping a part of the local stack failed")
        self.webhook = self.gateway = self.model = self.engine = None
        self.queues = None
        self.bedrock = None
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        from voice_agent import wiring

        wiring.reset()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# The handlers are imported when first invoked, after the environment is in place (like a cold
# start); these wrappers keep the stand-in's routes independent of import order.


def _connect_handler(event: dict[str, Any], context: Any) -> Any:
    from voice_agent.entry import ws_connect

    return ws_connect.handler(event, context)


def _message_handler(event: dict[str, Any], context: Any) -> Any:
    from voice_agent.entry import ws_message

    return ws_message.handler(event, context)


def _disconnect_handler(event: dict[str, Any], context: Any) -> Any:
    from voice_agent.entry import ws_disconnect

    return ws_disconnect.handler(event, context)


def _timer_handler(event: dict[str, Any], context: Any) -> Any:
    from voice_agent.entry import silence_timer

    return silence_timer.handler(event, context)


def _record_handler(event: dict[str, Any], context: Any) -> Any:
    from voice_agent.entry import record_builder

    return record_builder.handler(event, context)
