"""Commands for a deployed stack: wire a Twilio number to it, place a call through it."""
