"""The webhook Lambda: the FastAPI app, served by Mangum (HTTP only; WebSocket routes are the
plain handlers next to this module)."""

from mangum import Mangum

from voice_agent.webhook.app import app

handler = Mangum(app, lifespan="off")
