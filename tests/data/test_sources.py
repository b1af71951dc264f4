"""Raw layouts: every row and every video file ends up as a clip or a skip with a specific reason."""
from __future__ import annotations

import csv
import os

import pytest

from microemo_jax.data import prompt
from microemo_jax.data.raw.files import unsafe_name_reason
from microemo_jax.data.raw.labels import parse_openset
from microemo_jax.data.raw.sources import SOURCES, RawClip, read_source


def write_csv(path, header, rows, *, bom=False):
    with open(path, 'w', encoding='utf-8-sig' if bom else 'utf-8', newline='') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def touch(path, data=b''):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def by_name(items):
    out = {}
    for item in items:
        out.setdefault(item.name, []).append(item)
    return out


def codes(skips):
    """name -> code of its first skip."""
    out = {}
    for s in skips:
        out.setdefault(s.name, s.reason.split(':')[0])
    return out


def test_emer_v1_every_row_and_video_accounted(tmp_path):
    d = str(tmp_path)
    touch(f'{d}/video/sample_1.avi')
    touch(f'{d}/video/sample_1.mp4')                  # same name, second extension -> duplicate_video
    touch(f'{d}/Été 2 clip.MP4')                      # non-ASCII, spaces, upper-case extension, in DIR itself
    touch(f'{d}/video/dup.mp4')
    touch(f'{d}/video/nolabel.webm')                  # no row -> no_label
    touch(f'{d}/video/empty_reason.mp4')
    touch(f'{d}/notes.txt')                           # not a video: ignored
    touch(f'{d}/sample_1.srt')
    touch(f'{d}/audio/sample_1.wav')
    touch(f'{d}/openface_face/sample_1/sample_1.npy')
    write_csv(f'{d}/gt-eng.csv', ['names', 'emotions', 'subtitles', 'reasons'], [
        ['sample_1', 'happy', 'I won!', 'He smiles broadly.'],
        ['Été 2 clip', 'sad', '', 'Her voice drops.'],
        ['gone', 'angry', 'x', 'Missing video.'],                        # video_missing
        ['dup', 'sad', 'a', 'first'],
        ['dup', 'sad', 'b', 'second'],                                   # duplicate_name
        ['empty_reason', 'sad', 'a', '  '],                              # empty_label
        ['short', 'row'],                                                # malformed_row (column count)
        ['', 'sad', 'a', 'no name'],                                     # malformed_row (empty name)
        ['../escape', 'sad', 'a', 'path traversal'],                     # unsafe_name
        ['/abs', 'sad', 'a', 'absolute'],                                # unsafe_name
    ], bom=True)
    clips, skips = read_source('emer_v1', d)
    clips_by = by_name(clips)
    assert sorted(clips_by) == ['dup', 'sample_1', 'Été 2 clip']
    c = clips_by['sample_1'][0]
    assert c.video == f'{d}/video/sample_1.mp4'       # .mp4 is preferred over .avi (VIDEO_EXTENSIONS order)
    assert (c.answer_kind, c.reason, c.emotion, c.subtitle) == ('description', 'He smiles broadly.', 'happy', 'I won!')
    assert c.subtitle_file == f'{d}/sample_1.srt' and c.audio_file == f'{d}/audio/sample_1.wav'
    assert c.faces_npy == f'{d}/openface_face/sample_1/sample_1.npy'
    assert c.answer == 'He smiles broadly.' and c.question == prompt.DESCRIPTION_QUESTION
    assert clips_by['Été 2 clip'][0].video == f'{d}/Été 2 clip.MP4' and clips_by['Été 2 clip'][0].subtitle == ''
    assert clips_by['dup'][0].reason == 'first'
    reasons = [s.reason for s in skips]
    code = codes(skips)
    assert code['gone'] == 'video_missing' and 'gone.mp4/.avi' in by_name(skips)['gone'][0].reason
    assert code['empty_reason'] == 'empty_label'
    assert code['short'] == 'malformed_row'
    assert code['gt-eng.csv:9'] == 'malformed_row' and 'empty name' in by_name(skips)['gt-eng.csv:9'][0].reason
    assert code['../escape'] == 'unsafe_name' and code['/abs'] == 'unsafe_name'
    assert code['nolabel'] == 'no_label'
    assert any(r.startswith('duplicate_name: gt-eng.csv line 6') for r in reasons)
    assert any(r.startswith(f'duplicate_video: {d}/video/sample_1.avi') for r in reasons)
    # the empty_reason video is not used by a clip, so it is also accounted for as a file
    assert [s.reason.split(':')[0] for s in by_name(skips)['empty_reason']] == ['empty_label', 'no_label']
    # every one of the 10 rows is a clip or a skip that names its line; every video file is used or skipped
    assert len(clips) + sum(1 for s in skips if 'gt-eng.csv line' in s.reason) == 10
    used = {c.video for c in clips}
    files = [f'{d}/video/{f}' for f in os.listdir(f'{d}/video')] + [f'{d}/Été 2 clip.MP4']
    for f in files:
        assert f in used or any(f in s.reason for s in skips), f


