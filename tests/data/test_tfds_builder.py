"""The prepared dataset: shard records -> TFDS ArrayRecord splits -> random-access reads and inspect."""
import json
import os

import numpy as np
import pytest

from microemo_jax.data.raw.splits import split_of, split_overlap
from microemo_jax.data.records import describe as describe_cli, tfds_builder
from microemo_jax.data.records.record import FIELDS, split_jpegs
from tests.support.records import make_record


def write_shards(out, records, shard_size=2):
    work = os.path.join(out, 'work')
    os.makedirs(work, exist_ok=True)
    for i in range(0, len(records), shard_size):
        tfds_builder.write_shard(work, i // shard_size, key=f'k{i}', records=records[i:i + shard_size], skips=[])


def test_records_round_trip_through_tfds_and_inspect(tmp_path, capsys):
    out = str(tmp_path)
    records = [make_record(f'clip {i} ü', num_frames=2 + i % 3, mel_frames=i * 3, seed=i) for i in range(6)]
    write_shards(out, records)
    path = tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16, validation_fraction=0.3)
    assert os.path.isfile(os.path.join(path, 'dataset_info.json'))
    by_name = {r['name']: r for r in records}
    seen = []
    for split in ('train', 'validation'):
        source = tfds_builder.open_dataset(out, split)
        for i in range(len(source)):
            got = source[i]
            name = got['name'].decode() if isinstance(got['name'], bytes) else got['name']
            assert split_of(name, 0.3) == split
            want = by_name[name]
            for key in FIELDS:
                np.testing.assert_array_equal(np.asarray(got[key]), want[key], err_msg=key)
                assert np.asarray(got[key]).dtype == want[key].dtype, key
            assert split_jpegs(got['frames_jpeg'], got['frame_offsets'])[0][:2] == b'\xff\xd8'
            seen.append(name)
    assert sorted(seen) == sorted(by_name)
    capsys.readouterr()  # drop what TFDS printed while building
    describe_cli.main([out])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(line['name'] for line in lines) == sorted(by_name)
    one = next(line for line in lines if line['name'] == 'clip 1 ü')
    assert one['num_frames'] == 3 and one['faces_found'] == 2 and one['num_answer_tokens'] == 5
    assert one['timestamps'] == [0.0, 0.5, 1.0] and one['num_utterances'] == 1


def test_opening_something_that_is_not_a_prepared_dataset(tmp_path):
    with pytest.raises(ValueError, match='is not a prepared dataset'):
        tfds_builder.open_dataset(str(tmp_path), 'train')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        tfds_builder.open_dataset(str(tmp_path / 'missing'), 'train')
    with pytest.raises(SystemExit, match='not a prepared dataset'):
        describe_cli.main([str(tmp_path)])


def test_every_record_of_a_video_lands_in_one_split(tmp_path):
    """The old hash of the record name put a clip's ``NAME`` and ``NAME#ov`` targets in different splits."""
    names = [f'video{i:03d}' for i in range(60)]
    for name in names:
        assert split_of(name, 0.5) == split_of(name + '#ov', 0.5)
    both = [n for n in names for n in (n, n + '#ov')]
    assert {split_of(n, 0.5) for n in both} == {'train', 'validation'}
    out = str(tmp_path)
    records = [make_record(n, seed=i) for i, n in enumerate(both[:16])]
    write_shards(out, records, shard_size=3)          # shards cut across a video's targets on purpose
    tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16, validation_fraction=0.5)
    by_split = {s: [r['name'].decode() for r in tfds_builder.open_dataset(out, s)] for s in tfds_builder.splits(out)}
    overlap = split_overlap(by_split)
    assert overlap['videos_in_several_splits'] == 0 and sum(map(len, by_split.values())) == 16


