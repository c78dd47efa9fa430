"""``make bench``: how long a caller waits because of this project, and what a call-minute costs.

The benchmark runs the real handlers on the local stack (the API Gateway stand-in, DynamoDB Local,
the management API reached by the real boto3 client) against an OpenAI-compatible fake model with
a set time to first token and token rate, side by side with the simplest ConversationRelay server
one could write (``baseline.py``), and prints a table plus ``.bench/results.json``:

1. added latency (prompt sent -> first text frame received), project vs baseline, interleaved;
2. frames per 150-token reply (PostToConnection calls) vs one frame per token;
3. DynamoDB requests per turn, fixed and per phrase;
4. a cold-start proxy: import time of each entry point in fresh interpreters, relative to boto3;
5. 50 concurrent calls of 5 turns: every reply delivered, every history correct, p95 latency.

``cost.py`` turns the counted requests into dollars per 1,000 call-minutes (prices in
``prices.py``). Nothing here is part of the timed test suite; ``tests/e2e`` runs a smoke version.
"""
