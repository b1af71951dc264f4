"""The script of each demo clip: which emotion each channel shows, what is said, and the explanation label.

The corpus is a fixed cycle of 20 scenarios: every 20 consecutive clips have exactly these shares, and the
first 8 already cover every scenario. Emotions are drawn from happy, sad, angry, surprised, fearful,
disgusted; suppressed/masked ones from angry, sad, disgusted, fearful.

=================  =====  ==================  ===============  =============  ====================  ========
scenario           share  face                micro            voice          words                 label
=================  =====  ==================  ===============  =============  ====================  ========
congruent           20%   E                   -                E              E sentence            E
face_only           15%   E                   -                neutral        neutral statement     E
voice_only          15%   neutral             -                E              neutral statement     E
text_only           15%   neutral             -                neutral        E sentence            E
micro_suppressed    15%   neutral             E (hidden)       neutral        "I'm fine" cover      E
micro_masking       10%   polite smile        E (hidden)       neutral        pleasant cover        E
neutral             10%   neutral             -                neutral        neutral statement     neutral
=================  =====  ==================  ===============  =============  ====================  ========

So each branch carries label information that the others do not always carry: the global visual
expression (face_only), the local micro-expression (the two micro scenarios, a quarter of the clips,
where the words contradict it and the sparse global frames never show it), the audio prosody
(voice_only) and the words (text_only); congruent and neutral clips anchor the rest. The
micro-expression lasts 3-6 frames (0.12-0.24 s, as real ones: 1/25 to 1/3 s), appears while the cover
sentence is spoken, with no blink around it, and falls between the frames that the model's global
branch samples (``demo.clip`` places it; ``GLOBAL_FRAMES``), so that only the local branch can see it.

The words (sentences per emotion and cover story, fillers, open-set synonyms, explanation phrases) are
data, in ``phrases.json`` beside this module. A plan depends only on (seed, index): the clips of a corpus
of N are the first N clips of a larger one.
"""
from __future__ import annotations

import json
import os

import numpy as np

from microemo_jax.demo import face as demo_face

FPS = 25  # the clips' frame rate: micro-expressions are planned in frames (3-6 frames: 0.12-0.24 s)
MICRO_FRAMES = (3, 6)   # shortest and longest micro-expression, frames (shorter where the gap between two
                        # global frames is narrower: a 2 s clip sampled at 8 frames leaves 4 frames between them)
# The global frames the micro-expressions avoid: the demo config's model.num_frames, sampled as
# data.sampling='uniform' samples them (data/video.py sample_times). write_corpus takes another count.
GLOBAL_FRAMES = 8
EMOTIONS = ('happy', 'sad', 'angry', 'surprised', 'fearful', 'disgusted')
HIDDEN_EMOTIONS = ('angry', 'sad', 'disgusted', 'fearful')
SCENARIO_CYCLE = ('congruent', 'micro_suppressed', 'face_only', 'voice_only', 'text_only', 'micro_masking',
                  'congruent', 'neutral', 'face_only', 'micro_suppressed', 'voice_only', 'congruent', 'text_only',
                  'micro_suppressed', 'face_only', 'voice_only', 'text_only', 'micro_masking', 'congruent', 'neutral')
SCENARIOS = tuple(dict.fromkeys(SCENARIO_CYCLE))
# The table above: (face, micro, voice, words, label) per scenario; 'E' is the clip's drawn emotion.
CHANNELS = {
    'congruent': ('E', None, 'E', 'E', 'E'),
    'face_only': ('E', None, 'neutral', 'neutral', 'E'),
    'voice_only': ('neutral', None, 'E', 'neutral', 'E'),
    'text_only': ('neutral', None, 'neutral', 'E', 'E'),
    'micro_suppressed': ('neutral', 'E', 'neutral', 'cover_suppressed', 'E'),
    'micro_masking': ('happy', 'E', 'neutral', 'cover_masking', 'E'),
    'neutral': ('neutral', None, 'neutral', 'neutral', 'neutral'),
}

with open(os.path.join(os.path.dirname(__file__), 'phrases.json'), encoding='utf-8') as _f:
    PHRASES = json.load(_f)