def test_video_extension_preference_and_include_unlabeled(tmp_path):
    d = str(tmp_path)
    touch(f'{d}/video/a.avi')
    touch(f'{d}/a.mp4')                  # DIR/video is searched before DIR
    touch(f'{d}/video/free.mov')
    write_csv(f'{d}/gt-eng.csv', ['names', 'emotions', 'subtitles', 'reasons'], [['a', 'happy', 's', 'r']])
    clips, skips = read_source('emer_v1', d, include_unlabeled=True)
    assert [(c.name, os.path.relpath(c.video, d), c.answer_kind) for c in clips] == [
        ('a', 'video/a.avi', 'description'), ('free', 'video/free.mov', None)]
    assert [s.reason.split(':')[0] for s in skips] == ['duplicate_video']
    assert clips[1].answer is None and clips[1].question is None


def test_emer_v2_with_and_without_subtitles(tmp_path):
    d = str(tmp_path)
    for n in ('s1', 's2'):
        touch(f'{d}/video/{n}.mp4')
    write_csv(f'{d}/final-EMER-reason.csv', ['name', 'chinese', 'english'],
              [['s1', '他笑了', 'He laughs.'], ['s2', '她哭了', 'She cries.']])
    clips, skips = read_source('emer_v2', d)
    assert [(c.name, c.reason, c.subtitle) for c in clips] == [('s1', 'He laughs.', ''), ('s2', 'She cries.', '')]
    assert skips == []
    write_csv(f'{d}/subtitle_chieng.csv', ['name', 'chinese', 'english'],
              [['s1', '我赢了', 'I won!'], ['s2', 'x'], ['s1', 'y', 'again']])
    clips, skips = read_source('emer_v2', d)
    assert [(c.name, c.subtitle) for c in clips] == [('s1', 'I won!'), ('s2', '')]
    assert sorted(s.reason.split(':')[0] for s in skips) == ['duplicate_name', 'malformed_row']
    assert any('its subtitle is not used' in s.reason for s in skips)


def test_mer_ov_openset_parsing_and_injection(tmp_path, monkeypatch):
    d = str(tmp_path)
    monkeypatch.chdir(d)
    names = ['lst', 'tup', 'plain', 'emptylist', 'emptycell', 'inject', 'inject2', 'numbers', 'aset', 'broken']
    for n in names:
        touch(f'{d}/video/{n}.mp4')
    write_csv(f'{d}/check-openset.csv', ['name', 'openset'], [
        ['lst', "['excited', 'joyful', 'happy']"],
        ['tup', "('worried',)"],
        ['plain', 'happy, sad'],
        ['emptylist', '[]'],
        ['emptycell', ''],
        ['inject', "__import__('os').system('touch PWNED')"],
        ['inject2', "[__import__('os').system('touch PWNED2')]"],
        ['numbers', '[1, 2]'],
        ['aset', "{'happy'}"],
        ['broken', "['happy', 'sad'"],
    ])
    clips, skips = read_source('mer_ov', d)
    got = {c.name: c.openset for c in clips}
    assert got == {'lst': ['excited', 'joyful', 'happy'], 'tup': ['worried'], 'plain': ['happy', 'sad'],
                   'emptylist': ['neutral'], 'emptycell': ['neutral']}
    assert all(c.answer_kind == 'ov' for c in clips)
    assert by_name(clips)['lst'][0].answer == "The character's emotional state is excited, joyful, happy."
    assert codes(skips) == {n: 'malformed_row' for n in ('inject', 'inject2', 'numbers', 'aset', 'broken')}
    assert not os.path.exists('PWNED') and not os.path.exists('PWNED2')
    assert 'not a list of strings' in by_name(skips)['numbers'][0].reason


