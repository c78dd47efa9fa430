"""Hypothesis building blocks for inbound ConversationRelay frames, shared by the fuzz tests of the
handler (``tests/integration/test_bad_input.py``) and of the live socket
(``tests/reliability/test_bad_frames.py``)."""

from __future__ import annotations

from hypothesis import strategies as st

KNOWN_TYPES = ["setup", "prompt", "dtmf", "interrupt", "error", "info"]
# Every field an inbound message of a known type may carry: fuzzed values go into these.
FIELDS = [
    "sessionId",
    "callSid",
    "voicePrompt",
    "last",
    "lang",
    "digit",
    "utteranceUntilInterrupt",
    "durationUntilInterruptMs",
    "description",
    "name",
    "value",
    "customParameters",
    "from",
    "direction",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
