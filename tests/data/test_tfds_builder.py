"""The prepared dataset: shard records -> TFDS ArrayRecord splits -> random-access reads and inspect."""
import json
import os
import pickle

import numpy as np
import pytest

from microemo_jax.data import inspect as inspect_cli
from microemo_jax.data import tfds_builder
from microemo_jax.data.record import FIELDS, split_jpegs

from records import make_record


def write_shards(out, records, shard_size=2):
    work = os.path.join(out, 'work')
    os.makedirs(work)
    for i in range(0, len(records), shard_size):
        with open(os.path.join(work, f'shard-{i // shard_size:05d}.pkl'), 'wb') as f:
            pickle.dump({'names': [r['name'] for r in records[i:i + shard_size]],
                         'records': records[i:i + shard_size], 'skips': []}, f)


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
            assert tfds_builder.split_of(name, 0.3) == split
            want = by_name[name]
            for key in FIELDS:
                np.testing.assert_array_equal(np.asarray(got[key]), want[key], err_msg=key)
                assert np.asarray(got[key]).dtype == want[key].dtype, key
            assert split_jpegs(got['frames_jpeg'], got['frame_offsets'])[0][:2] == b'\xff\xd8'
            seen.append(name)
    assert sorted(seen) == sorted(by_name)
    capsys.readouterr()  # drop what TFDS printed while building
    inspect_cli.main([out])
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
        inspect_cli.main([str(tmp_path)])
