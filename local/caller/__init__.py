"""A simulated Twilio caller: ConversationRelay's side of a call, driven by a script or a terminal.

It follows TwiML as Twilio does: posts the signed voice webhook, opens the signed WebSocket from
``<Connect><ConversationRelay url>``, sends ``setup``, ``prompt`` (optionally partial prompts
first), ``dtmf`` and ``interrupt``, checks every frame the app sends against the protocol, and
when the session ends (``end`` from the app, a dropped socket, a hang-up) posts the signed
``<Connect action>`` callback and follows the TwiML it gets back.

- ``twiml``: the TwiML documents it understands.
- ``frames``: what the app may send (anything else is a protocol error, as Twilio's 64107).
- ``phone``: one call and its relay sessions.
- ``scenario``: scripted calls from TOML files (``local/scenarios``) and their expectations.
- ``interactive``: a call typed in a terminal.
- ``__main__``: the command line (``python -m local.caller --help``).
"""