def test_parse_openset_rules():
    assert parse_openset("['self-conscious', 'at  ease', \"heart-broken\"]") == ['self-conscious', 'at ease',
                                                                                 'heart-broken']
    assert parse_openset('happy') == ['happy']
    assert parse_openset('  ') == ['neutral']
    assert parse_openset("['happy', '', 'happy']") == ['happy']
    for bad in ("__import__('os').system('x')", "['a(b)']", "'happy'", '[' * 200 + ']' * 200, "['a'] + ['b']",
                'happy; rm -rf /', 'x' * 20_000):
        with pytest.raises(ValueError):
            parse_openset(bad)


def test_mer2025_layout(tmp_path):
    d = str(tmp_path)
    for n in ('both', 'ovonly', 'textonly', 'unlab', 'nolabelsrow'):
        touch(f'{d}/video/sample_{n}.mp4')
    touch(f'{d}/audio/sample_both.wav')
    touch(f'{d}/openface_face/sample_both/sample_both.npy')
    os.makedirs(f'{d}/openface_face/sample_ovonly')          # folder without the npy: no faces
    write_csv(f'{d}/subtitle_chieng.csv', ['name', 'chinese', 'english'],
              [[f'sample_{n}', '中文', f'{n} subtitle'] for n in ('both', 'ovonly', 'textonly', 'unlab')])
    write_csv(f'{d}/track2_train_mercaptionplus.csv', ['name', 'openset'],
              [['sample_both', "['happy']"], ['sample_ovonly', '[]'], ['sample_gone', "['sad']"]])
    write_csv(f'{d}/track2_train_ovmerd.csv', ['name', 'openset'], [['sample_both', "['angry']"]])
    write_csv(f'{d}/track3_train_mercaptionplus.csv', ['name', 'reason'],
              [['sample_both', 'He grins.'], ['sample_textonly', 'She sighs.']])
    clips, skips = read_source('mer2025', d)
    got = {c.name: (c.answer_kind, c.reason, c.openset, c.subtitle) for c in clips}
    assert got == {
        'sample_both': ('description', 'He grins.', ['happy'], 'both subtitle'),
        'sample_both#ov': ('ov', 'He grins.', ['happy'], 'both subtitle'),
        'sample_ovonly': ('ov', None, ['neutral'], 'ovonly subtitle'),
        'sample_textonly': ('description', 'She sighs.', None, 'textonly subtitle'),
    }
    both = [by_name(clips)['sample_both'][0], by_name(clips)['sample_both#ov'][0]]
    assert both[0].openset is not both[1].openset
    assert both[0].video == both[1].video == f'{d}/video/sample_both.mp4'
    assert both[0].audio_file == f'{d}/audio/sample_both.wav'
    assert both[0].faces_npy == f'{d}/openface_face/sample_both/sample_both.npy'
    assert by_name(clips)['sample_ovonly'][0].faces_npy is None
    code = codes(skips)
    assert code['sample_gone'] == 'video_missing'
    assert code['sample_unlab'] == 'no_label' and code['sample_nolabelsrow'] == 'no_label'
    assert any(s.reason.startswith('duplicate_name: track2_train_ovmerd.csv line 2') for s in skips)
    clips, _ = read_source('mer2025', d, include_unlabeled=True)
    extra = {c.name: (c.answer_kind, c.subtitle) for c in clips if c.answer_kind is None}
    assert extra == {'sample_unlab': (None, 'unlab subtitle'), 'sample_nolabelsrow': (None, '')}


def test_folder_layout(tmp_path):
    d = str(tmp_path)
    for f in ('happy talk.mp4', 'b.avi', 'c.mkv', 'd.webm', 'e.MOV', '.hidden.mp4', 'ünï.mp4', 'b.mp4'):
        touch(f'{d}/{f}')
    touch(f'{d}/happy talk.srt')
    touch(f'{d}/b.VTT')
    touch(f'{d}/c.utt.json')
    touch(f'{d}/readme.md')
    write_csv(f'{d}/labels.csv', ['name', 'openset', 'reason'], [
        ['happy talk', "['happy', 'excited']", 'She beams.'],
        ['b', '', 'He is calm.'],
        ['c', 'sad', ''],
        ['ghost', "['sad']", ''],                         # no video
        ['d', "os.system('x')", ''],                      # bad openset -> skipped row, and its video is not a clip
    ])
    clips, skips = read_source('folder', d)
    got = {c.name: (c.answer_kind, c.openset, c.reason) for c in clips}
    assert got == {
        'b': ('description', None, 'He is calm.'),
        'c': ('ov', ['sad'], None),
        'e': (None, None, None),
        'happy talk': ('description', ['happy', 'excited'], 'She beams.'),
        'happy talk#ov': ('ov', ['happy', 'excited'], 'She beams.'),
        'ünï': (None, None, None),
    }
    assert [c.name for c in clips] == sorted(got)
    c = by_name(clips)
    assert c['happy talk'][0].subtitle_file == f'{d}/happy talk.srt'
    assert c['b'][0].subtitle_file == f'{d}/b.VTT' and c['b'][0].video == f'{d}/b.mp4'
    assert c['c'][0].utterance_file == f'{d}/c.utt.json' and c['c'][0].subtitle_file is None
    assert c['e'][0].video == f'{d}/e.MOV'
    code = codes(skips)
    assert code == {'ghost': 'video_missing', 'd': 'malformed_row', '.hidden': 'unsafe_name', 'b': 'duplicate_video'}
    assert [s.reason.split(':')[0] for s in by_name(skips)['d']] == ['malformed_row', 'no_label']


