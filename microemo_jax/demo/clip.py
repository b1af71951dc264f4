"""One demo clip, rendered from its script: the speech track, the animated face, and the files (NAME.mp4, NAME.srt).

* ``NAME.mp4``: H.264 (yuv420p, 25 fps, ``size`` px square) + AAC (16 kHz mono), 2-4 s. The face is the
  real photo of ``skimage.data.astronaut()`` animated by warps (``demo.face``): an expression with an
  onset, talking mouth motion driven by the speech loudness, blinks, a small head sway, and in some clips
  a micro-expression of 3-6 frames (0.12-0.24 s), placed inside the first (cover) utterance and between
  the frames the model's global branch samples (``global_frame_indices``).
* ``NAME.srt``: one cue per utterance (1-3 per clip, pauses between), timed to the speech (``demo.tts``).

Deterministic: clip i depends only on (seed, i) (and the speech engine), and the encoders run
single-threaded with fixed settings, so equal inputs give byte-identical files.
"""
from __future__ import annotations

import functools
from fractions import Fraction

import av
import cv2
import numpy as np

from microemo_jax.data.video import sample_times
from microemo_jax.demo import face as demo_face, script, tts
from microemo_jax.demo.script import FPS
from microemo_jax.safe_paths import inside

SAMPLE_RATE = tts.SAMPLE_RATE
MIN_SECONDS, MAX_SECONDS = 2.0, 4.0


