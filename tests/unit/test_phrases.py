from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from voice_agent.core.phrases import PhraseCoalescer, PhrasePolicy


def run(tokens: list[str], gap: float = 0.02, policy: PhrasePolicy | None = None) -> list[tuple[float, str]]:
    """Feed tokens ``gap`` seconds apart, polling in between; return (time, phrase) pairs."""
    c = PhraseCoalescer(policy or PhrasePolicy())
    out: list[tuple[float, str]] = []
    now = 0.0
    for token in tokens:
        now += gap
        out += [(now, p) for p in c.poll(now)]
        out += [(now, p) for p in c.feed(token, now)]
    rest = c.flush()
    if rest:
        out.append((now, rest))
    return out


def toks(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0], *(" " + w for w in words[1:])]


def test_the_first_token_goes_out_at_once() -> None:
    out = run(toks("Sure, I can help with that. What is your order number?"))
    assert out[0] == (0.02, "Sure,")
    assert out[1][1] == " I can help with that."


def test_leading_whitespace_alone_is_not_a_first_phrase() -> None:
    c = PhraseCoalescer()
    assert c.feed(" ", 0.0) == []
    assert c.feed("\n", 0.01) == []
    assert c.feed("Hi", 0.02) == [" \nHi"]


HELD = PhrasePolicy(first_immediate=False)


def test_a_held_first_phrase_goes_out_at_the_first_clause_boundary() -> None:
    out = run(toks("Sure, I can help with that. What is your order number?"), policy=HELD)
    assert out[0] == (0.04, "Sure,")  # emitted when the next token shows the boundary


def test_a_held_first_phrase_goes_out_after_a_few_words_without_punctuation() -> None:
    policy = PhrasePolicy(first_immediate=False, first_max_words=4, first_window_s=10)
    out = run(toks("Let me look that up for you right now please"), policy=policy)
    assert out[0][1] == "Let me look that"


def test_a_held_first_phrase_goes_out_when_its_window_runs_out() -> None:
    c = PhraseCoalescer(PhrasePolicy(first_immediate=False, first_max_words=10, first_window_s=0.15))
    assert c.feed("Well", 0.0) == []
    assert c.feed(" then", 0.05) == []
    assert c.deadline() == 0.15
    assert c.poll(0.1) == []
    assert c.poll(0.16) == ["Well"]  # cut at the last space: " then" may be unfinished
    assert c.pending == " then"


def test_a_single_unfinished_word_is_never_cut() -> None:
    c = PhraseCoalescer(PhrasePolicy(window_s=0.1))
    c.feed("Well", 0.0)
    c.feed(" Supercalifragilistic", 0.01)
    assert c.poll(5.0) == []


def test_decimal_points_and_abbreviations_inside_words_do_not_split() -> None:
    out = run(toks("It costs 3.50 dollars, e.g. for the small one."))
    joined = [p for _, p in out]
    assert all(not p.endswith("3.") for p in joined)
    assert "".join(joined) == "It costs 3.50 dollars, e.g. for the small one."


def test_later_short_clauses_wait_for_more_text() -> None:
    out = [p for _, p in run(toks("Okay. Yes, no, maybe, and then a longer clause follows here. Done."))]
    assert out[0] == "Okay."
    assert " Yes," not in out  # too short to be its own phrase after the first one
    assert out[-1].endswith("Done.")


def test_tokens_are_never_trimmed() -> None:
    text = "Hello there.  Two spaces,\tand a tab. End"
    assert "".join(p for _, p in run(toks(text))) == text


def test_boundary_inside_a_token_splits_there() -> None:
    c = PhraseCoalescer(HELD)
    assert c.feed("Yes. I", 0.0) == ["Yes."]
    assert c.pending == " I"


def test_a_typical_150_token_reply_needs_at_most_a_fifth_of_the_frames() -> None:
    sentence = (
        "Our store is open from nine in the morning until six in the evening on weekdays, "
        "and from ten until four on Saturdays; on Sundays we are closed, but you can still "
        "order online and pick up your items on Monday. "
    )
    tokens = toks((sentence * 4).strip())[:150]
    assert len(tokens) == 150
    phrases = run(tokens, gap=0.02)
    assert len(phrases) <= 30
    assert phrases[0] == (0.02, "Our")  # the first phrase is not held back


@settings(max_examples=200)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=80), st.floats(0.0, 0.5))
def test_no_text_is_lost_or_reordered(tokens: list[str], gap: float) -> None:
    phrases = run(tokens, gap=gap)
    assert "".join(p for _, p in phrases) == "".join(tokens)
    assert all(p.strip() for _, p in phrases[:-1])
