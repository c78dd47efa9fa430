"""The webhook app. Every request is checked against ``X-Twilio-Signature`` over the public URL
Twilio used (``WEBHOOK_PUBLIC_URL`` + path + query), refused with a bare 403 otherwise."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse

from voice_agent import call_tokens, log, telemetry, wiring
from voice_agent import env_names as names
from voice_agent import metric_names as metric
from voice_agent.agent.config import AgentConfig
from voice_agent.core import call_flow
from voice_agent.core.ports import CallStore, RecordQueue
from voice_agent.core.routing import AGENT_PARAMETER, Agents
from voice_agent.core.speech_plan import SpeechPlan
from voice_agent.errors import StoreUnavailableError
from voice_agent.log import logger, mask_phone
from voice_agent.protocol.parameters import CALL_TOKEN_PARAMETER
from voice_agent.settings import Settings, load_settings
from voice_agent.signatures import SIGNATURE_HEADER, valid_webhook
from voice_agent.webhook import agent_choice, handoff, records, twiml
from voice_agent.webhook.forms import DialResult, Form, FormError, VoiceRequest, session_end

MAX_BODY_BYTES = 32 * 1024  # Twilio's voice webhooks are a few hundred bytes
MAX_FIELDS = 200
XML = "application/xml"


class Refused(Exception):
    def __init__(self, status: int, reason: str, checked_url: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.checked_url = checked_url  # the URL a refused signature had to be over (no query)


@dataclass(frozen=True, slots=True)
class Dependencies:
    """What the app needs, built lazily (importing the app touches no AWS service)."""

    settings: Callable[[], Settings] = load_settings
    agent: Callable[[], AgentConfig] = wiring.agent
    store: Callable[[], CallStore] = wiring.session_store
    auth_token: Callable[[], str | None] = wiring.twilio_auth_token
    records: Callable[[], RecordQueue | None] = wiring.record_queue  # asks for each finished call's record
    # Every agent and its numbers; None: wiring.agents(), or only ``agent`` when one was given.
    agents: Callable[[], Agents] | None = None


def create_app(deps: Dependencies | None = None) -> FastAPI:
    deps = deps or Dependencies()
    app = FastAPI(title="voice-agent webhook", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.deps = deps

    app.middleware("http")(_fresh_log_context)
    app.add_exception_handler(Refused, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(FormError, _bad_form)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _failed)

    @app.get("/health")
    def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.post("/voice")
    def voice(request: Request, form: Verified) -> Response:
        call = VoiceRequest.parse(form, dict(request.query_params))
        log.bind(call_sid=call.call_sid)
        name, agent = agent_choice.answering(deps, call)
        settings = deps.settings()
        logger.info(
            "incoming call",
            extra={
                "direction": call.direction,
                "status": call.call_status,
                "from": mask_phone(call.from_number),
                "to": mask_phone(call.to_number),
                "answered_by": call.answered_by,
                "agent": name or "default",
                "parameters": sorted(call.parameters),
            },
        )
        if call.answered_by and call.answered_by.startswith(("machine", "fax")):
            records.on_voicemail(deps.records(), deps.store(), call)
            return _xml(twiml.voicemail(agent))
        plan = SpeechPlan(record=agent.record_call)  # the call's only recording starts here
        token = _call_token(deps, call.call_sid)
        parameters = {
            **call.parameters,
            **({CALL_TOKEN_PARAMETER: token} if token else {}),
            **({AGENT_PARAMETER: name} if name else {}),
        }
        socket = _Socket(call.call_sid, token, session=0, agent=name)
        greeting = agent.lines.welcome_greeting
        return _relay(agent, settings, greeting=greeting, parameters=parameters, plan=plan, socket=socket)

    @app.post("/action")
    def action(request: Request, form: Verified) -> Response:
        end = session_end(form)
        log.bind(call_sid=end.call_sid)
        name, agent = agent_choice.named(deps, request.query_params.get(AGENT_PARAMETER))
        settings = deps.settings()
        decision = call_flow.decide(end, store=deps.store(), agent=agent)
        if isinstance(decision, call_flow.Reconnect) and decision.call_token is None:
            # the store lost the call's token (it was down at /voice): the URL still names the call
            decision = dataclasses.replace(decision, call_token=_derived_token(deps, end.call_sid))
        records.on_action(deps.records(), deps.store(), end, decision)
        logger.info(
            "relay session ended",
            extra={
                "session_status": end.session_status,
                "call_status": end.call_status,
                "error_code": end.error_code,
                "decision": type(decision).__name__,
            },
        )
        return _answer(decision, agent, settings, _Socket(end.call_sid, None, 0, agent=name))

    @app.post("/dial-status")
    def dial_status(request: Request, form: Verified) -> Response:
        result = DialResult.parse(form)
        log.bind(call_sid=result.call_sid)
        logger.info("transfer finished", extra={"dial_status": result.dial_status})
        records.on_dial_result(deps.records(), deps.store(), result)
        if result.connected:
            return _xml(twiml.hang_up())
        telemetry.record_count(metric.TRANSFERS_FAILED)
        agent = agent_choice.named(deps, request.query_params.get(AGENT_PARAMETER))[1]
        language = _call_language(deps.store(), result.call_sid)
        return _xml(twiml.transfer_failed(agent, language=language))

    @app.post("/whisper")
    def whisper(request: Request, form: Verified) -> Response:
        """Played to the person who answers a transfer, before the caller is bridged (handoff.py)."""
        query = dict(request.query_params)
        logger.info("transfer answered; whispering the handoff context")
        return _xml(handoff.whisper(agent_choice.named(deps, query.get(AGENT_PARAMETER))[1], query))

    return app


async def _fresh_log_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    log.start_invocation(request.scope.get("aws.context"))  # Mangum puts the Lambda context here
    return await call_next(request)


async def _refused(request: Request, exc: Refused) -> Response:
    logger.warning(
        "webhook request refused",
        extra={"path": request.url.path, "status": exc.status, "reason": exc.reason, "checked_url": exc.checked_url},
    )
    if exc.status == 403:
        telemetry.record_count(metric.REFUSED_SIGNATURES)
    return Response(status_code=exc.status)


async def _bad_form(request: Request, exc: FormError) -> Response:
    logger.warning("webhook form rejected", extra={"path": request.url.path, "reason": str(exc)})
    return Response(status_code=400)


async def _failed(request: Request, exc: Exception) -> Response:
    logger.exception("webhook failed", extra={"path": request.url.path})
    deps: Dependencies = request.app.state.deps
    return _after_failure(deps, request.url.path)


async def verified_form(request: Request) -> Form:
    """The request's form, if it is a form, small, and signed by Twilio (else ``Refused``)."""
    deps: Dependencies = request.app.state.deps
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise Refused(415, "not a form")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise Refused(413, "body too large")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, "body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "unreadable form") from exc
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    settings = deps.settings()
    if settings.signature_validation:
        token = deps.auth_token()
        url = _url(settings, request.url.path, request.url.query)
        if not token:
            raise Refused(500, "auth token not configured")
        if not valid_webhook(token, url, form, request.headers.get(SIGNATURE_HEADER)):
            raise Refused(403, "missing or invalid signature", checked_url=_url(settings, request.url.path))
    else:
        wiring.warn_if_unsigned()
    return form


