"""prepare end to end on a `folder` corpus of real files: odd-but-valid inputs written, bad ones skipped
with their reason, every input accounted for, resume, inspect, and a record that comes out as it went in."""
import json
import os

import numpy as np
import pytest

from microemo_jax.config import load_config
from microemo_jax.data.records import describe as describe_cli, tfds_builder
from microemo_jax.data.records.record import split_jpegs
from microemo_jax.prepare import main as prepare_main, prepare
from tests.support.media import (
    corrupt_after_header,
    moving_face_frames,
    noise_frames,
    truncate_file,
    write_empty,
    write_h264_mp4,
    write_mjpeg_avi,
    write_text,
    write_vp9_webm,
)
from tests.support.prepare import (
    SMALL,
    fixed_tokenizers,
    records_by_name,
    small_config,
    write_labels,
    write_small_corpus,
)

pytestmark = pytest.mark.integration  # prepare end to end on real media files

OVERRIDES = ['model.num_frames=4', 'model.vision.image_size=32', 'model.vision.patch_size=16',
             'model.micro_expression.num_crops=2', 'model.max_utterances=2', 'data.max_mel_frames=200',
             'data.validation_fraction=0.3']
SRT = "1\n00:00:00,100 --> 00:00:00,600\nI am really fine.\n\n2\n00:00:00,700 --> 00:00:01,100\nHonestly.\n"


def config():
    return load_config('configs/emer.py:demo', OVERRIDES)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    raw = tmp_path_factory.mktemp('raw')
    face, _ = moving_face_frames(30, height=96, width=96, face_size=56)
    write_h264_mp4(raw / 'happy one.mp4', face, audio=dict(sample_rate=44100, channels=2))
    (raw / 'happy one.srt').write_text(SRT)
    write_vp9_webm(raw / 'sad_ünïcode.webm', face[:20])          # no audio track, VP9, non-ASCII name
    write_mjpeg_avi(raw / 'short.avi', noise_frames(10, 64, 64), audio=dict(sample_rate=8000, channels=1))
    write_empty(raw / 'empty.mp4')
    write_text(raw / 'notes.mp4')
    write_h264_mp4(raw / 'full.mp4', face, audio=dict(sample_rate=16000, channels=1))
    truncate_file(raw / 'full.mp4', raw / 'cut.mp4', 0.5)
    os.remove(raw / 'full.mp4')
    corrupt_after_header(raw / 'cut.mp4', raw / 'garbage.mp4', keep_bytes=64)
    (raw / 'labels.csv').write_text(
        'name,openset,reason\n'
        '"happy one","[\'happy\', \'excited\']",The character smiles broadly.\n'
        'sad_ünïcode,"[\'sad\']",\n'
        'ghost,"[\'angry\']",A clip whose video does not exist.\n'
        '../escape,"[\'sad\']",An unsafe name.\n', encoding='utf-8')
    return raw


