"""Every command line refuses a bad value of each argument type with one line, ``error: --flag VALUE: ...``, a
non-zero exit and no traceback, before it loads, generates or writes anything. In-process (``main(argv)``)."""
from __future__ import annotations

import importlib
import json
import struct

import pytest

from microemo_jax import cli_checks, sharding
from tests.support.tiny import config_args

CLIS = ('train', 'prepare', 'evaluate', 'predict', 'serve', 'convert', 'plan', 'curves', 'demo.report',
        'demo.corpus', 'metrics.__main__', 'data.describe')


@pytest.fixture
def paths(tmp_path):
    a_file = tmp_path / 'a_file.txt'
    a_file.write_text('not a folder\n')
    folder = tmp_path / 'folder'
    folder.mkdir()
    labels = tmp_path / 'labels.csv'
    labels.write_text("name,openset\na,['happy']\n")
    return {'FILE': str(a_file), 'DIR': str(folder), 'MISSING': str(tmp_path / 'missing'),
            'NEW': str(tmp_path / 'new'), 'CSV': str(labels)}


def run_cli(module: str, argv: list[str], capsys) -> tuple[int, str]:
    main = importlib.import_module(f'microemo_jax.{module}').main
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if isinstance(e.code, str):
            print(e.code, file=__import__('sys').stderr)
    return code, capsys.readouterr().err


def assert_one_line(module, argv, capsys, *expected):
    code, err = run_cli(module, argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), (module, argv, err)
    assert 'Traceback' not in err and len(lines) == 1 and lines[0].startswith('error: '), (module, argv, err)
    for text in expected:
        assert text in lines[0], (module, argv, lines[0], text)


# (CLI, argv with {FILE}/{DIR}/{MISSING}/{NEW}/{CSV} placeholders, what the line must say)
BAD = [
    ('demo.corpus', ['--out', '{NEW}', '--num', '0'], ['--num 0', '>= 1']),
    ('demo.corpus', ['--out', '{NEW}', '--size', '63'], ['--size 63', 'even']),
    ('demo.corpus', ['--out', '{NEW}', '--workers', 'two'], ['--workers two', 'integer']),
    ('demo.corpus', ['--out', '{NEW}', '--speech', 'loud'], ['--speech loud', 'not one of']),
    ('demo.corpus', ['--out', '{FILE}'], ['--out', 'not a folder']),
    ('plan', [*config_args(), '--mesh', 'fsdp=abc'], ['--mesh fsdp=abc', 'not an integer']),
    ('plan', [*config_args(), '--mesh', 'model=2'], ["axis 'model'"]),
    ('plan', [*config_args(), '--mesh', 'fsdp=2', '--batch', '0'], ['--batch 0']),
    ('plan', [*config_args(), '--mesh', 'fsdp=2', '--memory-gib', 'lots'], ['--memory-gib lots']),
    ('plan', [*config_args(), '--mesh', 'fsdp=2', '--search', 'random'], ['--search random']),
    ('plan', [*config_args(), '--mesh', 'fsdp=2', '--json', '{DIR}'], ['--json', 'is a folder']),
    ('plan', [*config_args('model.llm.num_layers=abc'), '--mesh', 'fsdp=2'], ['num_layers']),
    ('convert', [*config_args(), '--llm', '{MISSING}', '--out', '{NEW}'], ['--llm', 'no such folder']),
    ('convert', [*config_args(), '--llama', '{MISSING}', '--out', '{NEW}'], ['--llm', 'no such folder']),  # the alias
    ('convert', [*config_args(), '--out', '{FILE}'], ['--out', 'not a folder']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--batch-size', '0'], ['--batch-size 0']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--out', '{FILE}'], ['--out', 'not a folder']),
    ('predict', ['--params', '{MISSING}', '--video', '{DIR}'], ['--params', 'no such folder']),
    ('predict', ['--params', '{DIR}', '--video', '{MISSING}'], ['--video', 'no such file or folder']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--temperature', '-1'], ['--temperature -1']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--top-p', '0'], ['--top-p 0', '(0, 1]']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--top-k', 'x'], ['--top-k x']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--question', 'why'], ['--question why']),
    ('predict', ['--params', '{DIR}', '--video', '{DIR}', '--subtitles', '{DIR}'], ['--subtitles', 'folder']),
    ('evaluate', ['--params', '{DIR}', '--data', '{DIR}', '--out', '{NEW}', '--batch-size', '0'], ['--batch-size 0']),
    ('evaluate', ['--params', '{DIR}', '--data', '{DIR}', '--out', '{NEW}', '--max-new-tokens', '-5'],
     ['--max-new-tokens -5']),
    ('evaluate', ['--params', '{DIR}', '--data', '{MISSING}', '--out', '{NEW}'], ['--data']),
    ('evaluate', ['--params', '{DIR}', '--data', '{DIR}', '--out', '{FILE}'], ['--out', 'not a folder']),
    ('evaluate', ['--params', '{DIR}', '--data', '{DIR}', '--out', '{NEW}', '--split', 'dev'], ['--split dev']),
    ('serve', ['--params', '{DIR}', '--port', '70000'], ['--port 70000']),
    ('serve', ['--params', '{DIR}', '--max-upload-mb', '0'], ['--max-upload-mb 0']),
    ('serve', ['--params', '{DIR}', '--max-seconds', 'nan'], ['--max-seconds nan']),
    ('serve', ['--params', '{DIR}', '--queue-size', '0'], ['--queue-size 0']),
    ('serve', ['--params', '{DIR}', '--scores', '{MISSING}'], ['--scores']),
    ('train', [*config_args(), '--workdir', '{FILE}'], ['--workdir', 'not a folder']),
    ('train', [*config_args('data.batch_size=abc'), '--workdir', '{NEW}'], ['batch_size']),
    ('prepare', ['--source', 'folder', '--raw', '{DIR}', '--out', '{NEW}', '--workers', '0'], ['--workers 0']),
    ('prepare', ['--source', 'folder', '--raw', '{DIR}', '--out', '{NEW}', '--shard-size', '-3'], ['--shard-size -3']),
    ('prepare', ['--source', 'folder', '--raw', '{MISSING}', '--out', '{NEW}'], ['--raw']),
    ('prepare', ['--source', 'nope', '--raw', '{DIR}', '--out', '{NEW}'], ['--source nope']),
    ('prepare', ['--source', 'folder', '--raw', '{DIR}', '--out', '{FILE}'], ['--out', 'not a folder']),
    ('prepare', ['--source', 'folder', '--raw', '{DIR}', '--out', '{NEW}', '--split-file', '{DIR}'],
     ['--split-file']),
    ('curves', ['{MISSING}'], ['no such folder']),
    ('curves', ['{DIR}', '--out', '{DIR}'], ['--out', 'is a folder']),
    ('curves', ['{DIR}'], ['metrics.jsonl']),
    ('demo.report', ['{MISSING}', '--out', '{NEW}'], ['params', 'no such folder']),
    ('demo.report', ['{DIR}', '--out', '{NEW}', '--split', 'dev'], ['--split dev']),
    ('demo.report', ['{DIR}', '--out', '{NEW}', '--max-new-tokens', '0'], ['--max-new-tokens 0']),
    ('demo.report', ['{DIR}', '--out', '{FILE}'], ['--out', 'not a folder']),
    ('metrics.__main__', ['--gold', '{MISSING}', '--pred', '{FILE}'], ['missing', 'no such file']),
    ('metrics.__main__', ['--gold', '{FILE}', '--pred', '{FILE}', '--dataset', 'nope'], ['--dataset nope']),
    ('metrics.__main__', ['--gold', '{CSV}', '--pred', '{CSV}', '--wheel', '{MISSING}'], ['missing']),
    ('data.describe', ['{MISSING}'], ['no such folder']),
    ('data.describe', ['{DIR}', '--split', 'dev'], ['--split dev']),
    ('data.describe', ['{DIR}'], ['not a prepared dataset']),
]