Verified = Annotated[Form, Depends(verified_form)]


@dataclass(frozen=True, slots=True)
class _Socket:
    """Who the relay URL names: the call, its token, and which <Connect> of the call it is; and
    the agent that answers it (``""``: the default one), which the action URL names."""

    call_sid: str
    token: str | None
    session: int
    agent: str = ""


def _relay(
    agent: AgentConfig,
    settings: Settings,
    *,
    greeting: str,
    parameters: Mapping[str, str],
    plan: SpeechPlan,
    socket: _Socket,
) -> Response:
    """``<Connect action="/action"><ConversationRelay>`` for a new or a resumed session; the socket
    URL names the call and its token (``call_tokens``), so its upgrade binds it to the call, and the
    action URL names the agent, so ``/action`` answers as it with no read."""
    base = settings.require(settings.relay_public_url, names.RELAY_PUBLIC_URL)
    url = call_tokens.relay_url(base, socket.call_sid, socket.token, socket.session) if socket.token else base
    return _xml(
        twiml.connect(
            agent,
            relay_url=url,
            action_url=_url(settings, "/action", agent_choice.agent_query(socket.agent)),
            greeting=greeting,
            parameters=parameters,
            plan=plan,
        )
    )


def _answer(decision: call_flow.Decision, agent: AgentConfig, settings: Settings, call: _Socket) -> Response:
    """The TwiML for what ``call_flow.decide`` decided at the end of a relay session."""
    match decision:
        case call_flow.Reconnect():
            telemetry.record_count(metric.RECONNECTS)
            params = {**decision.parameters, "reconnectAttempt": str(decision.attempt)}
            if decision.call_token:
                params[CALL_TOKEN_PARAMETER] = decision.call_token
            socket = _Socket(call.call_sid, decision.call_token, session=decision.attempt, agent=call.agent)
            greeting = agent.lines.reconnect_greeting
            return _relay(agent, settings, greeting=greeting, parameters=params, plan=decision.plan, socket=socket)
        case call_flow.Transfer():
            telemetry.record_count(metric.TRANSFERS)
            reason_code = decision.handoff.get("reasonCode")
            _count_configuration_error(reason_code)
            logger.info("transferring to a person", extra={"reason_code": reason_code})
            return _xml(
                handoff.transfer(
                    agent,
                    decision.handoff,
                    dial_action_url=_url(settings, "/dial-status", agent_choice.agent_query(call.agent)),
                    whisper_url=_url(settings, "/whisper"),
                    agent_name=call.agent,
                    language=decision.language,
                )
            )
        case call_flow.Goodbye():
            _count_configuration_error(decision.reason_code)
            return _xml(twiml.goodbye(agent, say=decision.say, language=decision.language))
    return _xml(twiml.empty())


