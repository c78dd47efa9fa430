"""What a turn has sent the caller: one small pure object, so "what was said" has one definition.

The turn engine adds each posted text frame; a tool round closes the round (what the model said
before calling its tools is stored with the call). ``whole`` is what a newer turn must see if it
takes over, ``this_round`` what the current round's stored message holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SpokenSoFar:
    words: int = 0
    _earlier: str = ""
    _round: list[str] = field(default_factory=list)

    def add(self, token: str) -> None:
        self._round.append(token)
        self.words += len(token.split())

    @property
    def this_round(self) -> str:
        return "".join(self._round)

    @property
    def whole(self) -> str:
        return self._earlier + self.this_round

    def close_round(self) -> str:
        """End a tool round: returns what it said; the next round starts empty."""
        said = self.this_round
        self._earlier += said
        self._round.clear()
        return said
