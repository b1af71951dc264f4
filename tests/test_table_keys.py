"""Every table reader refuses a column named twice, naming the file and the column (table_keys.checked_header):
with two ``openset`` columns, which one the author meant cannot be known, and the old readers used the last."""
import os

import pytest


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return str(path)


def _labels_folder(tmp_path):
    _write(tmp_path / 'a.mp4', '')
    _write(tmp_path / 'labels.csv', "name,openset,reason,openset\na,\"['happy']\",She smiles.,\"['sad']\"\n")
    from microemo_jax.data.raw.sources import read_source
    return lambda: read_source('folder', str(tmp_path))


def _ov_table(tmp_path):
    path = _write(tmp_path / 'gold.csv', "name,openset,OpenSet\na,\"['happy']\",\"['sad']\"\n")
    from microemo_jax.metrics.table import read_label_csv
    return lambda: read_label_csv(path)


def _per_sample(tmp_path):
    path = _write(tmp_path / 'per_sample.csv', 'name,gold,predicted,explanation,gold\na,["x"],["y"],text,["z"]\n')
    from microemo_jax.metrics.per_sample import read_per_sample
    return lambda: read_per_sample(path)


def _splits_csv(tmp_path):
    _write(tmp_path / 'prepare_report.json', '{}')
    _write(tmp_path / 'splits.csv', 'name,split,split\na,train,validation\n')
    os.makedirs(tmp_path / 'work')
    from microemo_jax.inference.scoring import indexed_records
    return lambda: indexed_records(str(tmp_path), 'train')


def _split_file(tmp_path):
    path = _write(tmp_path / 'official.csv', 'name,split,name\na,train,b\n')
    from microemo_jax.data.raw.labels import read_split_file
    return lambda: read_split_file(path)


def _bench_table(tmp_path):
    path = _write(tmp_path / 'pred.csv', 'name,openset,Name\na,happy,b\n')
    from microemo_jax.metrics.bench_tables import read_rows
    return lambda: read_rows(path, ('name', 'openset'))


def _wheel_formats(tmp_path):
    path = _write(tmp_path / 'format.csv', 'name,format,format\nhappy,happier,happiest\n')
    from microemo_jax.metrics.emotion_wheel import read_formats
    return lambda: read_formats(path)


@pytest.mark.parametrize('reader, column', [
    (_labels_folder, 'openset'), (_ov_table, 'openset'), (_per_sample, 'gold'), (_splits_csv, 'split'),
    (_split_file, 'name'), (_bench_table, 'name'), (_wheel_formats, 'format'),
])
def test_a_column_named_twice_is_refused_naming_the_file_and_the_column(tmp_path, reader, column):
    read = reader(tmp_path)
    with pytest.raises(ValueError, match=rf"{tmp_path}.*column '{column}' appears 2 times"):
        read()


def test_empty_column_names_may_repeat():
    from microemo_jax.table_keys import checked_header, duplicated_columns
    assert duplicated_columns(['name', 'openset', '', '']) == []
    assert checked_header('x.csv', [' name ', 'openset', '']) == ['name', 'openset', '']


def _synonyms_json(tmp_path):
    path = _write(tmp_path / 'synonyms.json', '{"clip1": [["happy", "glad"]], "clip1": [["sad"]]}')
    from microemo_jax.metrics.synonyms import load_synonyms
    return lambda: load_synonyms(path)


def _wheel_json(tmp_path):
    path = _write(tmp_path / 'wheel.json', '{"format_mapping": {}, "raw_mapping": {}, "format_mapping": {}}')
    from microemo_jax.metrics.wheel import load_wheel
    return lambda: load_wheel(path)


def _params_config(tmp_path):
    for sub in ('params', 'tokenizers/llm', 'tokenizers/qformer'):
        os.makedirs(tmp_path / sub)
    _write(tmp_path / 'config.json', '{"stage": 1, "seed": 0, "stage": 2}')
    from microemo_jax.params import load_config
    return lambda: load_config(str(tmp_path))


def _scores_summary(tmp_path):
    path = _write(tmp_path / 'summary.json', '{"scores": {"avg": 0.9}, "scores": {"avg": 0.1}}')
    from microemo_jax.web.model_facts import load_summary
    return lambda: load_summary(path)


@pytest.mark.parametrize('reader, key', [
    (_synonyms_json, 'clip1'), (_wheel_json, 'format_mapping'), (_params_config, 'stage'), (_scores_summary, 'scores'),
])
def test_a_json_key_given_twice_is_refused_naming_the_file_and_the_key(tmp_path, reader, key):
    read = reader(tmp_path)
    with pytest.raises(Exception, match=rf"{tmp_path}.*the key '{key}' is given twice"):
        read()