def _count_configuration_error(reason_code: str | None) -> None:
    if reason_code == call_flow.CONFIG_ERROR_REASON:
        telemetry.record_count(metric.CONFIGURATION_ERRORS)


def _call_language(store: CallStore, call_sid: str) -> str | None:
    try:
        call = store.get_call(call_sid)
    except StoreUnavailableError:
        return None
    return call.language if call is not None else None


def _after_failure(deps: Dependencies, path: str) -> Response:
    """Twilio would play "an application error has occurred": say something kinder, and for a
    session that just ended, hand the caller to a person rather than drop them."""
    try:
        agent = deps.agent()
        if path.endswith("/action"):
            return _xml(twiml.transfer(agent, dial_action_url=_url(deps.settings(), "/dial-status")))
        return _xml(twiml.goodbye(agent, say=True))
    except Exception:
        return Response(status_code=500)


def _call_token(deps: Dependencies, call_sid: str) -> str | None:
    """The call's token (``call_tokens``): an HMAC of the CallSid, kept on the call item too. Only a
    socket whose URL or setup carries it is bound to the call. Without an auth token (locally,
    unsigned) it is random. If the store cannot keep it, the URL still carries it ($connect checks
    it without the store) but setups are bound without the parameter check."""
    token = _derived_token(deps, call_sid) or secrets.token_urlsafe(24)
    try:
        return deps.store().issue_call_token(call_sid, token)
    except StoreUnavailableError:
        logger.error("call token not stored; the call's setups are bound without its check")
        return _derived_token(deps, call_sid)


def _derived_token(deps: Dependencies, call_sid: str) -> str | None:
    auth_token = deps.auth_token()
    return call_tokens.token_for(call_tokens.derive_key(auth_token), call_sid) if auth_token else None


def _url(settings: Settings, path: str, query: str = "") -> str:
    base = settings.require(settings.webhook_public_url, names.WEBHOOK_PUBLIC_URL)
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def _xml(document: str) -> Response:
    return Response(content=document, media_type=XML)


app = create_app()
