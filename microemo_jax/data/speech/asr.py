"""Speech recognition (``make_asr(spec)``; ``spec`` as ``--asr`` takes it):

* ``whisper:PATH``: a Hugging Face ``WhisperForConditionalGeneration`` folder (config.json, safetensors,
  generation_config.json and the tokenizer files) run in JAX (``hf.load_whisper``), greedy decoding with
  timestamps: each voiced span (cut into windows of at most 30 s) gives timed segments of text;
* ``pocketsphinx``: CMU PocketSphinx with the US-English model its wheel ships: word timings, weak on
  anything but clear English, but real and offline; one utterance per voiced span with the words found;
* ``none``: no recognition (spans from voice activity only).

ASR only ever runs on voiced spans, so music, noise and silence never get text.
"""
from __future__ import annotations

import os
import re
from typing import Callable

import numpy as np

from microemo_jax.data.speech.log_mel import log_mel_spectrogram
from microemo_jax.data.speech.spans import SAMPLE_RATE, Utterance
from microemo_jax.data.speech.vad import warn_once
from microemo_jax.data.tokenizers import load_tokenizer

ASR_CHOICES = ('whisper:PATH', 'pocketsphinx', 'none')


class ASRError(ValueError):
    """A bad ``--asr`` value or a recognizer that cannot be set up; the message says what to do."""


def parse_asr(spec: str | None) -> str:
    """Normalise an ``--asr`` value: 'none', 'pocketsphinx' or 'whisper:/absolute/path'; raises ASRError."""
    if spec is None:
        return 'none'
    value = str(spec).strip()
    if value.lower() in ('none', 'pocketsphinx'):
        return value.lower()
    if value.lower().startswith('whisper:'):
        path = value.split(':', 1)[1].strip()
        if not path:
            raise ASRError("--asr whisper:PATH needs the folder of a Hugging Face Whisper checkpoint after "
                           "'whisper:' (e.g. whisper:/models/whisper-small)")
        if not os.path.isdir(path):
            raise ASRError(f"--asr {value}: {path} is not a folder (expected a Hugging Face "
                           f"WhisperForConditionalGeneration folder with config.json, model.safetensors, "
                           f"generation_config.json and the tokenizer files)")
        return 'whisper:' + os.path.abspath(path)
    raise ASRError(f"--asr {value!r}: expected one of {', '.join(ASR_CHOICES)}")


def default_asr() -> str:
    """'pocketsphinx' when its package is installed here (the offline default), else 'none' (said once)."""
    try:
        import pocketsphinx  # noqa: F401  (optional dependency: is it installed?)
        return 'pocketsphinx'
    except Exception as e:
        warn_once('pocketsphinx', f"pocketsphinx is unavailable ({type(e).__name__}: {e}); clips without subtitles "
                                   f"get spans but no words (pip install pocketsphinx, or pass --asr whisper:PATH)")
        return 'none'


def asr_source(spec: str) -> str:
    """The ``utterance_source`` of utterances recognised with ``spec``: 'asr-whisper' / 'asr-pocketsphinx'."""
    return 'asr-' + spec.split(':', 1)[0]


def asr_identity(spec: str):
    """What ``spec`` recognises with, for prepare's shard key: the spec, and for Whisper each file of the
    folder by (name, size, mtime) (cheap, unlike hashing gigabytes of weights)."""
    if not spec.startswith('whisper:'):
        return spec
    path = spec.split(':', 1)[1]
    files = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            st = os.stat(full)
            files.append([name, st.st_size, st.st_mtime_ns])
    return [spec, files]


Recognizer = Callable[[np.ndarray, list[Utterance]], list[Utterance]]


def make_asr(spec: str) -> Recognizer | None:
    """A recognizer ``(waveform, voiced spans) -> timed utterances with text`` for a parsed spec (None for 'none')."""
    spec = parse_asr(spec)
    if spec == 'none':
        return None
    if spec == 'pocketsphinx':
        return PocketSphinxASR()
    return WhisperASR(spec.split(':', 1)[1])


class LazyASR:
    """The recognizer of ``spec``, built on its first call (a clip that never reaches ASR costs nothing)."""

    def __init__(self, spec: str):
        self.spec, self.source, self._asr = parse_asr(spec), asr_source(parse_asr(spec)), None

    def __call__(self, waveform: np.ndarray, spans: list[Utterance]) -> list[Utterance]:
        if self._asr is None:
            self._asr = make_asr(self.spec)
        return self._asr(waveform, spans)


def lazy_asr(spec: str) -> LazyASR | None:
    """A ``LazyASR`` for a spec, None for 'none'."""
    return None if parse_asr(spec) == 'none' else LazyASR(spec)


_FILLER = re.compile(r'^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$')