def test_a_refused_label_row_never_leaves_its_video_as_an_answerless_clip(tmp_path):
    """A row that fails to parse is counted and skipped, and so is its video: without the fix the video trained
    as a record with no answer (folder layout, or any layout with include_unlabeled), without a word."""
    d = str(tmp_path)
    for n in ('good', 'bad', 'empty', 'free'):
        touch(f'{d}/video/{n}.mp4')
    write_csv(f'{d}/check-openset.csv', ['name', 'openset'], [['good', "['sad']"], ['bad', "['sad'"]])
    write_csv(f'{d}/gt-eng.csv', ['names', 'emotions', 'subtitles', 'reasons'],
              [['good', 'sad', '', 'Tears.'], ['empty', 'sad', '', '']])
    clips, skips = read_source('mer_ov', d, include_unlabeled=True)
    assert sorted(c.name for c in clips) == ['empty', 'free', 'good']      # 'empty' has no mer_ov row: unlabeled
    assert [s.reason.split(':')[0] for s in by_name(skips)['bad']] == ['malformed_row', 'no_label']
    clips, skips = read_source('emer_v1', d, include_unlabeled=True)
    assert sorted(c.name for c in clips) == ['bad', 'free', 'good']
    assert [s.reason.split(':')[0] for s in by_name(skips)['empty']] == ['empty_label', 'no_label']
    assert 'was refused' in by_name(skips)['empty'][1].reason


def test_folder_without_labels_and_name_collisions(tmp_path):
    d = str(tmp_path)
    touch(f'{d}/x.mp4')
    touch(f'{d}/x#ov.mp4')
    clips, skips = read_source('folder', d)
    assert [c.name for c in clips] == ['x', 'x#ov'] and skips == []
    write_csv(f'{d}/labels.csv', ['name', 'openset', 'reason'], [['x', "['sad']", 'Tears.']])
    clips, skips = read_source('folder', d)
    assert [c.name for c in clips] == ['x', 'x#ov'] and clips[1].answer_kind == 'ov'
    assert codes(skips) == {'x#ov': 'duplicate_name'}


def test_folder_labels_without_target_columns(tmp_path):
    write_csv(f'{tmp_path}/labels.csv', ['name', 'emotion'], [['x', 'sad']])
    with pytest.raises(ValueError, match="neither an 'openset' nor a 'reason'"):
        read_source('folder', str(tmp_path))


@pytest.mark.parametrize('kind,expected', [
    ('emer_v1', 'gt-eng.csv'), ('emer_v2', 'final-EMER-reason.csv'), ('mer_ov', 'check-openset.csv'),
    ('mer2025', 'track2_train_'),
])
def test_missing_csv_is_a_clear_error(tmp_path, kind, expected):
    touch(f'{tmp_path}/video/a.mp4')
    with pytest.raises(FileNotFoundError, match=expected):
        read_source(kind, str(tmp_path))


def test_mer2025_needs_subtitles_and_csv_problems(tmp_path):
    d = str(tmp_path)
    write_csv(f'{d}/track2_train_x.csv', ['name', 'openset'], [['a', '[]']])
    with pytest.raises(FileNotFoundError, match='subtitle_chieng.csv'):
        read_source('mer2025', d)
    write_csv(f'{d}/check-openset.csv', ['name', 'labels'], [['a', '[]']])
    with pytest.raises(ValueError, match="lacks column"):
        read_source('mer_ov', d)
    with open(f'{d}/check-openset.csv', 'wb') as f:
        f.write('name,openset\na,"[\'é\']"\n'.encode('latin-1'))
    with pytest.raises(ValueError, match='not UTF-8'):
        read_source('mer_ov', d)
    with pytest.raises(ValueError, match='unknown source'):
        read_source('kinetics', d)
    with pytest.raises(FileNotFoundError):
        read_source('folder', f'{d}/nope')
    assert set(SOURCES) == {'emer_v1', 'emer_v2', 'mer_ov', 'mer2025', 'folder'}


