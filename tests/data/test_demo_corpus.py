"""The embedded demo corpus: real files, a real face detector, and the hidden truth checked against the pixels."""
from __future__ import annotations

import ast
import collections
import csv
import hashlib
import json
import os
import re
import shutil

import av
import cv2
import numpy as np
import pytest

from microemo_jax.data.video import decode_clip
from microemo_jax.demo import clip as demo_clip, corpus as demo_corpus, face as demo_face, script as demo_script, tts

NUM = 4          # the cycle puts a congruent, a micro_suppressed, a face_only and a voice_only clip first
SIZE = 160


@pytest.fixture(scope='module')
def corpus_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo') / 'corpus')
    demo_corpus.write_corpus(out, NUM, seed=0, size=SIZE, workers=1, speech='synthetic', progress=False)
    return out


@pytest.fixture(scope='module')
def truth(corpus_dir):
    with open(os.path.join(corpus_dir, 'corpus.json'), encoding='utf-8') as f:
        return json.load(f)


def _hashes(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), 'rb') as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def _decode(path):
    with av.open(path) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        info = dict(vcodec=vs.codec_context.name, acodec=aus.codec_context.name, fps=vs.average_rate,
                    width=vs.width, height=vs.height, pix_fmt=vs.codec_context.pix_fmt, rate=aus.rate,
                    channels=aus.channels)
        frames = [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]
    with av.open(path) as c:
        audio = np.concatenate([f.to_ndarray().mean(0) for f in c.decode(audio=0)])
    return info, frames, audio


def _parse_srt(path):
    """Minimal SRT reader: (start, end, text) per cue; fails on anything malformed."""
    with open(path, encoding='utf-8') as f:
        blocks = [b for b in f.read().strip().split('\n\n') if b.strip()]
    cues = []
    stamp = r'(\d\d):(\d\d):(\d\d),(\d\d\d)'
    for i, block in enumerate(blocks, 1):
        lines = block.split('\n')
        assert lines[0] == str(i), block
        m = re.fullmatch(stamp + ' --> ' + stamp, lines[1])
        assert m, lines[1]
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        cues.append((start, end, ' '.join(lines[2:])))
    return cues


def test_layout_files_decode_and_match_the_truth(corpus_dir, truth):
    names = [c['name'] for c in truth['clips']]
    assert names == [f'demo_{i:05d}' for i in range(NUM)]
    assert truth['seed'] == 0 and truth['num'] == NUM and truth['version'] == demo_corpus.GENERATOR_VERSION
    assert sorted(os.listdir(corpus_dir)) == sorted(['labels.csv', 'corpus.json', 'groups.csv']
                                                    + [n + e for n in names for e in ('.mp4', '.srt')])
    for clip in truth['clips']:
        info, frames, audio = _decode(os.path.join(corpus_dir, clip['name'] + '.mp4'))
        assert info == dict(vcodec='h264', acodec='aac', fps=25, width=SIZE, height=SIZE, pix_fmt='yuv420p',
                            rate=16000, channels=1)
        assert len(frames) == clip['frames']
        assert demo_clip.MIN_SECONDS <= len(frames) / 25 <= demo_clip.MAX_SECONDS
        assert abs(len(audio) / 16000 - len(frames) / 25) < 0.1
        # the subtitles are the speech: louder inside the cues than in the pauses around them
        cues = _parse_srt(os.path.join(corpus_dir, clip['name'] + '.srt'))
        assert 1 <= len(cues) <= 3
        assert [c[2] for c in cues] == [u['text'] for u in clip['utterances']]
        inside = np.zeros(len(audio), bool)
        for start, end, _ in cues:
            assert 0 <= start < end <= len(frames) / 25
            inside[int(start * 16000):int(end * 16000)] = True
        assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:]))
        rms_in = np.sqrt(np.mean(audio[inside] ** 2))
        rms_out = np.sqrt(np.mean(audio[~inside] ** 2))
        assert rms_in > 10 * rms_out, (clip['name'], rms_in, rms_out)


def test_haar_detector_finds_the_face(corpus_dir, truth):
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + 'haarcascade_frontalface_default.xml')
    found = total = 0
    for clip in truth['clips']:
        _, frames, _ = _decode(os.path.join(corpus_dir, clip['name'] + '.mp4'))
        for frame in frames[::6]:
            boxes = detector.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), 1.1, 5, minSize=(40, 40))
            found += len(boxes) > 0
            total += 1
    assert found >= 0.8 * total, f"face found in {found}/{total} sampled frames"


