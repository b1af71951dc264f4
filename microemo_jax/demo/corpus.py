"""The embedded demo corpus: talking-face clips whose emotion is carried by face, micro-expression, voice and words.

    python -m microemo_jax.demo.corpus --out DIR --num 200 --seed 0 [--size 160] [--workers 2]
                                            [--speech auto|espeak|synthetic]

writes a ``folder``-layout corpus that ``python -m microemo_jax.prepare --source folder --raw DIR`` reads:

* ``DIR/NAME.mp4``: H.264 (yuv420p, 25 fps, ``size`` px square) + AAC (16 kHz mono), 2-4 s. The face is
  the real photo of ``skimage.data.astronaut()`` animated by warps (``demo_face``): an expression with an
  onset, talking mouth motion driven by the speech loudness, blinks, a small head sway, and in some clips
  a micro-expression of 3-10 frames (0.12-0.4 s).
* ``DIR/NAME.srt``: one cue per utterance (1-3 per clip, pauses between), timed to the speech.
* ``DIR/labels.csv``: ``name, openset, reason``; openset as in MER (``"['angry', 'annoyed']"``), the reason an
  EMER-style explanation ("In the video, ... In the audio, ... In the text, ... Therefore, ...") written
  from the clip's hidden truth, describing each modality's clue.
* ``DIR/corpus.json``: seed, num, generator version, speech engine and, per clip, the hidden truth
  (scenario, label emotion, displayed expression and onset, micro-expression emotion and frames, prosody
  emotion, text emotion/sentiment, utterance times). For checking the corpus; training never reads it.

Speech (``demo_speech``): espeak-ng with per-emotion pitch/speed/amplitude when it is on PATH, else a
synthetic source-filter voice whose pitch level and movement, rate, loudness and voice quality follow the
prosody emotion. Subtitles are the spoken sentences, drawn from small per-emotion templates.

Scenario mixture (a fixed cycle of 20 clips: every 20 consecutive clips have exactly these shares, and the
first 8 already cover every scenario). Emotions are drawn from happy, sad, angry, surprised, fearful, disgusted;
suppressed/masked ones from angry, sad, disgusted, fearful.

=================  =====  ==================  ===============  =============  ====================  ========
scenario           share  face                micro            voice          words                 label
=================  =====  ==================  ===============  =============  ====================  ========
congruent           25%   E                   -                E              E sentence            E
face_only           15%   E                   -                neutral        neutral statement     E
voice_only          15%   neutral             -                E              neutral statement     E
text_only           15%   neutral             -                neutral        E sentence            E
micro_suppressed    10%   neutral             E (hidden)       neutral        "I'm fine" cover      E
micro_masking       10%   polite smile        E (hidden)       neutral        pleasant cover        E
neutral             10%   neutral             -                neutral        neutral statement     neutral
=================  =====  ==================  ===============  =============  ====================  ========

So each branch carries label information that the others do not always carry: the global visual
expression (face_only), the local micro-expression (the two micro scenarios, where the words contradict
it and the sparse frame sampling may miss it), the audio prosody (voice_only) and the words (text_only);
congruent and neutral clips anchor the rest. The micro-expression always appears while the cover
sentence is spoken, with no blink around it.

Deterministic: clip i depends only on (seed, i) (and the speech engine), encoders run single-threaded with
fixed settings, so the same seed gives byte-identical files, and the clips of a corpus of N are the first N
clips of a larger one.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction

import numpy as np

from microemo_jax.demo import face as demo_face, speech as demo_speech

GENERATOR_VERSION = 1
FPS = 25
SAMPLE_RATE = demo_speech.SAMPLE_RATE
MIN_SECONDS, MAX_SECONDS = 2.0, 4.0
EMOTIONS = ('happy', 'sad', 'angry', 'surprised', 'fearful', 'disgusted')
HIDDEN_EMOTIONS = ('angry', 'sad', 'disgusted', 'fearful')
SCENARIO_CYCLE = ('congruent', 'micro_suppressed', 'face_only', 'voice_only', 'text_only', 'micro_masking',
                  'congruent', 'neutral', 'face_only', 'voice_only', 'congruent', 'text_only', 'micro_suppressed',
                  'congruent', 'face_only', 'voice_only', 'text_only', 'micro_masking', 'congruent', 'neutral')
SCENARIOS = tuple(dict.fromkeys(SCENARIO_CYCLE))

SENTENCES = {
    'happy': ["I just got the job, I can't believe it!", "This is the best day in years.", "We won, we actually won!",
              "I love it, thank you so much.", "That's wonderful news!", "I'm so glad you came."],
    'sad': ["I really miss him.", "Nothing I do seems to matter.", "She left and never came back.",
            "I guess it's over now.", "I tried so hard, and it failed.", "I feel so alone lately."],
    'angry': ["How could you do this to me?", "I told you a hundred times!", "Stop lying to me.",
              "This is completely unacceptable.", "You never listen to me!", "Get out of my room."],
    'surprised': ["Wait, you're here already?", "No way, that's impossible!", "You did all this yourself?",
                  "What? I had no idea.", "Really? Are you serious?", "I never expected to see you here."],
    'fearful': ["Did you hear that noise?", "Please don't leave me alone.", "Something is wrong, I can feel it.",
                "I'm scared they'll find us.", "What if it happens again?", "I don't want to go in there."],
    'disgusted': ["Ugh, that smells awful.", "That is absolutely revolting.", "I can't even look at it.",
                  "Get that thing away from me.", "How can anyone eat this?", "That's just gross."],
    'neutral': ["The meeting starts at nine tomorrow.", "I'll take the bus to work.", "We need to buy some milk.",
                "The report is on your desk.", "It's twenty minutes from here.", "I'll call you later today.",
                "Let's check the schedule first.", "The train leaves at noon."],
    'cover_suppressed': ["I'm totally fine with it.", "No, really, it's no big deal.",
                         "It's fine, whatever you decide.", "Don't worry about me, I'm okay.",
                         "Sure, that works for me.", "It doesn't bother me at all."],
    'cover_masking': ["That's great, I'm happy for you.", "Sure, that sounds wonderful.", "Oh, how lovely, thank you.",
                      "Of course, I'd love to help.", "What a nice surprise.", "Congratulations, you deserve it."],
}
FILLERS = ["Okay.", "Well, anyway.", "I see.", "Right.", "You know.", "So, yes."]

SYNONYMS = {
    'happy': ['joyful', 'excited', 'pleased', 'cheerful', 'delighted'],
    'sad': ['disappointed', 'sorrowful', 'upset', 'gloomy', 'heartbroken'],
    'angry': ['annoyed', 'irritated', 'frustrated', 'furious', 'resentful'],
    'surprised': ['astonished', 'amazed', 'shocked', 'startled'],
    'fearful': ['worried', 'anxious', 'nervous', 'scared', 'frightened'],
    'disgusted': ['repulsed', 'disdainful', 'displeased', 'averse'],
    'neutral': ['calm', 'relaxed', 'composed'],
}
NOUN = {'happy': 'happiness', 'sad': 'sadness', 'angry': 'anger', 'surprised': 'surprise', 'fearful': 'fear',
        'disgusted': 'disgust', 'neutral': 'calm'}
# Explanation phrases (kept short: the demo config's 320-token prompt also holds the subtitle and speech).
FACE_TEXT = {
    'neutral': ["her facial expression is calm and neutral", "her face stays relaxed and neutral"],
    'happy': ["she smiles broadly, her mouth corners up and cheeks raised", "she beams with a wide smile"],
    'sad': ["her mouth corners droop and her inner brows rise",
            "her brows tilt up in the middle and her mouth turns down"],
    'angry': ["her brows are lowered and knitted and her lips pressed tight", "she frowns hard with pressed lips"],
    'surprised': ["her brows shoot up, her eyes widen and her mouth falls open",
                  "she raises her brows and opens her eyes and mouth wide"],
    'fearful': ["her eyes are wide, her brows raised and drawn together, her lips stretched",
                "she stares wide-eyed with raised, knitted brows"],
    'disgusted': ["she wrinkles her nose and curls her upper lip",
                  "her nose wrinkles and her mouth turns down in distaste"],
}
MICRO_TEXT = {
    'angry': "her brows drop and knit and her lips press",
    'sad': "her inner brows rise and her mouth corners pull down",
    'disgusted': "her nose wrinkles and her upper lip curls",
    'fearful': "her eyes widen and her brows lift and knit",
}
VOICE_TEXT = {
    'neutral': "her tone is flat and even",
    'happy': "her tone is bright and lively, high and varied in pitch",
    'sad': "her tone is low, soft and slow",
    'angry': "her tone is loud, sharp and fast",
    'surprised': "her tone jumps high and rises at the end",
    'fearful': "her tone is high, hurried and trembling",
    'disgusted': "her tone is low, drawn out and dismissive",
}
TEXT_MEANING = {
    'happy': "expressing joy", 'sad': "expressing sadness", 'angry': "expressing anger",
    'surprised': "expressing astonishment", 'fearful': "expressing fear", 'disgusted': "expressing disgust",
    'neutral': "a neutral statement", 'cover_suppressed': "claiming she is fine",
    'cover_masking': "which sounds pleasant",
}
SENTIMENT = {'happy': 'positive', 'surprised': 'neutral', 'neutral': 'neutral', 'cover_suppressed': 'neutral',
             'cover_masking': 'positive', 'sad': 'negative', 'angry': 'negative', 'fearful': 'negative',
             'disgusted': 'negative'}


# ------------------------------------------------------------------------------------------------ plan
def plan_clip(seed: int, index: int) -> dict:
    """The hidden truth of clip ``index`` that does not depend on the audio (choices only)."""
    rng = np.random.default_rng([seed, index, 0])
    scenario = SCENARIO_CYCLE[index % len(SCENARIO_CYCLE)]
    emotion = str(rng.choice(HIDDEN_EMOTIONS if scenario.startswith('micro') else EMOTIONS))
    face, voice, text, micro = 'neutral', 'neutral', 'neutral', None
    intensity = float(rng.uniform(0.75, 1.0))
    if scenario == 'congruent':
        face = voice = text = emotion
    elif scenario == 'face_only':
        face = emotion
    elif scenario == 'voice_only':
        voice = emotion
    elif scenario == 'text_only':
        text = emotion
    elif scenario == 'micro_suppressed':
        text, micro = 'cover_suppressed', emotion
    elif scenario == 'micro_masking':
        face, text, micro = 'happy', 'cover_masking', emotion
        intensity = float(rng.uniform(0.45, 0.65))
    elif scenario == 'neutral':
        emotion = 'neutral'
    if face == 'neutral':
        intensity = 0.0
    # half the shown expressions develop after an onset; a masking smile is there from the start
    late = rng.random() < 0.5 and face != 'neutral' and micro is None
    onset = float(np.round(rng.uniform(0.2, 0.8), 2)) if late else 0.0
    n_utt = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    pool = list(SENTENCES[text])
    order = rng.permutation(len(pool))
    sentences = [pool[i] for i in order[:n_utt]]
    k = int(rng.integers(1, 3))
    synonyms = [str(s) for s in rng.choice(SYNONYMS[emotion], size=k, replace=False)]
    return {
        'name': f'demo_{index:05d}', 'index': index, 'scenario': scenario, 'emotion': emotion,
        'openset': [emotion] + synonyms,
        'face': {'emotion': face, 'intensity': round(intensity, 3), 'onset': onset},
        'micro': None if micro is None else {'emotion': micro, 'frames': int(rng.integers(3, 11))},
        'voice': {'emotion': voice},
        'text': {'kind': text, 'emotion': text if text in demo_face.EMOTIONS else 'neutral',
                 'sentiment': SENTIMENT[text]},
        'sentences': sentences,
        'fillers': [FILLERS[i] for i in rng.permutation(len(FILLERS))[:2]],
    }


# ------------------------------------------------------------------------------------------- one clip
def make_clip(out_dir: str, seed: int, index: int, size: int = 160, engine: str = 'synthetic') -> dict:
    """Write NAME.mp4 and NAME.srt for clip ``index``; return its hidden truth, openset and reason."""
    truth = plan_clip(seed, index)
    rng = np.random.default_rng([seed, index, 1])
    audio, utterances = _speech(truth, rng, engine)
    n_frames = int(round(len(audio) / SAMPLE_RATE * FPS))
    audio = audio[:n_frames * SAMPLE_RATE // FPS]
    truth['duration'] = round(n_frames / FPS, 3)
    truth['frames'] = n_frames
    truth['utterances'] = utterances
    if truth['micro'] is not None:
        _place_micro(truth, rng, n_frames)
    frames = _render(truth, audio, rng, size)
    truth['reason'] = explain(truth, np.random.default_rng([seed, index, 2]))
    write_video(os.path.join(out_dir, truth['name'] + '.mp4'), frames, audio)
    write_srt(os.path.join(out_dir, truth['name'] + '.srt'), utterances)
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
            wave = demo_speech.speak(sentence, voice, utt_rng, engine, max_seconds=room)
        else:
            wave = demo_speech.speak(sentence, voice, utt_rng, engine)
            if len(wave) > room * SAMPLE_RATE:                      # too long: try a short filler instead
                sentence = truth['fillers'][len(spoken) % len(truth['fillers'])]
                wave = demo_speech.speak(sentence, voice, utt_rng, engine)
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


def _place_micro(truth, rng, n_frames):
    """Frame-aligned micro-expression inside the first (cover) utterance."""
    micro = truth['micro']
    n = micro['frames']
    first = truth['utterances'][0]
    lo = max(int(np.ceil(first['start'] * FPS)), 5)
    hi = min(int(first['end'] * FPS) - n, n_frames - n - 8)
    start = int(rng.integers(lo, max(hi, lo) + 1))
    start = min(start, n_frames - n - 1)
    micro['start_frame'] = start
    micro['start'] = round(start / FPS, 3)
    micro['end'] = round((start + n) / FPS, 3)


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
    env = demo_speech.frame_envelope(audio, n, FPS)
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


_RIGS: dict[int, demo_face.FaceRig] = {}


def _rig(size):
    if size not in _RIGS:
        _RIGS[size] = demo_face.FaceRig(size)
    return _RIGS[size]


# ------------------------------------------------------------------------------------------- labels
def explain(truth: dict, rng: np.random.Generator) -> str:
    """EMER-style explanation from the hidden truth: the video, audio and text clues, then the conclusion."""
    face, micro, voice = truth['face'], truth['micro'], truth['voice']['emotion']
    labels = _join(truth['openset'])
    scenario, e = truth['scenario'], truth['emotion']
    if scenario == 'micro_masking':
        video = "In the video, she keeps a polite, restrained smile."
    elif face['onset'] > 0:
        desc = rng.choice(FACE_TEXT[face['emotion']])
        video = f"In the video, her face is calm at first; from {face['onset']:.1f}s, {desc}."
    else:
        video = f"In the video, {rng.choice(FACE_TEXT[face['emotion']])}."
    if micro is not None:
        ms = int(round(1000 * micro['frames'] / FPS))
        video += (f" At about {micro['start']:.1f}s, a brief micro-expression of {NOUN[micro['emotion']]} flashes "
                  f"for {ms} ms: {MICRO_TEXT[micro['emotion']]}.")
    audio = f"In the audio, {VOICE_TEXT[voice]}."
    said = truth['utterances'][0]['text']
    text = f"In the text, the subtitle says \"{said}\", {TEXT_MEANING[truth['text']['kind']]}."
    verdict = {
        'congruent': f"Therefore, face, voice and words all show that she is {labels}.",
        'face_only': f"Therefore, despite her neutral voice and words, her face shows that she is {labels}.",
        'voice_only': f"Therefore, despite her neutral face and words, her voice shows that she is {labels}.",
        'text_only': f"Therefore, despite her calm face and voice, her words show that she is {labels}.",
        'micro_suppressed': f"Therefore, her calm words hide {NOUN[e]}, betrayed by the micro-expression: "
                            f"she is {labels}.",
        'micro_masking': f"Therefore, her smile and words mask {NOUN[e]}, betrayed by the micro-expression: "
                         f"she is {labels}.",
        'neutral': f"Therefore, no clue points to any emotion: she is {labels}.",
    }[scenario]
    return ' '.join([video, audio, text, verdict])


def _join(words):
    words = list(words)
    return words[0] if len(words) == 1 else ', '.join(words[:-1]) + ' and ' + words[-1]


# ------------------------------------------------------------------------------------------- writers
def write_video(path: str, frames: list[np.ndarray], audio: np.ndarray) -> None:
    """H.264 yuv420p (25 fps) + AAC (16 kHz mono, 48 kb/s) mp4 with fixed single-threaded settings, so equal
    inputs give equal bytes."""
    import av
    import cv2

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
        for i, img in enumerate(frames):
            # our own BT.601 limited-range conversion (what decoders assume): PyAV's implicit one inside
            # encode() is not always byte-reproducible
            yuv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format='yuv420p')
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        chunk = 1024
        for i in range(0, len(audio), chunk):
            samples = np.ascontiguousarray(audio[i:i + chunk], np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format='fltp', layout='mono')
            frame.sample_rate = SAMPLE_RATE
            frame.pts = i
            frame.time_base = Fraction(1, SAMPLE_RATE)
            for packet in aus.encode(frame):
                out.mux(packet)
        for packet in aus.encode():
            out.mux(packet)


def _srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def write_srt(path: str, utterances: list[dict]) -> None:
    with open(path, 'w', encoding='utf-8', newline='\n') as f:
        for i, u in enumerate(utterances, 1):
            f.write(f"{i}\n{_srt_time(u['start'])} --> {_srt_time(u['end'])}\n{u['text']}\n\n")


# -------------------------------------------------------------------------------------------- corpus
def resolve_engine(speech: str) -> str:
    """'synthetic' or the espeak-ng path for --speech auto|espeak|synthetic."""
    if speech == 'synthetic':
        return 'synthetic'
    exe = demo_speech.espeak_available()
    if speech == 'espeak' and exe is None:
        raise RuntimeError("--speech espeak: espeak-ng is not on PATH (install it, e.g. `apt install espeak-ng`, or "
                           "use --speech synthetic)")
    if speech not in ('auto', 'espeak'):
        raise ValueError(f"--speech must be auto, espeak or synthetic, got {speech!r}")
    return exe or 'synthetic'


def _job(args):
    return make_clip(*args)


def _init_worker():
    import cv2
    cv2.setNumThreads(1)          # one process per core already


def _prepare_out_dir(out_dir: str) -> None:
    """Create ``out_dir``; an old demo corpus there is removed first (its clips would linger as extra videos)."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        old = os.path.join(out_dir, 'corpus.json')
        if not os.path.isfile(old):
            raise FileExistsError(f"{out_dir} is not empty and holds no demo corpus (corpus.json): choose a new or "
                                  f"empty folder")
        with open(old, encoding='utf-8') as f:
            names = [c['name'] for c in json.load(f).get('clips', [])]
        for name in names:
            for ext in ('.mp4', '.srt'):
                path = os.path.join(out_dir, name + ext)
                if os.path.isfile(path):
                    os.remove(path)
        for name in ('labels.csv', 'corpus.json'):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    os.makedirs(out_dir, exist_ok=True)