def test_an_explicit_assignment_with_a_test_split(tmp_path):
    out = str(tmp_path)
    records = [make_record(n, seed=i) for i, n in enumerate(['a', 'a#ov', 'b', 'c', 'c#ov'])]
    write_shards(out, records)
    assignment = {'a': 'test', 'a#ov': 'test', 'b': 'validation', 'c': 'train', 'c#ov': 'train'}
    tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16, assignment=assignment)
    assert tfds_builder.splits(out) == ['test', 'train', 'validation']
    assert sorted(r['name'].decode() for r in tfds_builder.open_dataset(out, 'test')) == ['a', 'a#ov']
    with pytest.raises(ValueError, match="come from one video 'a'"):
        tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16,
                           assignment={**assignment, 'a#ov': 'train'})


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_shards_are_read_without_pickle(tmp_path):
    """A work shard holding a pickled object (planted .npz) is refused, and its payload never runs."""
    out, marker = str(tmp_path / 'out'), str(tmp_path / 'PWNED')
    write_shards(out, [make_record('a')], shard_size=1)
    shard = tfds_builder.read_index(os.path.join(out, 'work'))[0]
    arrays = dict(np.load(shard.npz))
    arrays['0/timestamps'] = np.array([_Payload(marker)], dtype=object)
    with open(shard.npz, 'wb') as f:
        np.savez(f, **arrays)
    shard.meta['npz_bytes'] = os.path.getsize(shard.npz)
    with open(shard.npz[:-4] + '.json', 'w') as f:
        json.dump(shard.meta, f)
    with pytest.raises(ValueError, match='pickled objects: refused'):
        tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16)
    assert not os.path.exists(marker)


PLANTED = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n"


@pytest.mark.parametrize('where', ['features.json', 'dataset_info.json'])
def test_a_folder_never_chooses_the_code_that_reads_it(tmp_path, monkeypatch, capsys, where):
    """A class name planted in features.json (or a feature spec in dataset_info.json) is refused by name, and the
    module it names, importable from the working directory, never runs: the spec is built from our code."""
    out, marker, planted = str(tmp_path / 'out'), tmp_path / 'RAN', tmp_path / 'cwd'
    planted.mkdir()
    module = 'planted_' + where.split('.')[0]                     # a fresh name per case: never cached
    (planted / f'{module}.py').write_text(PLANTED.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(planted))
    monkeypatch.chdir(planted)
    write_shards(out, [make_record('a'), make_record('b', seed=1)])
    folder = tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16, validation_fraction=0.0)
    with open(os.path.join(folder, 'features.json')) as f:
        spec = json.load(f)
    spec['featuresDict']['features']['answer']['pythonClassName'] = f'{module}.Text'
    if where == 'features.json':
        with open(os.path.join(folder, 'features.json'), 'w') as f:
            json.dump(spec, f)
    else:
        with open(os.path.join(folder, 'dataset_info.json')) as f:
            info = json.load(f)
        info['features'] = spec
        with open(os.path.join(folder, 'dataset_info.json'), 'w') as f:
            json.dump(info, f)
    with pytest.raises(ValueError, match=f"{folder}.*(answer|features)"):
        tfds_builder.open_dataset(out, 'train')
    with pytest.raises(SystemExit, match='refused'):
        describe_cli.main([out])
    assert not marker.exists()


def test_a_folder_whose_spec_differs_is_refused_by_name(tmp_path):
    out = str(tmp_path)
    write_shards(out, [make_record('a')])
    folder = tfds_builder.build(out, num_crops=2, timestamp_tokens=5, num_mel_bins=16, validation_fraction=0.0)
    path = os.path.join(folder, 'features.json')
    with open(path) as f:
        spec = json.load(f)
    spec['featuresDict']['features']['input_ids']['tensor']['dtype'] = 'int64'
    with open(path, 'w') as f:
        json.dump(spec, f)
    with pytest.raises(ValueError, match=r"features\.json.*input_ids.*int64.*int32"):
        tfds_builder.splits(out)
