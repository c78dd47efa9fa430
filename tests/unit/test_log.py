from __future__ import annotations

import pytest

from voice_agent.log import error_summary, mask_phone


def test_error_summaries_keep_the_reason_and_drop_quoted_values() -> None:
    message = "language 'my card number is 4111 1111' is not available; available: en-US, es-ES"
    assert error_summary(message) == "language <27 chars> is not available; available: en-US, es-ES"
    assert error_summary('unknown tool "call 4155550123"') == "unknown tool <15 chars>"
    assert error_summary("lookup_order: missing arguments order_id") == "lookup_order: missing arguments order_id"
    assert len(error_summary("x" * 500)) == 200


def test_escaped_and_unterminated_quotes_are_masked_whole() -> None:
    # Python's repr of a name holding both quote kinds escapes one of them; a model chose the name.
    name = 'card 4111 1111 1111 1111, it\'s "mine" 1234'
    logged = error_summary(f"unknown tool {name!r}")
    assert logged.startswith("unknown tool <") and not any(c.isdigit() for c in logged.split("<")[0])
    for fragment in ("1234", "mine", "4111"):
        assert fragment not in logged
    assert "0123" not in error_summary("unknown tool 'call 4155550123")  # cut off before its quote


def test_sensitive_logging_keeps_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_SENSITIVE_DATA", "true")
    assert error_summary("language 'secret' is not available") == "language 'secret' is not available"
    assert mask_phone("+18005550100") == "+18005550100"
