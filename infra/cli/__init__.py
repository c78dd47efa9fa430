"""Commands around a deployed stack: check an account before deploying (preflight), prove a deployment
works (smoke), wire a Twilio number to it, place a call through it."""
