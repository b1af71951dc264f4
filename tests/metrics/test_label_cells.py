"""MER's label cells and CSVs read as data: the parser, and bad rows reported with their line numbers."""
from __future__ import annotations

import pytest

from microemo_jax.metrics import parse_labels, read_label_csv
from microemo_jax.metrics.labels import parse_groups


@pytest.mark.parametrize('cell, labels', [
    ("['happy', 'excited']", ['happy', 'excited']),
    ('["happy","excited"]', ['happy', 'excited']),
    ('[sad]', ['sad']),
    ('[sad, very happy ]', ['sad', 'very happy']),
    ("[don't know, 开心]", ["don't know", '开心']),
    (" [ 'a,b' , \"it's\" ] ", ['a,b', "it's"]),
    ("['it\\'s']", ["it's"]),
    ("['happy',]", ['happy']),
    ('[]', []),
    ('', []),
    ("['', 'sad']", ['', 'sad']),
])
def test_parse_labels(cell, labels):
    assert parse_labels(cell) == labels


@pytest.mark.parametrize('cell, why', [
    ('happy', "expected a list starting with '\\['"),
    ("['happy'", "missing '\\]'"),
    ("['happy' 'sad']", "expected ',' or '\\]'"),
    ("[['happy']]", 'unexpected nested list'),
    ("['happy'] + ['sad']", 'unexpected text after the list'),
    ("['happy]", 'unterminated string'),
    ('[happy, , sad]', 'empty item'),
    ("__import__('os').system('touch owned')", "expected a list"),
    ("[__import__('os').system('touch owned')]", "unexpected character '\\('"),
    ("[happy', 'sad']", "unexpected character \"'\""),
])
def test_malformed_cells_are_rejected(cell, why, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=why):
        parse_labels(cell)
    assert not (tmp_path / 'owned').exists()


def test_parse_groups():
    assert parse_groups("[['happy', 'joyful'], [\"sad\"], []]") == [['happy', 'joyful'], ['sad'], []]
    with pytest.raises(ValueError, match="expected '\\['"):
        parse_groups("['happy', ['sad']]")


def test_csv_rows_and_their_problems(tmp_path):
    path = tmp_path / 'gold.csv'
    path.write_text(
        '\ufeffName,openset,extra\n'                        # BOM, capitalised header, extra column: fine
        'a,"[\'happy\', \'excited\']",x\n'                    # line 2
        'b,[sad],y\n'                                       # line 3
        'c,"[\'multi\n line\']",z\n'                          # lines 4-5: one record
        'd,happy,z\n'                                       # line 6: not a list
        '\n'                                                # line 7: blank, skipped
        'a,[angry],z\n'                                     # line 8: repeated name
        ',[sad],z\n'                                        # line 9: no name
        'e\n'                                               # line 10: too few fields
        'f,"",z\n'                                         # line 11: empty cell = empty set
        'g,"[\'two\n lines\'",z\n', encoding='utf-8')         # lines 12-13: malformed, reported at 12
    table = read_label_csv(path)
    assert table.labels == {'a': ['happy', 'excited'], 'b': ['sad'], 'c': ['multi\n line'], 'f': []}
    assert [(m['line'], m['reason'].split(':')[0]) for m in table.malformed] == [
        (6, 'd'), (8, "name 'a' repeats line 2; the first row is kept"), (9, 'empty name'),
        (10, '1 fields, expected 3'), (12, 'g')]
    assert all(m['file'] == str(path) for m in table.malformed)


def test_csv_without_the_columns_is_an_error(tmp_path):
    (tmp_path / 'x.csv').write_text('names,emotions\na,[sad]\n')
    with pytest.raises(ValueError, match='no column name, openset.*expected columns name, openset'):
        read_label_csv(tmp_path / 'x.csv')
    (tmp_path / 'empty.csv').write_text('')
    with pytest.raises(ValueError, match='empty file'):
        read_label_csv(tmp_path / 'empty.csv')
    with pytest.raises(FileNotFoundError, match='nowhere.csv'):
        read_label_csv(tmp_path / 'nowhere.csv')