@pytest.fixture(scope='module')
def prepared(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp('out')
    report = prepare(config(), 'folder', str(corpus), str(out), workers=1, shard_size=2)
    return out, report


def test_every_input_is_written_or_skipped_with_its_reason(prepared):
    out, report = prepared
    skipped = [json.loads(line) for line in open(out / 'skipped.jsonl')]
    reasons = {s['name']: s['reason'].split(':')[0] for s in skipped}
    written = set(report['written_names'])
    assert written == {'happy one', 'happy one#ov', 'sad_ünïcode', 'short'}  # one name with two targets: two clips
    assert reasons.get('empty') == 'zero_bytes'
    assert reasons.get('notes') == 'not_a_video'
    assert reasons.get('garbage') in ('corrupt', 'truncated')
    assert reasons.get('cut') in ('truncated', 'corrupt')
    assert reasons.get('ghost') == 'video_missing'
    assert reasons.get('../escape') == 'unsafe_name'
    assert report['written'] + report['skipped'] == report['seen']
    assert report['skipped_by_reason']['zero_bytes'] == 1
    assert report['bytes_per_sample'] > 0
    assert sum(report['splits'].values()) == report['written']


def test_a_record_comes_out_with_what_went_in(prepared):
    out, _ = prepared
    records = {}
    for split in ('train', 'validation'):
        try:
            source = tfds_builder.open_dataset(str(out), split)
        except ValueError:
            continue
        for i in range(len(source)):
            records[source[i]['name'].decode() if isinstance(source[i]['name'], bytes) else source[i]['name']] = source[i]
    rec = records['happy one']
    assert len(rec['timestamps']) == 4 and np.all(np.diff(rec['timestamps']) > 0)
    assert len(split_jpegs(rec['frames_jpeg'], rec['frame_offsets'])) == 4
    assert rec['face_mask'].any()                          # the real face detector found the astronaut
    assert rec['face_landmarks'].shape == rec['face_mask'].shape + (68, 2)      # face-mesh points of each crop
    assert rec['face_landmark_mask'][rec['face_mask']].all()
    assert 0.1 < rec['face_landmarks'][rec['face_mask']].astype(float).mean() < 0.9   # inside the crop, 0..1 units
    times, mask, anchors = rec['face_times'], rec['face_mask'], rec['timestamps']   # apex tubelets (the default):
    assert times.shape == mask.shape and (times[~mask] == 0).all()                  # between their anchor and the
    for i in np.nonzero(mask[:, 0])[0]:                                             # next, consecutive frames
        ends = anchors[i + 1] if i + 1 < len(anchors) else 1.2
        assert anchors[i] - 1e-6 <= times[i, 0] and times[i][mask[i]].max() <= ends + 1e-6, (i, times, anchors)
        np.testing.assert_allclose(np.diff(times[i][mask[i]]), 1 / 25, atol=1e-4)
    assert rec['utterance_source'] in (b'subtitles', 'subtitles')
    np.testing.assert_allclose(rec['utterances'], [[0.1, 0.6], [0.7, 1.1]], atol=1e-6)
    assert rec['audio_mel'].shape[1] == 16 and rec['audio_mel'].shape[0] > 0
    assert rec['loss_mask'].sum() > 0 and len(rec['modality_positions']) == (1 + 2) * 8 + (1 + 2) * 4
    silent = records['sad_ünïcode']
    assert silent['audio_mel'].shape[0] == 0               # no audio track: valid, zero mel frames
    assert records['happy one#ov']['answer'] in (b"The character's emotional state is happy, excited.",
                                                 "The character's emotional state is happy, excited.")


def test_rerun_resumes_and_inspect_lists_the_records(prepared, corpus, capsys):
    out, first = prepared
    second = prepare(config(), 'folder', str(corpus), str(out), workers=1, shard_size=2)
    assert second['shards_processed'] == 0 and second['shards_resumed'] == first['shards']
    assert second['written_names'] == first['written_names']
    capsys.readouterr()
    describe_cli.main([str(out)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(line['name'] for line in lines) == first['written_names']
    happy = next(line for line in lines if line['name'] == 'happy one')
    assert happy['num_frames'] == 4 and happy['faces_found'] >= 1 and happy['num_utterances'] == 2
    assert happy['num_answer_tokens'] > 0 and happy['num_tokens'] > happy['num_answer_tokens']


def test_command_line_with_workers(corpus, tmp_path, capsys):
    out = tmp_path / 'cli'
    prepare_main(['--source', 'folder', '--raw', str(corpus), '--out', str(out), '--workers', '2',
                  '--config', 'configs/emer.py:demo'] + [f'--config.{o}' for o in OVERRIDES])
    report = json.loads((out / 'prepare_report.json').read_text())
    assert report['written'] == 4 and report['shards_processed'] == report['shards']
    with pytest.raises(SystemExit):
        prepare_main(['--source', 'nope', '--raw', str(corpus), '--out', str(out)])


def test_prepare_then_stream_gives_the_clip_back(prepared):
    """The path training takes: raw video -> prepare -> Grain batch, with what the clip went in with."""
    from microemo_jax.data import pipeline
    out, _ = prepared
    cfg = config()
    split = next(s for s in tfds_builder.splits(str(out)) if 'happy one' in
                 [r['name'].decode() if isinstance(r['name'], bytes) else r['name']
                  for r in tfds_builder.open_dataset(str(out), s)])
    source = pipeline.open_split(str(out), split)
    rows = {}
    for batch in pipeline.make_iterator(source, cfg, train=False, process_index=0, process_count=1, num_workers=0):
        for i, name in enumerate(batch['names']):
            if name:
                rows[name] = {k: v[i] for k, v in batch.items()}
    row = rows['happy one']
    rec = next(r for r in source if (r['name'].decode() if isinstance(r['name'], bytes) else r['name']) == 'happy one')
    t = len(rec['timestamps'])
    np.testing.assert_array_equal(row['timestamps'][:t], rec['timestamps'])
    assert row['frame_mask'][:t].all() and not row['frame_mask'][t:].any()
    np.testing.assert_array_equal(row['face_mask'][:t], rec['face_mask'])
    np.testing.assert_allclose(row['utterances'][:2], [[0.1, 0.6], [0.7, 1.1]], atol=1e-6)
    assert row['utterance_mask'].tolist() == [True, True]
    n = len(rec['input_ids'])
    np.testing.assert_array_equal(row['input_ids'][:n], rec['input_ids'])
    np.testing.assert_array_equal(row['loss_mask'][:n], rec['loss_mask'])
    assert row['attention_mask'][:n].all() and not row['attention_mask'][n:].any()
    np.testing.assert_array_equal(row['modality_positions'], rec['modality_positions'])
    assert row['frames'].shape == (4, 3, 32, 32) and np.abs(row['frames'][:t]).max() > 0.1
    assert row['audio_mask'].sum() == (min(rec['audio_mel'].shape[0], 200) + 1) // 2


def _names_by_split(out):
    return {s: sorted(r['name'].decode() if isinstance(r['name'], bytes) else r['name']
                      for r in tfds_builder.open_dataset(str(out), s)) for s in tfds_builder.splits(str(out))}


def test_a_video_and_its_ov_target_share_a_split(prepared, capsys):
    out, report = prepared
    by_split = _names_by_split(out)
    where = {n: s for s, names in by_split.items() for n in names}
    assert where['happy one'] == where['happy one#ov']
    assert report['split']['by'] == 'video' and report['split']['videos_in_several_splits'] == 0
    assert sum(report['split']['records'].values()) == report['written']
    capsys.readouterr()
    describe_cli.main([str(out)])
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split('summary: ', 1)[1])
    assert summary['videos_in_several_splits'] == 0
    assert (out / 'splits.csv').read_text().splitlines()[0] == 'name,split'


def test_split_file_gives_an_official_split_with_test(prepared, tmp_path, capsys):
    import shutil
    src, _ = prepared
    out = tmp_path / 'official'
    shutil.copytree(src, out)  # same inputs and settings: only the split changes, no shard is redone
    split_file = tmp_path / 'split.csv'
    split_file.write_text('name,split\nhappy one,test\nshort,validation\nnowhere,train\nempty,train\n')
    report = prepare(config(), 'folder', str(corpus_dir(src)), str(out), workers=1, shard_size=2,
                     split_file=str(split_file))
    assert report['shards_processed'] == 0
    by_split = _names_by_split(out)
    assert by_split['test'] == ['happy one', 'happy one#ov'] and by_split['validation'][:1] == ['short']
    info = report['split']['split_file']
    assert info['not_in_corpus']['examples'] == ['nowhere']
    assert info['in_corpus_but_skipped']['examples'] == ['empty']
    assert info['not_in_split_file']['examples'] == ['sad_ünïcode'] and 'default' in info['not_in_split_file']['assigned']
    assert report['split']['videos_in_several_splits'] == 0
    assert 'nowhere' in capsys.readouterr().err
    split_file.write_text('name,split\nhappy one,test\nhappy one#ov,train\n')
    with pytest.raises(SystemExit, match='split.csv.*happy one#ov.*train on line 3 but test'):
        prepare_main(['--source', 'folder', '--raw', str(corpus_dir(src)), '--out', str(out), '--split-file',
                      str(split_file), '--config', 'configs/emer.py:demo'] + [f'--config.{o}' for o in OVERRIDES])
    split_file.write_text('name,split\nhappy one,holdout\n')
    with pytest.raises(SystemExit, match="line 2: split 'holdout'"):
        prepare_main(['--source', 'folder', '--raw', str(corpus_dir(src)), '--out', str(out), '--split-file',
                      str(split_file), '--config', 'configs/emer.py:demo'] + [f'--config.{o}' for o in OVERRIDES])


def corpus_dir(out):
    return json.loads((out / 'prepare_report.json').read_text())['raw']


# ---------------------------------------------------------------- reliability: re-runs, locks, bad inputs
@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """Two short videos (``a`` with a description and OV labels, ``b`` unlabeled) and fixed tokenizers."""
    raw = tmp_path_factory.mktemp('small_raw')
    write_small_corpus(raw)
    return raw, fixed_tokenizers(small_config(), tmp_path_factory.mktemp('tok'))


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def test_a_rerun_redoes_the_shards_whose_settings_or_inputs_changed(small, tmp_path, capsys):
    raw, tok = small
    out = tmp_path / 'out'
    first = prepare(small_config(), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert first['shards'] == 2 and first['shards_processed'] == 2 and first['shards_redone'] == 0
    assert len(records_by_name(out)['a']['timestamps']) == 2
    try:
        write_labels(raw, 'She frowns at the camera.')                    # a label changes
        capsys.readouterr()
        second = prepare(small_config(), 'folder', str(raw), str(out), shard_size=1, **tok)
        assert second['shards_redone'] == 1 and second['shards_resumed'] == 1
        assert second['redone_because']['labels_changed'] == ['a', 'a#ov']
        assert "labels changed: 'a', 'a#ov'" in capsys.readouterr().err
        assert _text(records_by_name(out)['a']['answer']) == 'She frowns at the camera.'
    finally:
        write_labels(raw)
    os.utime(raw / 'b.avi', ns=(1, 10 ** 18))                               # an input file changes
    third = prepare(small_config(), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert third['redone_because']['inputs_changed'] == ['b'] and third['shards_redone'] == 2  # a's label too
    fourth = prepare(small_config('model.num_frames=3'), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert fourth['shards_redone'] == 2 and fourth['redone_because']['settings_changed']['num_frames'] == [2, 3]
    assert fourth['config']['num_frames'] == 3
    assert {len(r['timestamps']) for r in records_by_name(out).values()} == {3}
    assert 'num_frames: 2 -> 3' in capsys.readouterr().err
    fifth = prepare(small_config('model.num_frames=3'), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert fifth['shards_processed'] == 0 and fifth['shards_redone'] == 0
    anchored = prepare(small_config('model.num_frames=3', 'model.micro_expression.tubelets=anchor'), 'folder',
                       str(raw), str(out), shard_size=1, **tok)                   # where the tubelets come from
    assert anchored['shards_redone'] == 2 and anchored['redone_because']['settings_changed']['tubelets'] == [
        'apex', 'anchor']
    rec = records_by_name(out)['a']
    np.testing.assert_allclose(rec['face_times'][rec['face_mask']], (rec['timestamps'][:, None] + np.arange(2) / 25)[
        rec['face_mask']], atol=1e-4)                                              # now at the anchors


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_a_planted_pickle_shard_never_runs(small, tmp_path):
    import pickle
    raw, tok = small
    out, marker = tmp_path / 'out', tmp_path / 'PWNED'
    (out / 'work').mkdir(parents=True)
    with open(out / 'work' / 'shard-00000.pkl', 'wb') as f:
        pickle.dump({'names': ['a', 'a#ov'], 'records': [_Payload(str(marker))], 'skips': []}, f)
    report = prepare(small_config(), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert not marker.exists()
    assert report['legacy_pickle_shards_removed'] == 1 and not (out / 'work' / 'shard-00000.pkl').exists()
    assert report['written'] == 3


def test_prepare_reads_each_finished_shard_once(small, tmp_path, monkeypatch):
    """The report and the split come from the shards' JSON sidecars, already in memory; the dataset writer
    reads each record's arrays once. Counted at the readers (np.load of a work .npz, json.load of a sidecar,
    the records ``load_records`` yields), so a second pass over the shards fails here."""
    from collections import Counter
    raw, tok = small
    out = tmp_path / 'out'
    work = str(out / 'work') + os.sep
    opens, sidecars, records = Counter(), Counter(), Counter()
    real_np_load, real_json_load, real_load_records = np.load, json.load, tfds_builder.load_records

    def np_load(file, *args, **kwargs):
        if str(file).startswith(work):
            opens[os.path.basename(file)] += 1
        return real_np_load(file, *args, **kwargs)

    def json_load(f, *args, **kwargs):
        if str(getattr(f, 'name', '')).startswith(work + 'shard-'):
            sidecars[os.path.basename(f.name)] += 1
        return real_json_load(f, *args, **kwargs)

    def load_records(shard, names=None):
        for rec in real_load_records(shard, names):
            records[rec['name']] += 1
            yield rec
    monkeypatch.setattr(np, 'load', np_load)
    monkeypatch.setattr(json, 'load', json_load)
    monkeypatch.setattr(tfds_builder, 'load_records', load_records)
    shards = {'shard-00000', 'shard-00001'}           # a (with a#ov) and b: one video, so one split, each
    first = prepare(small_config(), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert first['shards_processed'] == 2 and sorted(first['written_names']) == ['a', 'a#ov', 'b']
    assert records == Counter(first['written_names'])                 # each record read once
    assert opens == Counter(s + '.npz' for s in shards)               # each shard opened once
    assert not sidecars                                                # fresh shards' sidecars: never read back
    opens.clear(), records.clear()
    second = prepare(small_config(), 'folder', str(raw), str(out), shard_size=1, **tok)
    assert second['shards_resumed'] == 2
    assert sidecars == Counter(s + '.json' for s in shards)           # read once, to check each shard's key
    assert records == Counter(second['written_names']) and opens == Counter(s + '.npz' for s in shards)


HOLD = """
import sys, time
from microemo_jax.lock import DirLock
with DirLock(sys.argv[1], 'prepare output folder'):
    print('held', flush=True)
    time.sleep(120)
"""


def test_one_run_per_out_folder(small, tmp_path):
    import subprocess
    import sys
    raw, tok = small
    out = tmp_path / 'out'
    args = ['--source', 'folder', '--raw', str(raw), '--out', str(out), '--workers', '1', '--shard-size', '1',
            '--tokenizer', tok['tokenizer'], '--qformer-tokenizer', tok['qformer_tokenizer'],
            '--config', 'configs/emer.py:demo'] + [f'--config.{o}' for o in SMALL]
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(SystemExit) as e:
            prepare_main(args)
        msg = str(e.value.code)
        assert f'pid {holder.pid} ' in msg and 'in use' in msg and 'started' in msg and '\n' not in msg
        assert not (out / 'work').exists()
    finally:
        holder.kill()
        holder.wait()
    prepare_main(args)  # its holder is gone: the lock is taken over, and released at the end
    assert json.loads((out / 'prepare_report.json').read_text())['written'] == 3
    assert not (out / '.lock').exists()


def test_bad_arguments_are_one_line_errors(small, tmp_path, capsys):
    raw, tok = small
    base = ['--source', 'folder', '--raw', str(raw), '--workers', '1', '--config', 'configs/emer.py:demo'] + \
        [f'--config.{o}' for o in SMALL]
    (tmp_path / 'a_file').write_text('x')
    cases = [(['--out', str(tmp_path / 'o1'), '--shard-size', '0'], '--shard-size 0: must be an integer >= 1'),
             (['--out', str(tmp_path / 'o2'), '--shard-size', '-1'], '--shard-size -1: must be an integer >= 1'),
             (['--out', str(tmp_path / 'a_file')], f"--out {tmp_path / 'a_file'}: exists and is not a folder")]
    read_only = tmp_path / 'ro'
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root writes anywhere: use a folder of a read-only kernel filesystem
        read_only = '/sys/kernel'
    if os.path.isdir(read_only) and not os.access(read_only, os.W_OK) or str(read_only) == '/sys/kernel':
        cases.append((['--out', str(read_only)], f'--out {read_only} is not writable'))
    for extra, want in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            prepare_main(base + extra)
        # argument checks print their line (exit status 2, cli_checks); prepare's own checks exit with it
        msg = e.value.code if isinstance(e.value.code, str) else capsys.readouterr().err.strip()
        assert msg == f'error: {want}' or (msg.startswith(f'error: {want}') and '\n' not in msg), msg


def test_answers_cut_to_max_seq_len_are_counted(small, tmp_path, capsys):
    raw, tok = small
    long = tmp_path / 'raw'
    long.mkdir()
    os.symlink(raw / 'a.mp4', long / 'a.mp4')
    write_labels(long, ' '.join(['She smiles at the camera'] * 150) + '.')
    cfg = small_config()
    report = prepare(cfg, 'folder', str(long), str(tmp_path / 'out'), shard_size=1, **tok)
    cut = report['prompts_shortened']
    limit = cfg.data.max_seq_len
    assert cut['answers_cut'] == 1 and cut['answers_cut_examples'] == ['a'] and cut['max_seq_len'] == limit
    assert f'warning: 1 answer(s) were cut to fit data.max_seq_len={limit}' in capsys.readouterr().err


def test_links_that_cannot_be_read_are_skipped_with_a_reason(small, tmp_path):
    raw, tok = small
    links = tmp_path / 'raw'
    links.mkdir()
    os.symlink(raw / 'a.mp4', links / 'a.mp4')          # a link to a video elsewhere is fine
    os.symlink(links / 'loop.mp4', links / 'loop.mp4')  # a loop
    os.symlink(links / 'nothing.mp4', links / 'dangling.mp4')
    os.symlink(raw / 'b.avi', links / 'b.avi')
    secret = tmp_path / 'secret.srt'
    secret.write_text('1\n00:00:00,000 --> 00:00:01,000\nTOP SECRET\n')
    os.symlink(secret, links / 'b.srt')                  # a side file out of the raw folder
    report = prepare(small_config(), 'folder', str(links), str(tmp_path / 'out'), shard_size=1, **tok)
    skipped = {s['name']: s['reason'] for s in map(json.loads, open(tmp_path / 'out' / 'skipped.jsonl'))}
    assert skipped['loop'].startswith('bad_link: ') and 'symbolic link loop' in skipped['loop']
    assert skipped['dangling'].startswith('bad_link: ') and 'dangling' in skipped['dangling']
    assert skipped['b'].startswith('bad_side_file: subtitle') and 'out of the raw folder' in skipped['b']
    assert 'TOP SECRET' not in (tmp_path / 'out' / 'skipped.jsonl').read_text()
    assert report['written_names'] == ['a'] and report['seen'] == 4


def test_a_binary_or_utf16_subtitle(small, tmp_path):
    raw, tok = small
    subs = tmp_path / 'raw'
    subs.mkdir()
    os.symlink(raw / 'a.mp4', subs / 'a.mp4')
    os.symlink(raw / 'a.mp4', subs / 'c.mp4')
    (subs / 'a.srt').write_bytes(SRT.encode('utf-16-le'))                 # UTF-16 without a BOM
    (subs / 'c.srt').write_bytes(b'\xff\xfe' + bytes(range(256)) * 3 + b'\x00')  # binary behind a BOM
    report = prepare(small_config(), 'folder', str(subs), str(tmp_path / 'out'), shard_size=1, **tok)
    skipped = {s['name']: s['reason'] for s in map(json.loads, open(tmp_path / 'out' / 'skipped.jsonl'))}
    assert report['written_names'] == ['a'] and _text(records_by_name(tmp_path / 'out')['a']['utterance_source']) == 'subtitles'
    assert skipped['c'].startswith('unreadable_subtitles: ') and str(subs / 'c.srt') in skipped['c']