def test_every_cli_is_covered():
    assert {module for module, _, _ in BAD} == set(CLIS)
    assert cli_checks.MESH_AXES == sharding.MESH_AXES


@pytest.mark.parametrize('module, argv, expected', BAD, ids=[f'{m}:{" ".join(a[-2:])}' for m, a, _ in BAD])
def test_a_bad_argument_is_one_line(module, argv, expected, paths, capsys):
    assert_one_line(module, [a.format(**paths) for a in argv], capsys, *[e.format(**paths) for e in expected])


def test_metrics_names_a_latin1_labels_file(tmp_path, capsys):
    gold = tmp_path / 'labels.csv'
    gold.write_bytes("name,openset\nclip_é,\"['happy']\"\n".encode('latin-1'))
    assert_one_line('metrics.__main__', ['--gold', str(gold), '--pred', str(gold)], capsys, str(gold), 'UTF-8')


def test_a_bad_mesh_batch_is_one_line(paths, capsys):
    """A batch the mesh cannot split is found before the step compiles (one line, not a traceback)."""
    assert_one_line('plan', [*config_args(), '--mesh', 'data=2', '--batch', '3'], capsys, '3')


def _llama_folder(root, **config) -> str:
    folder = root / 'llama'
    folder.mkdir()
    base = {'model_type': 'llama', 'vocab_size': 64, 'hidden_size': 16, 'intermediate_size': 32,
            'num_hidden_layers': 1, 'num_attention_heads': 2, 'max_position_embeddings': 64}
    (folder / 'config.json').write_text(json.dumps({**base, **config}))
    header = json.dumps({'model.embed_tokens.weight': {'dtype': 'F32', 'shape': [2 ** 40, 2 ** 40],
                                                       'data_offsets': [0, 0]}}).encode()
    (folder / 'model.safetensors').write_bytes(struct.pack('<Q', len(header)) + header)
    return str(folder)


@pytest.mark.parametrize('config, expected', [
    ({'num_attention_heads': 0}, 'num_attention_heads is 0'),
    ({'vocab_size': 'lots'}, "vocab_size is 'lots'"),
    ({'rms_norm_eps': -1}, 'rms_norm_eps'),
    ({}, 'embed_tokens'),                    # config fine; the tensor's shape overflows: named, not a traceback
])
def test_convert_names_the_checkpoint_key(tmp_path, capsys, config, expected):
    folder = _llama_folder(tmp_path, **config)
    assert_one_line('convert', [*config_args(), '--llama', folder, '--out', str(tmp_path / 'out')], capsys,
                    'config.json' if config else 'model.safetensors', expected)
