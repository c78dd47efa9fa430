"""The rules both sides of a speculation decide by, and the history cache's check (issue 15)."""

from __future__ import annotations

from voice_agent.core.history_cache import HistoryCache
from voice_agent.core.model import OnAir, SpecSlot, TurnKey, TurnRecord, TurnTicket
from voice_agent.core.replay import fingerprint
from voice_agent.core.speculation_rules import answered_by_speculation, confirms, ends_a_sentence

FP = fingerprint("When do you open?")


def ticket(generation: int, unanswered: tuple[str, ...], spec: SpecSlot | None) -> TurnTicket:
    return TurnTicket("c1", "CA1", 1, generation, unanswered=unanswered, spec=spec)


def test_the_final_prompt_hands_over_only_on_the_same_words_at_the_next_generation() -> None:
    spec = SpecSlot("s1", FP, 4)
    assert answered_by_speculation(ticket(5, ("when do you OPEN",), spec))
    assert not answered_by_speculation(ticket(5, ("When do you close?",), spec))
    assert not answered_by_speculation(ticket(6, ("When do you open?",), spec))  # a generation in between
    assert not answered_by_speculation(ticket(5, ("Hi", "When do you open?"), spec))  # earlier words unanswered
    assert not answered_by_speculation(ticket(5, ("When do you open?",), None))


def test_the_speculator_sees_what_the_final_prompt_saw() -> None:
    spec = SpecSlot("s1", FP, 4)
    assert confirms(ticket(5, ("When do you open",), spec), "s1", 4, FP)
    assert not confirms(ticket(5, ("When do you open",), spec), "s2", 4, FP)  # another speculation's
    assert not confirms(ticket(5, ("When do you close",), spec), "s1", 4, FP)
    assert not confirms(ticket(4, (), spec), "s1", 4, FP)  # still waiting


def test_sentence_ends() -> None:
    assert ends_a_sentence("When do you open?")
    assert ends_a_sentence('He said "stop."')
    assert not ends_a_sentence("When do you open")


def record(gen: int, part: int, role: str, text: str) -> TurnRecord:
    return TurnRecord(key=TurnKey(1, gen, part), role=role, text=text)  # type: ignore[arg-type]


def test_the_history_cache_answers_only_the_next_generation_after_a_reply_sent_in_full() -> None:
    cache = HistoryCache()
    done = TurnTicket("c1", "CA1", 1, 3)
    cache.keep(done, [record(2, 0, "user", "a"), record(2, 1, "assistant", "b")], [record(3, 0, "user", "c")], 2)
    on_air = OnAir(generation=3, text="d", done=True)
    got = cache.history("c1", "CA1", 3, on_air)
    assert got is not None and [r.text for r in got] == ["b", "c"]  # the newest two, in key order
    assert cache.history("c1", "CA1", 4, on_air) is None  # something took a generation since
    assert cache.history("c1", "CA1", 3, OnAir(generation=3, text="d", done=False)) is None
    assert cache.history("c1", "CA-other", 3, on_air) is None
    assert cache.history("c2", "CA1", 3, on_air) is None
