"""The Twilio voice webhook: ``POST /voice`` (TwiML that connects the call to the agent) and
``POST /action`` (what happens when a relay session ends). FastAPI, served in Lambda by Mangum."""