def make_clip(out_dir: str, seed: int, index: int, size: int = 160, engine: str = 'synthetic',
              global_frames: int = script.GLOBAL_FRAMES) -> dict:
    """Write NAME.mp4 and NAME.srt for clip ``index``; return its hidden truth, openset and reason.
    ``global_frames``: the number of frames the model's global branch samples (uniformly: segment centres);
    a micro-expression never shows on one of them."""
    truth = script.plan_clip(seed, index)
    rng = np.random.default_rng([seed, index, 1])
    audio, utterances = _speech(truth, rng, engine)
    n_frames = int(round(len(audio) / SAMPLE_RATE * FPS))
    audio = audio[:n_frames * SAMPLE_RATE // FPS]
    truth['duration'] = round(n_frames / FPS, 3)
    truth['frames'] = n_frames
    truth['utterances'] = utterances
    truth['global_frames'] = global_frame_indices(n_frames, global_frames)
    if truth['micro'] is not None:
        _place_micro(truth, rng, n_frames)
    frames = _render(truth, audio, rng, size)
    truth['reason'] = script.explain(truth, np.random.default_rng([seed, index, 2]))
    write_video(inside(out_dir, truth['name'] + '.mp4'), frames, audio)
    write_srt(inside(out_dir, truth['name'] + '.srt'), utterances)
    truth.pop('sentences')
    truth.pop('fillers')
    return truth


def _speech(truth, rng, engine):
    """Speech track (lead-in, utterances with pauses, tail) and the utterance spans."""
    voice = truth['voice']['emotion']
    lead, tail = rng.uniform(0.25, 0.5), rng.uniform(0.3, 0.5)
    budget = MAX_SECONDS - lead - tail
    parts, spans, t = [], [], lead
    candidates = list(truth['sentences'])
    spoken = []
    for i, sentence in enumerate(candidates):
        pause = rng.uniform(0.25, 0.5) if spans else 0.0
        room = budget - (t - lead) - pause
        utt_rng = np.random.default_rng(rng.integers(2 ** 63))
        if i == 0:
            wave = tts.speak(sentence, voice, utt_rng, engine, max_seconds=room)
        else:
            wave = tts.speak(sentence, voice, utt_rng, engine)
            if len(wave) > room * SAMPLE_RATE:                      # too long: try a short filler instead
                sentence = truth['fillers'][len(spoken) % len(truth['fillers'])]
                wave = tts.speak(sentence, voice, utt_rng, engine)
                if len(wave) > room * SAMPLE_RATE:
                    break
        t += pause
        spans.append({'start': round(t, 3), 'end': round(t + len(wave) / SAMPLE_RATE, 3), 'text': sentence})
        parts.append((t, wave))
        spoken.append(sentence)
        t += len(wave) / SAMPLE_RATE
    total = max(MIN_SECONDS, t + tail)
    total = np.ceil(total * FPS) / FPS
    audio = np.zeros(int(round(total * SAMPLE_RATE)), np.float32)
    for start, wave in parts:
        a = int(round(start * SAMPLE_RATE))
        audio[a:a + len(wave)] += wave[:len(audio) - a]
    truth['sentences'] = spoken
    return audio, spans


def global_frame_indices(n_frames: int, count: int) -> list[int]:
    """The frames a model sampling ``count`` frames uniformly may show: for each sample time (data/video.py
    sample_times: segment centres), the frames on both sides of it (decode_clip takes the nearest)."""
    times = sample_times(n_frames / FPS, count) * FPS
    near = {int(np.floor(t + 1e-6)) for t in times} | {int(np.ceil(t - 1e-6)) for t in times}
    return sorted(i for i in near if 0 <= i < n_frames)


def _place_micro(truth, rng, n_frames):
    """A frame-aligned micro-expression that no global frame shows, inside the first (cover) utterance.

    Candidates are the starts whose frames stay clear of ``truth['global_frames']``, away from the clip's first 5 and last 8 frames, inside the first utterance
    (else any utterance, else anywhere); a micro-expression longer than every gap is shortened (>= 3 frames)."""
    micro = truth['micro']
    taken = np.zeros(n_frames, bool)
    taken[truth['global_frames']] = True
    spans = [truth['utterances'][:1], truth['utterances'], [{'start': 0.0, 'end': n_frames / FPS}]]
    for n in range(micro['frames'], script.MICRO_FRAMES[0] - 1, -1):
        for utterances in spans:
            starts = [s for u in utterances
                      for s in range(max(int(np.ceil(u['start'] * FPS)), 5),
                                     min(int(u['end'] * FPS), n_frames - 8) - n + 1)
                      if not taken[s:s + n].any()]
            if starts:
                start = int(rng.choice(starts))
                micro.update(frames=n, start_frame=start, start=round(start / FPS, 3), end=round((start + n) / FPS, 3),
                             frame_indices=list(range(start, start + n)))
                return
    raise ValueError(f"{truth['name']}: no room for a micro-expression between the global frames "
                     f"{truth['global_frames']} of a {n_frames}-frame clip")


def _render(truth, audio, rng, size):
    """All frames of the clip (uint8 RGB), from the expression timeline, speech loudness, blinks and sway."""
    n = truth['frames']
    t = np.arange(n) / FPS
    face = truth['face']
    rig = _rig(size)
    # displayed expression with its onset
    if face['onset'] > 0:
        ramp = np.clip((t - face['onset']) / 0.4, 0, 1)
        weight = face['intensity'] * ramp * ramp * (3 - 2 * ramp)
    else:
        weight = np.full(n, face['intensity'])
    base = np.stack([demo_face.expression(face['emotion'], w) for w in weight])
    # micro-expression: a fast rise to the full prototype, held, a fast fall
    micro_w = np.zeros(n, np.float32)
    if truth['micro'] is not None:
        m = truth['micro']
        prof = np.ones(m['frames'], np.float32)
        prof[0] = prof[-1] = 0.65
        micro_w[m['start_frame']:m['start_frame'] + m['frames']] = prof
        proto = demo_face.expression(m['emotion'], 1.0)
        base = base * (1 - micro_w[:, None]) + proto[None, :] * micro_w[:, None]
    # talking: lips part and the jaw drops with the loudness; louder voices open wider
    env = tts.frame_envelope(audio, n, FPS)
    openness = {'angry': 1.2, 'surprised': 1.2, 'happy': 1.1, 'sad': 0.7, 'disgusted': 0.8}.get(
        truth['voice']['emotion'], 1.0)
    idx = {k: demo_face.PARAMS.index(k) for k in ('teeth_upper', 'teeth_lower', 'jaw', 'blink')}
    base[:, idx['jaw']] += 0.3 * openness * env
    base[:, idx['teeth_upper']] += 0.45 * env * np.clip(1 - base[:, idx['teeth_upper']], 0, 1)
    base[:, idx['teeth_lower']] += 0.2 * env * np.clip(1 - base[:, idx['teeth_lower']], 0, 1)
    # blinks (every 2-4 s; none within 8 frames of a micro-expression, so that it stands alone)
    blink_profile = np.array([0.5, 1.0, 0.75, 0.3], np.float32)
    f = int(rng.integers(5, 40))
    while f < n:
        m = truth['micro']
        near_micro = m is not None and f + len(blink_profile) + 8 > m['start_frame'] and \
            f < m['start_frame'] + m['frames'] + 8
        if not near_micro:
            k = min(len(blink_profile), n - f)
            base[f:f + k, idx['blink']] = np.maximum(base[f:f + k, idx['blink']], blink_profile[:k])
        f += int(rng.integers(50, 100))
    # head sway: slow sines, with a small nod following the speech
    ph = rng.uniform(0, 2 * np.pi, 3)
    dx = 1.2 * np.sin(2 * np.pi * 0.27 * t + ph[0])
    dy = 0.8 * np.sin(2 * np.pi * 0.31 * t + ph[1]) + 0.6 * np.convolve(env, np.ones(9) / 9, 'same')
    deg = 1.5 * np.sin(2 * np.pi * 0.19 * t + ph[2])
    return [rig.render(base[i], (dx[i], dy[i], deg[i])) for i in range(n)]


@functools.cache
def _rig(size: int) -> demo_face.FaceRig:
    """One rig per frame size and process (building one prepares the texture and the warp fields)."""
    return demo_face.FaceRig(size)


def write_video(path: str, frames: list[np.ndarray], audio: np.ndarray) -> None:
    """H.264 yuv420p (25 fps) + AAC (16 kHz mono, 48 kb/s) mp4 with fixed single-threaded settings, so equal
    inputs give equal bytes."""

    h, w = frames[0].shape[:2]
    with av.open(path, 'w', format='mp4') as out:
        vs = out.add_stream('libx264', rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, 'yuv420p'
        vs.codec_context.thread_count = 1
        # mbtree off: with it x264 (asm) sometimes gives different bytes for the same frames under CPU load
        vs.options = {'preset': 'veryfast', 'crf': '18', 'threads': '1',
                      'x264-params': 'threads=1:lookahead-threads=1:mbtree=0'}
        aus = out.add_stream('aac', rate=SAMPLE_RATE, layout='mono')
        aus.bit_rate = 48000
        aus.codec_context.thread_count = 1
        # our own BT.601 limited-range conversion (what decoders assume): PyAV's implicit one inside encode()
        # is not always byte-reproducible
        yuv = (cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2YUV_I420) for img in frames)
        _encode(out, vs, FPS, (av.VideoFrame.from_ndarray(y, format='yuv420p') for y in yuv), step=1)
        chunk = 1024
        _encode(out, aus, SAMPLE_RATE, (_audio_frame(audio[i:i + chunk]) for i in range(0, len(audio), chunk)),
                step=chunk)


def _audio_frame(samples: np.ndarray):
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None, :], format='fltp',
                                       layout='mono')
    frame.sample_rate = SAMPLE_RATE
    return frame


def _encode(out, stream, rate: int, frames, *, step: int) -> None:
    """Encode ``frames`` into ``stream`` (frame k at pts k * step, time base 1/rate), flush it, mux the packets."""
    for k, frame in enumerate(frames):
        frame.pts = k * step
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def _srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(path: str, utterances: list[dict]) -> None:
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        for i, u in enumerate(utterances, 1):
            f.write(f"{i}\n{_srt_time(u['start'])} --> {_srt_time(u['end'])}\n{u['text']}\n\n")