def test_labels_parse_and_follow_the_truth(corpus_dir, truth):
    with open(os.path.join(corpus_dir, 'labels.csv'), encoding='utf-8', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [r['name'] for r in rows] == [c['name'] for c in truth['clips']]
    for row, clip in zip(rows, truth['clips']):
        labels = ast.literal_eval(row['openset'])
        assert isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
        assert labels[0] == clip['emotion'] and labels == clip['openset']
        reason = row['reason']
        assert reason.startswith('In the video,') and 'In the audio,' in reason and 'In the text,' in reason
        assert 'Therefore,' in reason and clip['utterances'][0]['text'] in reason
        assert ('micro-expression' in reason) == (clip['micro'] is not None)
    # the folder source (what `prepare --source folder` reads) takes every clip, skips nothing
    from microemo_jax.data.raw import sources
    clips, skips = sources.read_source('folder', corpus_dir)
    assert skips == [] and {c.name for c in clips} >= {c['name'] for c in truth['clips']}


def test_micro_expression_is_a_short_deviation_at_the_recorded_time(corpus_dir, truth):
    micro_clips = [c for c in truth['clips'] if c['micro'] is not None]
    assert micro_clips, 'the first clips of the cycle include a micro-expression'
    x0, y0, x1, _ = demo_face.region('brows', SIZE)
    y1 = int(demo_face.landmark('nose_tip', SIZE)[1])        # brows, eyes, nose: untouched by talking
    for clip in micro_clips:
        m = clip['micro']
        start, n = m['start_frame'], m['frames']
        assert 3 <= n <= 6 and n / 25 < 0.5 and abs(m['start'] - start / 25) < 1e-6
        assert m['frame_indices'] == list(range(start, start + n))
        first = clip['utterances'][0]
        assert first['start'] - 0.05 <= m['start'] and m['end'] <= first['end'] + 0.05   # while the words deny it
        path = os.path.join(corpus_dir, clip['name'] + '.mp4')
        # it falls off the global frames: the frames the demo config's 8 uniform samples decode to never show it
        shown = decode_clip(path, truth['global_frames'], frame_size=32, tubelet_length=1).frame_indices
        assert not set(shown.tolist()) & set(m['frame_indices']), (shown, m)
        assert set(shown.tolist()) <= set(clip['global_frames'])
        _, frames, _ = _decode(path)
        grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[y0:y1, x0:x1] for f in frames]).astype(np.float32)
        step = np.abs(np.diff(grey, axis=0)).mean((1, 2))          # step[t - 1] = change from frame t-1 to t
        lo, hi = max(start - 6, 1), min(start + n + 7, len(frames))   # blinks keep 8 frames away
        window = step[lo - 1:hi - 1]
        jumps = sorted(int(i) + lo for i in np.argsort(window)[-2:])
        # the two biggest changes are the onset and the offset, n frames (< 0.5 s) apart, well above sway/talking
        assert abs(jumps[0] - start) <= 1 and abs(jumps[1] - (start + n)) <= 1, (clip['name'], jumps, start, n)
        assert np.sort(window)[-2] > 3 * np.median(window), (clip['name'], window)


def test_same_seed_same_bytes_other_seed_differs(corpus_dir, tmp_path):
    again = str(tmp_path / 'again')
    demo_corpus.write_corpus(again, NUM, seed=0, size=SIZE, workers=2, speech='synthetic', progress=False)
    assert _hashes(again) == _hashes(corpus_dir)              # also: worker processes do not change the bytes
    other = str(tmp_path / 'other')
    demo_corpus.main(['--out', other, '--num', '2', '--seed', '1', '--size', str(SIZE), '--workers', '1',
                      '--speech', 'synthetic', '--quiet'])
    first, second = _hashes(other), _hashes(corpus_dir)
    for name in ('demo_00000.mp4', 'demo_00001.mp4', 'demo_00000.srt', 'corpus.json', 'labels.csv'):
        assert first[name] != second[name], name


def test_output_folder_rules(tmp_path):
    busy = tmp_path / 'busy'
    busy.mkdir()
    (busy / 'holiday.mp4').write_bytes(b'not ours')
    with pytest.raises(FileExistsError, match='not empty and holds no demo corpus'):
        demo_corpus.write_corpus(str(busy), 1, progress=False, speech='synthetic')
    assert (busy / 'holiday.mp4').read_bytes() == b'not ours'
    with pytest.raises(ValueError, match='--num'):
        demo_corpus.write_corpus(str(tmp_path / 'none'), 0, progress=False)
    # regenerating into an old corpus replaces it: no stale clip lingers as an extra video
    out = tmp_path / 'regen'
    demo_corpus.write_corpus(str(out), 2, seed=4, size=64, progress=False, speech='synthetic')
    demo_corpus.write_corpus(str(out), 1, seed=4, size=64, progress=False, speech='synthetic')
    assert sorted(os.listdir(out)) == ['corpus.json', 'demo_00000.mp4', 'demo_00000.srt', 'groups.csv', 'labels.csv']