@pytest.mark.parametrize('name', ['../x', 'a/b', 'a\\b', '/etc/passwd', '..', '.', '.hidden', 'a\x00b', 'a\nb',
                                  'C:evil', 'x' * 300, '', 'bad\udcffbytes'])
def test_unsafe_names(name):
    assert unsafe_name_reason(name) is not None


@pytest.mark.parametrize('name', ['sample_00000001', 'Été 2 clip', 'a..b', 'x#ov', '日本語', 'a b'])
def test_safe_names(name):
    assert unsafe_name_reason(name) is None


def test_rawclip_answer():
    clip = RawClip(name='a', video=None, answer_kind='ov', openset=['happy', 'sad'])
    assert clip.answer == "The character's emotional state is happy, sad." and clip.question == prompt.OV_QUESTION


def test_links_that_cannot_be_opened_are_skipped_with_a_reason(tmp_path):
    """A link loop used to abort read_source (ELOOP) and a dangling link was dropped without a word."""
    raw = tmp_path / 'raw'
    touch(raw / 'ok.mp4', b'x')
    os.symlink(raw / 'loop.mp4', raw / 'loop.mp4')
    os.symlink(raw / 'gone.mp4', raw / 'dangling.mp4')
    os.symlink(raw / 'x.mkv', raw / 'x.mkv')
    write_csv(raw / 'labels.csv', ['name', 'openset'], [['x', 'happy']])
    clips, skips = read_source('folder', str(raw))
    assert [c.name for c in clips] == ['ok']
    reasons = {s.name: s.reason for s in skips}
    assert reasons['loop'].startswith('bad_link: video file') and 'symbolic link loop' in reasons['loop']
    assert reasons['dangling'].startswith('bad_link: ') and "'" + str(raw / 'gone.mp4') + "'" in reasons['dangling']
    assert reasons['x'].startswith('video_missing: ') and 'x.mkv is a symbolic link loop' in reasons['x']
    assert len(skips) == 3  # the labelled loop is accounted for once, by its label row


def test_side_files_out_of_the_raw_folder_are_refused(tmp_path):
    raw, elsewhere = tmp_path / 'raw', tmp_path / 'elsewhere'
    for name in ('a', 'b', 'c', 'd'):
        touch(raw / f'{name}.mp4', b'x')
    touch(elsewhere / 'secret.srt', b'1\n00:00:00,000 --> 00:00:01,000\nsecret\n')
    touch(raw / 'inside' / 'fine.srt', b'')
    os.symlink(elsewhere / 'secret.srt', raw / 'a.srt')             # out of the raw folder
    os.symlink(raw / 'inside' / 'fine.srt', raw / 'b.srt')          # a link inside it is fine
    os.symlink(raw / 'missing.srt', raw / 'c.srt')                  # dangling
    touch(elsewhere / 'd.wav', b'RIFF')
    os.makedirs(raw / 'audio')
    os.symlink(elsewhere / 'd.wav', raw / 'audio' / 'd.wav')        # any side file, not only subtitles
    clips, skips = read_source('folder', str(raw))
    assert [c.name for c in clips] == ['b']
    reasons = {s.name: s.reason for s in skips}
    assert reasons['a'].startswith('bad_side_file: subtitle ') and 'out of the raw folder' in reasons['a']
    assert reasons['c'].startswith('bad_side_file: subtitle ') and 'dangling' in reasons['c']
    assert reasons['d'].startswith('bad_side_file: audio file ') and 'out of the raw folder' in reasons['d']


def test_split_file(tmp_path):
    from microemo_jax.data.raw.labels import read_split_file
    path = tmp_path / 'split.csv'
    write_csv(path, ['name', 'split'], [['a', 'train'], ['b#ov', 'Test'], ['b', 'test'], ['c', 'validation']])
    assert {k: v[0] for k, v in read_split_file(str(path)).items()} == {'a': 'train', 'b': 'test', 'c': 'validation'}
    write_csv(path, ['name', 'split'], [['a', 'train'], ['a#ov', 'test']])
    with pytest.raises(ValueError, match="'a#ov' is test on line 3 but train on split.csv line 2"):
        read_split_file(str(path))
    write_csv(path, ['name', 'fold'], [['a', 'train']])
    with pytest.raises(ValueError, match='lacks column'):
        read_split_file(str(path))