class PocketSphinxASR:
    """PocketSphinx (US-English model of the wheel) on each voiced span; words with times -> one utterance per
    span (its first word's start to its last word's end) holding the words found."""

    source = 'asr-pocketsphinx'

    def __init__(self, **decoder_options):
        try:
            import pocketsphinx  # optional dependency
        except ImportError as e:
            raise ASRError(f"--asr pocketsphinx: the pocketsphinx package is not installed ({e}); pip install "
                           f"pocketsphinx, or pass --asr none") from None
        # maxhmmpf bounds the active search (PocketSphinx's own default, 30000, is ~3x slower here and found the
        # same words on espeak-ng sentences); the rest are the package's defaults.
        options = dict(samprate=SAMPLE_RATE, maxhmmpf=5000, loglevel='FATAL')
        options.update(decoder_options)
        self.decoder = pocketsphinx.Decoder(**options)
        self.frame_rate = int(self.decoder.config['frate'])

    def words(self, waveform: np.ndarray) -> list[tuple[float, float, str]]:
        """(start s, end s, word) of the words recognised in 16 kHz audio."""
        pcm = (np.clip(np.asarray(waveform, np.float32), -1, 1) * 32767).astype('<i2').tobytes()
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        out = []
        for seg in d.seg():
            word = re.sub(r'\(\d+\)$', '', seg.word)  # alternate pronunciations: 'the(2)' -> 'the'
            if not _FILLER.match(word):
                out.append((seg.start_frame / self.frame_rate, (seg.end_frame + 1) / self.frame_rate, word))
        return out

    def __call__(self, waveform: np.ndarray, spans: list[Utterance]) -> list[Utterance]:
        x = np.asarray(waveform, np.float32).reshape(-1)
        out = []
        for span in spans:
            a, b = int(span.start * SAMPLE_RATE), int(np.ceil(span.end * SAMPLE_RATE))
            words = self.words(x[a:b]) if b - a > SAMPLE_RATE // 10 else []
            if words:
                out.append(Utterance(span.start + words[0][0], min(span.end, span.start + words[-1][1]),
                                     ' '.join(w for _, _, w in words)))
        return out


class WhisperASR:
    """A Hugging Face Whisper checkpoint in JAX: each voiced span (in windows of at most the model's 30 s)
    transcribed with timestamps; each segment with text becomes an utterance."""

    source = 'asr-whisper'
    BATCH = 4  # windows per compiled call (a fixed batch: one compiled program)

    def __init__(self, path: str, *, language: str | None = None, max_new_tokens: int | None = None):
        # JAX start-up: only --asr whisper loads JAX models in a prepare worker
        from microemo_jax.hf import CheckpointError, load_whisper, load_whisper_generation_config
        try:
            self.model = load_whisper(path)
            self.gen = load_whisper_generation_config(path)
        except CheckpointError as e:
            raise ASRError(f"--asr whisper:{path}: {e}") from None
        try:
            self.tokenizer = load_tokenizer(path, what='Whisper')
        except (FileNotFoundError, ValueError) as e:
            raise ASRError(f"--asr whisper:{path}: {e} (the checkpoint folder needs the tokenizer files of the same "
                           f"Whisper model: tokenizer.json, tokenizer_config.json, ...)") from None
        self.language, self.max_new_tokens = language, max_new_tokens
        self.window = self.model.window_frames
        self.bins = self.model.encoder.cfg.num_mel_bins

    def _features(self, piece: np.ndarray) -> np.ndarray:
        """Whisper's input for a piece of audio: zero-padded to the window, then log-mel (as its extractor)."""
        x = np.zeros(self.window * 160, np.float32)
        x[:len(piece)] = piece
        return log_mel_spectrogram(x, self.bins)[:, :self.window]

    def text(self, tokens) -> str:
        ids = [t for t in tokens if t < self.gen.eos_token_id]
        return ' '.join(self.tokenizer.decode(ids, skip_special_tokens=True).split())

    def __call__(self, waveform: np.ndarray, spans: list[Utterance]) -> list[Utterance]:
        from microemo_jax.models.whisper.transcribe import transcribe  # JAX start-up: as in __init__
        x = np.asarray(waveform, np.float32).reshape(-1)
        step = self.window * 160
        pieces = []  # (start second, samples)
        for span in spans:
            a, b = int(span.start * SAMPLE_RATE), int(np.ceil(span.end * SAMPLE_RATE))
            for lo in range(a, b, step):
                pieces.append((lo / SAMPLE_RATE, x[lo:min(b, lo + step)]))
        out = []
        for k in range(0, len(pieces), self.BATCH):
            group = pieces[k:k + self.BATCH]
            feats = np.zeros((self.BATCH, self.bins, self.window), np.float32)
            for j, (_, piece) in enumerate(group):
                feats[j] = self._features(piece)
            segments = transcribe(self.model, feats, self.gen, language=self.language,
                                  max_new_tokens=self.max_new_tokens, num_rows=len(group))
            for (start, piece), segs in zip(group, segments):
                length = len(piece) / SAMPLE_RATE
                for seg in segs:
                    text = self.text(seg.tokens)
                    if text and seg.start < length:
                        out.append(Utterance(start + seg.start, start + min(max(seg.end, seg.start + 0.02), length),
                                             text))
        return out