def test_groups_file_names_each_clip_its_scenario_and_whether_a_micro_expression_decides_it(corpus_dir, truth,
                                                                                            tmp_path):
    with open(os.path.join(corpus_dir, 'groups.csv'), encoding='utf-8', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['name'], r['group'], r['micro']) for r in rows] == [
        (c['name'], c['scenario'], 'other' if c['micro'] is None else 'micro') for c in truth['clips']]
    assert {r['micro'] for r in rows} == {'micro', 'other'}
    # an older corpus without the file: write_groups makes the same one, where it is told to
    again = demo_corpus.write_groups(corpus_dir, str(tmp_path / 'g.csv'))
    assert open(again, encoding='utf-8').read() == open(os.path.join(corpus_dir, 'groups.csv'), encoding='utf-8').read()
    with pytest.raises(FileNotFoundError, match='no corpus.json'):
        demo_corpus.write_groups(str(tmp_path))


def test_scenario_mixture_gives_each_branch_its_own_clips():
    """Over one cycle: every scenario appears in its documented share, and its clue sits where it says."""
    plans = [demo_script.plan_clip(3, i) for i in range(len(demo_script.SCENARIO_CYCLE))]
    counts = collections.Counter(p['scenario'] for p in plans)
    assert counts == {'congruent': 4, 'face_only': 3, 'voice_only': 3, 'text_only': 3, 'micro_suppressed': 3,
                      'micro_masking': 2, 'neutral': 2}                # micro scenarios: a quarter
    for p in plans:
        e, face, voice, text = p['emotion'], p['face']['emotion'], p['voice']['emotion'], p['text']['emotion']
        micro = p['micro'] and p['micro']['emotion']
        clues = {'face': face == e, 'voice': voice == e, 'text': text == e, 'micro': micro == e}
        expected = {'congruent': {'face', 'voice', 'text'}, 'face_only': {'face'}, 'voice_only': {'voice'},
                    'text_only': {'text'}, 'micro_suppressed': {'micro'}, 'micro_masking': {'micro'},
                    'neutral': {'face', 'voice', 'text'}}[p['scenario']]
        assert {k for k, v in clues.items() if v} == expected, p
        if p['scenario'].startswith('micro'):
            assert e in demo_script.HIDDEN_EMOTIONS and p['text']['kind'].startswith('cover')
    # a corpus of N clips is a prefix of a longer one
    assert demo_script.plan_clip(3, 7) == plans[7]


def test_face_rig_expressions_differ_and_stay_detectable():
    rig = demo_face.FaceRig(128)
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + 'haarcascade_frontalface_default.xml')
    neutral = rig.render(demo_face.expression('neutral')).astype(np.float32)
    for emotion in demo_face.EMOTIONS:
        img = rig.render(demo_face.expression(emotion), head=(2.0, -1.5, 2.0))
        assert len(detector.detectMultiScale(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 1.1, 5)) == 1, emotion
        if emotion != 'neutral':
            moved = rig.render(demo_face.expression(emotion)).astype(np.float32)
            assert np.abs(moved - neutral).mean() > 1.0, emotion
    with pytest.raises(ValueError, match='unknown expression'):
        demo_face.expression('bored')


def test_synthetic_prosody_follows_the_emotion():
    """Sad speech is slower and quieter than angry speech; the voice's pitch follows the emotion."""
    text = "I'm totally fine with it, really."
    out = {e: tts.speak(text, e, np.random.default_rng(0)) for e in ('sad', 'neutral', 'angry')}
    dur = {e: len(a) / tts.SAMPLE_RATE for e, a in out.items()}
    rms = {e: float(np.sqrt(np.mean(a ** 2))) for e, a in out.items()}
    assert dur['sad'] > dur['neutral'] > dur['angry']
    assert rms['angry'] > rms['neutral'] > rms['sad']
    again = tts.speak(text, 'sad', np.random.default_rng(0))
    assert np.array_equal(again, out['sad'])
    with pytest.raises(ValueError, match='unknown prosody'):
        tts.speak(text, 'bored', np.random.default_rng(0))


@pytest.mark.skipif(shutil.which('espeak-ng') is None, reason='espeak-ng is not installed')
def test_espeak_voice_when_installed():
    exe = shutil.which('espeak-ng')
    a = tts.speak("I'm totally fine with it.", 'neutral', np.random.default_rng(0), engine=exe)
    b = tts.speak("I'm totally fine with it.", 'sad', np.random.default_rng(0), engine=exe)
    assert 0.5 < len(a) / tts.SAMPLE_RATE < 4 and len(b) > len(a)
    assert np.array_equal(a, tts.speak("I'm totally fine with it.", 'neutral', np.random.default_rng(0),
                                               engine=exe))