def write_corpus(out_dir: str, num: int, seed: int = 0, *, size: int = 160, workers: int = 1,
                 speech: str = 'auto', progress: bool = True) -> dict:
    """Generate ``num`` clips into ``out_dir`` (see the module doc); returns the corpus.json content."""
    if num < 1:
        raise ValueError(f"--num must be >= 1, got {num}")
    if size < 64 or size % 2:
        raise ValueError(f"--size must be even and >= 64, got {size}")
    engine = resolve_engine(speech)
    _prepare_out_dir(out_dir)
    jobs = [(out_dir, seed, i, size, engine) for i in range(num)]
    from tqdm import tqdm

    bar = tqdm(total=num, desc='demo corpus', unit='clip', disable=not progress, file=sys.stderr)
    clips = []
    if workers <= 1:
        for job in jobs:
            clips.append(_job(job))
            bar.update()
    else:
        import multiprocessing

        with ProcessPoolExecutor(min(workers, num), mp_context=multiprocessing.get_context('spawn'),
                                 initializer=_init_worker) as pool:
            for truth in pool.map(_job, jobs, chunksize=1):
                clips.append(truth)
                bar.update()
    bar.close()
    with open(os.path.join(out_dir, 'labels.csv'), 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, lineterminator='\n')
        writer.writerow(['name', 'openset', 'reason'])
        for c in clips:
            writer.writerow([c['name'], repr([str(x) for x in c['openset']]), c['reason']])
    corpus = {
        'generator': 'microemo_jax.demo.corpus', 'version': GENERATOR_VERSION, 'seed': seed, 'num': num,
        'size': size, 'fps': FPS, 'sample_rate': SAMPLE_RATE,
        'speech_engine': 'synthetic' if engine == 'synthetic' else demo_speech.espeak_version(engine),
        'scenario_cycle': list(SCENARIO_CYCLE), 'clips': clips,
    }
    with open(os.path.join(out_dir, 'corpus.json'), 'w', encoding='utf-8') as f:
        json.dump(corpus, f, indent=1, sort_keys=True)
        f.write('\n')
    return corpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog='python -m microemo_jax.demo.corpus', description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True, help='output folder (folder layout: NAME.mp4, NAME.srt, labels.csv)')
    ap.add_argument('--num', type=int, default=200, help='number of clips')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--size', type=int, default=160, help='frame size in pixels (square, even, >= 64)')
    ap.add_argument('--workers', type=int, default=min(os.cpu_count() or 1, 8), help='processes')
    ap.add_argument('--speech', default='auto', choices=('auto', 'espeak', 'synthetic'),
                    help='espeak-ng when installed (auto), or the synthetic voice')
    ap.add_argument('--quiet', action='store_true', help='no progress bar')
    args = ap.parse_args(argv)
    import time

    t0 = time.perf_counter()
    corpus = write_corpus(args.out, args.num, args.seed, size=args.size, workers=args.workers, speech=args.speech,
                          progress=not args.quiet)
    dt = time.perf_counter() - t0
    print(f"wrote {args.num} clips to {args.out} in {dt:.1f} s ({args.num / dt:.1f} clips/s, "
          f"speech: {corpus['speech_engine']})", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
