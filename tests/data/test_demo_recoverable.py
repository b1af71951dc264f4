"""Every demo clip's label reaches what the model reads: prepare a whole small demo corpus and find, in each
record, the channel that carries its clip's label (the script's table, demo/script.py)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from microemo_jax.config import load_config
from microemo_jax.data.records.build import prepare
from microemo_jax.data.tokenizers import load_tokenizer
from microemo_jax.demo import corpus as demo_corpus, script as demo_script
from tests.support.prepare import records_by_name

pytestmark = pytest.mark.slow          # ~20 s: 10 clips made and prepared (faces, spotting, audio, tokenizers)
FPS = demo_script.FPS
MEL_PER_SECOND = 100                   # Whisper's log-mel: 10 ms hop


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    # the demo config (its whole audio window) at 4 frames, 3 crops of 32 px; apex tubelets (the default)
    cfg = load_config('configs/emer.py:demo', ['model.num_frames=4', 'model.vision.image_size=32',
                                               'model.vision.patch_size=16', 'model.micro_expression.num_crops=3'])
    root = tmp_path_factory.mktemp('demo')
    truth = demo_corpus.write_corpus(str(root / 'raw'), 10, seed=5, size=96, speech='synthetic', progress=False,
                                     global_frames=cfg.model.num_frames)
    report = prepare(cfg, 'folder', str(root / 'raw'), str(root / 'prepared'), workers=1)
    assert report['skipped'] == 0
    tokenizer = load_tokenizer(os.path.join(root, 'prepared', 'tokenizers', 'llm_tokenizer'))
    return truth, records_by_name(root / 'prepared'), tokenizer


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _voiced_energy(rec, utterances):
    """Mean log-mel inside the utterances minus outside them: the voice is there to be heard."""
    mel = np.asarray(rec['audio_mel'], np.float32).mean(-1)
    inside = np.zeros(len(mel), bool)
    for u in utterances:
        inside[int(u['start'] * MEL_PER_SECOND):int(u['end'] * MEL_PER_SECOND)] = True
    return float(mel[inside].mean() - mel[~inside].mean())


def test_every_clips_label_is_in_what_the_model_reads(demo):
    truth, records, tokenizer = demo
    assert {c['scenario'] for c in truth['clips']} == set(demo_script.SCENARIOS)
    for clip in truth['clips']:
        rec, name, scenario = records[clip['name']], clip['name'], clip['scenario']
        prompt = tokenizer.decode(rec['input_ids'][~rec['loss_mask']])
        carriers = set()
        if clip['text']['emotion'] == clip['emotion'] and clip['emotion'] != 'neutral':
            # the words: the clip's emotional sentence is in the prompt (subtitle or timed speech)
            said = clip['utterances'][0]['text']
            assert said in demo_script.PHRASES['sentences'][clip['emotion']] and said in prompt, (name, prompt)
            carriers.add('text')
        if clip['voice']['emotion'] == clip['emotion'] and clip['emotion'] != 'neutral':
            # the voice: audio reaches the record, louder where the words are spoken
            assert rec['audio_mel'].shape[0] >= clip['utterances'][-1]['end'] * MEL_PER_SECOND - 2, name
            assert _voiced_energy(rec, clip['utterances']) > 0.3, name
            carriers.add('voice')
        if clip['face']['emotion'] == clip['emotion'] and clip['emotion'] != 'neutral':
            # the face: a global frame shows the full expression (after its onset), with the face found
            shown = rec['timestamps'][rec['face_mask'][:, 0]]
            assert (shown >= clip['face']['onset'] + 0.4).any(), (name, rec['timestamps'], clip['face'])
            carriers.add('face')
        if clip['micro'] is not None:
            # the micro-expression: in a face tubelet's crops, on no global frame
            frames = set(clip['micro']['frame_indices'])
            crops = {int(round(t * FPS)) for t in rec['face_times'][rec['face_mask']]}
            shown = {int(round(t * FPS)) for t in rec['timestamps']}
            assert frames & crops and not frames & shown, (name, sorted(frames), sorted(crops), sorted(shown))
            assert 'Face close-ups start at' in prompt                # and the prompt says when the crops are
            carriers.add('micro')
        expected = {'congruent': {'face', 'voice', 'text'}, 'face_only': {'face'}, 'voice_only': {'voice'},
                    'text_only': {'text'}, 'micro_suppressed': {'micro'}, 'micro_masking': {'micro'},
                    'neutral': set()}[scenario]
        assert carriers == expected, (name, scenario, carriers)
        assert json.loads(_text(rec['openset']))[0] == clip['emotion']
