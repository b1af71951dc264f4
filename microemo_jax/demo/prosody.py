"""The voice of each prosody emotion, shared by both speech engines (``demo.tts``: espeak-ng, and the
synthetic voice of ``demo.voice``): pitch level and movement, speaking rate, loudness and voice quality."""
from __future__ import annotations

import dataclasses

SAMPLE_RATE = 16000


@dataclasses.dataclass(frozen=True)
class Prosody:
    """One emotion's voice: the synthetic voice reads every field, espeak-ng only ``espeak``."""
    pitch_hz: float      # mean f0
    accent_st: float     # pitch accent on stressed syllables, semitones
    decline_st: float    # declination over an utterance, semitones
    rate: float          # syllables per second
    gain: float          # peak amplitude
    tilt: float          # spectral tilt (higher = darker, softer voice)
    breath: float        # aspiration noise relative to the voice
    tremolo_hz: float    # pitch/amplitude tremolo (fear)
    final_rise_st: float  # rise on the last syllable (surprise)
    espeak: tuple[int, int, int, int]   # espeak-ng pitch (0-99), speed (wpm), amplitude (0-200), word gap (10 ms)


PROSODY = {
    'neutral': Prosody(195, 1.5, 2.0, 4.3, 0.30, 1.0, 0.02, 0.0, 0.0, (45, 160, 90, 1)),
    'happy': Prosody(245, 4.5, 1.0, 5.0, 0.45, 0.75, 0.02, 0.0, 0.0, (75, 185, 130, 0)),
    'sad': Prosody(168, 0.7, 2.5, 3.0, 0.16, 1.5, 0.12, 0.0, 0.0, (25, 115, 55, 4)),
    'angry': Prosody(225, 4.0, 0.5, 5.4, 0.75, 0.55, 0.02, 0.0, 0.0, (55, 205, 190, 0)),
    'surprised': Prosody(265, 5.0, 0.0, 4.6, 0.50, 0.8, 0.02, 0.0, 5.0, (85, 170, 140, 1)),
    'fearful': Prosody(255, 1.5, 0.5, 5.7, 0.30, 1.1, 0.10, 7.0, 0.0, (80, 215, 85, 0)),
    'disgusted': Prosody(172, 2.5, 3.5, 3.3, 0.35, 0.9, 0.05, 0.0, 0.0, (30, 130, 110, 3)),
}
