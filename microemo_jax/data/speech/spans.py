"""A timed stretch of a clip's speech: what subtitles, utterance files, voice activity and speech
recognition all produce, so each stage can be read without the others."""
from __future__ import annotations

import dataclasses

SAMPLE_RATE = 16000  # the rate every speech stage reads (Whisper's and Silero's)


@dataclasses.dataclass(frozen=True)
class Utterance:
    start: float  # seconds from the clip start
    end: float
    text: str
