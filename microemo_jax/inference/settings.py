"""How answers are generated: the one place the defaults live (``predict``, ``evaluate``, ``serve`` and the
demo report take theirs from here)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