def plan_clip(seed: int, index: int) -> dict:
    """The hidden truth of clip ``index`` that does not depend on the audio (choices only)."""
    rng = np.random.default_rng([seed, index, 0])
    scenario = SCENARIO_CYCLE[index % len(SCENARIO_CYCLE)]
    drawn = str(rng.choice(HIDDEN_EMOTIONS if scenario.startswith('micro') else EMOTIONS))
    face, micro, voice, text, emotion = (drawn if c == 'E' else c for c in CHANNELS[scenario])
    intensity = float(rng.uniform(0.75, 1.0))
    if scenario == 'micro_masking':                     # a polite smile, weaker than a felt one
        intensity = float(rng.uniform(0.45, 0.65))
    if face == 'neutral':
        intensity = 0.0
    # half the shown expressions develop after an onset; a masking smile is there from the start
    late = rng.random() < 0.5 and face != 'neutral' and micro is None
    onset = float(np.round(rng.uniform(0.2, 0.8), 2)) if late else 0.0
    n_utt = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    pool = list(PHRASES['sentences'][text])
    order = rng.permutation(len(pool))
    sentences = [pool[i] for i in order[:n_utt]]
    k = int(rng.integers(1, 3))
    synonyms = [str(s) for s in rng.choice(PHRASES['synonyms'][emotion], size=k, replace=False)]
    fillers = PHRASES['fillers']
    return {
        'name': f'demo_{index:05d}', 'index': index, 'scenario': scenario, 'emotion': emotion,
        'openset': [emotion] + synonyms,
        'face': {'emotion': face, 'intensity': round(intensity, 3), 'onset': onset},
        'micro': None if micro is None else {'emotion': micro,
                                             'frames': int(rng.integers(MICRO_FRAMES[0], MICRO_FRAMES[1] + 1))},
        'voice': {'emotion': voice},
        'text': {'kind': text, 'emotion': text if text in demo_face.EMOTIONS else 'neutral',
                 'sentiment': PHRASES['sentiment'][text]},
        'sentences': sentences,
        'fillers': [fillers[i] for i in rng.permutation(len(fillers))[:2]],
    }


def explain(truth: dict, rng: np.random.Generator) -> str:
    """EMER-style explanation from the hidden truth: the video, audio and text clues, then the conclusion."""
    face, micro, voice = truth['face'], truth['micro'], truth['voice']['emotion']
    labels = _join(truth['openset'])
    scenario, noun = truth['scenario'], PHRASES['noun']
    face_text = PHRASES['face_text'][face['emotion']]
    if scenario == 'micro_masking':
        video = "In the video, she keeps a polite, restrained smile."
    elif face['onset'] > 0:
        video = f"In the video, her face is calm at first; from {face['onset']:.1f}s, {rng.choice(face_text)}."
    else:
        video = f"In the video, {rng.choice(face_text)}."
    if micro is not None:
        ms = int(round(1000 * micro['frames'] / FPS))
        video += (f" At about {micro['start']:.1f}s, a brief micro-expression of {noun[micro['emotion']]} flashes "
                  f"for {ms} ms: {PHRASES['micro_text'][micro['emotion']]}.")
    audio = f"In the audio, {PHRASES['voice_text'][voice]}."
    said = truth['utterances'][0]['text']
    text = f"In the text, the subtitle says \"{said}\", {PHRASES['text_meaning'][truth['text']['kind']]}."
    hidden = noun[truth['emotion']]
    verdict = {
        'congruent': f"Therefore, face, voice and words all show that she is {labels}.",
        'face_only': f"Therefore, despite her neutral voice and words, her face shows that she is {labels}.",
        'voice_only': f"Therefore, despite her neutral face and words, her voice shows that she is {labels}.",
        'text_only': f"Therefore, despite her calm face and voice, her words show that she is {labels}.",
        'micro_suppressed': f"Therefore, her calm words hide {hidden}, betrayed by the micro-expression: "
                            f"she is {labels}.",
        'micro_masking': f"Therefore, her smile and words mask {hidden}, betrayed by the micro-expression: "
                         f"she is {labels}.",
        'neutral': f"Therefore, no clue points to any emotion: she is {labels}.",
    }[scenario]
    return ' '.join([video, audio, text, verdict])


def _join(words):
    words = list(words)
    return words[0] if len(words) == 1 else ', '.join(words[:-1]) + ' and ' + words[-1]
