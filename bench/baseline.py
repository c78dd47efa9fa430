"""The baseline: the simplest ConversationRelay server one could write.

One WebSocket endpoint, the conversation in memory, ``AsyncOpenAI`` streaming, and every token
forwarded as its own ``text`` frame the moment it arrives; ``last: true`` at the end; an
``interrupt`` cancels the reply. No state store, no phrasing, no generation checks, no Lambda.

It runs on the same server stack as the API Gateway stand-in (uvicorn with the same WebSocket
implementation, on a thread of the benchmark process) and calls the same fake model, so the
difference between the two is the project's share of the caller's wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, cast

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from local.servers import LOOPBACK, BackgroundServer

if TYPE_CHECKING:
    from openai import AsyncOpenAI

PATH = "/relay"


class BaselineServer:
    def __init__(self, *, llm_base_url: str, model: str, system_prompt: str, greeting: str) -> None:
        self._llm_base_url = llm_base_url
        self._model = model
        self._system_prompt = system_prompt
        self._greeting = greeting
        self._client: AsyncOpenAI | None = None
        app = Starlette(routes=[WebSocketRoute(PATH, self._session)])
        self._server = BackgroundServer(app, name="baseline")

    @property
    def url(self) -> str:
        return f"ws://{LOOPBACK}:{self._server.port}{PATH}"

    def start(self) -> BaselineServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _llm(self) -> AsyncOpenAI:
        if self._client is None:  # built on the server's event loop, on first use
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(base_url=self._llm_base_url, api_key="bench", max_retries=0)
        return self._client

    async def _session(self, websocket: WebSocket) -> None:
        await websocket.accept()
        history: list[dict[str, Any]] = [{"role": "system", "content": self._system_prompt}]
        speaking: asyncio.Task[None] | None = None
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                kind = message.get("type")
                if kind == "setup":
                    history.append({"role": "assistant", "content": self._greeting})
                elif kind == "prompt" and message.get("last", True):
                    if speaking is not None:
                        speaking.cancel()
                    history.append({"role": "user", "content": message["voicePrompt"]})
                    speaking = asyncio.create_task(self._reply(websocket, history))
                elif kind == "interrupt" and speaking is not None:
                    speaking.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            if speaking is not None:
                speaking.cancel()

    async def _reply(self, websocket: WebSocket, history: list[dict[str, Any]]) -> None:
        said: list[str] = []
        try:
            stream = await self._llm().chat.completions.create(
                model=self._model, messages=cast(Any, list(history)), stream=True
            )
            async for chunk in stream:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    said.append(delta)
                    await websocket.send_text(json.dumps({"type": "text", "token": delta, "last": False}))
            await websocket.send_text(json.dumps({"type": "text", "token": "", "last": True}))
        finally:
            with contextlib.suppress(Exception):
                history.append({"role": "assistant", "content": "".join(said)})
