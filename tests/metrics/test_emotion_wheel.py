"""AffectGPT's emotion_wheel/ folder read as the official code reads it: maps checked against hand-worked literals."""
from __future__ import annotations

import os

import openpyxl
import pytest

from microemo_jax.metrics.emotion_wheel import load_table, load_wheel_folder
from microemo_jax.metrics.wheel import Wheel
from tests.metrics.wheel_folder import FORMATS, RUN1, RUN2, WHEELS, write_sheet, write_wheel_folder


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return write_wheel_folder(tmp_path_factory.mktemp('emotion_wheel'))


@pytest.fixture(scope='module')
def table(folder):
    return load_wheel_folder(folder)


def test_wheel1_level1_carries_blanks_and_later_rows_win(table):
    assert table.wheels['wheel1']['level1'] == {
        'happy': 'happy', 'joyful': 'happy', 'glad': 'neutral', 'cheerful': 'happy', 'proud': 'happy',
        'confident': 'happy', 'sad': 'sad', 'lonely': 'sad', 'isolated': 'sad',
        'hurt': 'angry',            # blank level2 under Angry carries 'Hurt'; the later occurrence wins
        'angry': 'angry', 'annoyed': 'angry', 'mad': 'angry', 'furious': 'angry',
        'neutral': 'neutral', 'calm': 'neutral', 'relaxed': 'neutral'}   # ' Relaxed ' lower-cased, stripped


def test_level2_sends_a_level1_word_to_its_first_level2_word(table):
    level2 = table.wheels['wheel1']['level2']
    assert level2['happy'] == 'joyful' and level2['cheerful'] == 'joyful' and level2['confident'] == 'proud'
    assert level2['glad'] == 'calm'                                  # its last row wins at level 2 too
    assert level2['angry'] == 'hurt' and level2['sad'] == 'hurt' and level2['lonely'] == 'lonely'


def test_synonym_runs_merge_and_formats_point_to_names(table):
    assert table.raw_mapping['irate'] == ('angry', 'furious')        # run 2 adds 'furious' ('Furious ' cleaned)
    assert table.raw_mapping['livid'] == ('furious',)
    assert table.raw_mapping['joyful'] == ('happy', 'joyful') and table.raw_mapping['glum'] == ('angry', 'sad')
    assert table.format_mapping['fear'] == ('fearful',) and table.format_mapping['hurt'] == ('hurt',)
    assert 'lonely' not in table.format_mapping and 'revolted' not in table.format_mapping


@pytest.mark.parametrize('label, clusters', [
    ('joy', ['happy', 'joy', 'joyful', 'happy', 'happy']),
    ('glum', ['angry', 'anger', 'mad', 'sad', 'angry']),             # candidates [angry, sad]: alphabetical
    ('hurt', ['angry', '', 'sad', '', 'sad']),
    ('fury', ['angry', 'anger', '', '', 'angry']),
    ('disgust', ['', '', 'disgusted', '', '']),
    ('lonely', ['', '', '', '', '']),                                # a wheel word, but not in format.csv
])
def test_labels_reach_the_first_alphabetical_candidate_in_each_wheel(table, label, clusters):
    assert [table.map_label(label, table.wheels[w]['level1']) for w in sorted(table.wheels)] == clusters


def test_pandas_missing_strings_are_blanks(tmp_path):
    # The official reader goes through pandas: a cell 'NA' is a blank, so 'Joyful' carries down.
    wheels = dict(WHEELS, wheel4=[('Happy', 'Joyful', 'Glad'), ('NA', 'NA', 'Cheerful')])
    table = load_wheel_folder(write_wheel_folder(tmp_path, wheels=wheels))
    assert table.wheels['wheel4']['level1'] == {'happy': 'happy', 'joyful': 'happy', 'glad': 'happy',
                                                'cheerful': 'happy'}


def test_load_table_takes_a_folder_or_mer2025_npz(folder, tmp_path):
    assert isinstance(load_table(folder), Wheel)
    with pytest.raises(FileNotFoundError, match="emotion_wheel/ folder or MER2025's wheel_mapping.npz"):
        load_table(tmp_path / 'nowhere')


def _broken(tmp_path, **kw):
    return write_wheel_folder(tmp_path / 'w', **kw)


def test_bad_folders_are_named(tmp_path):
    folder = _broken(tmp_path)
    os.remove(os.path.join(folder, 'wheel3.xlsx'))
    with pytest.raises(FileNotFoundError, match='no wheel3.xlsx'):
        load_wheel_folder(folder)
    with open(os.path.join(folder, 'wheel3.xlsx'), 'w') as f:
        f.write('not a workbook')
    with pytest.raises(ValueError, match=r'wheel3.xlsx: not a readable .xlsx workbook'):
        load_wheel_folder(folder)


def test_synonym_words_must_be_wheel_words(tmp_path):
    runs = [RUN1 + [('elated', 'thrilled')]] + [RUN2 + [('elated', 'thrilled')]] + [RUN1 + [('happy', '')]] * 6
    with pytest.raises(ValueError, match=r"synonym.xlsx: row 11 column word_run1: 'elated' is not a word of any wheel"):
        load_wheel_folder(_broken(tmp_path, runs=runs))


def test_format_names_must_be_synonym_words(tmp_path):
    with pytest.raises(ValueError, match=r"format.csv: 1 names are not words of synonym.xlsx \('ecstatic'\)"):
        load_wheel_folder(_broken(tmp_path, formats=FORMATS + [('ecstatic', 'ecstasy')]))


def test_numbers_and_repeated_columns_are_refused(tmp_path):
    folder = _broken(tmp_path)
    write_sheet(os.path.join(folder, 'wheel2.xlsx'), ('level1', 'level2', 'level3'), [('Joy', 'Happy', 7)])
    with pytest.raises(ValueError, match=r'wheel2.xlsx: row 2 column level3: 7 is not a word'):
        load_wheel_folder(folder)
    write_sheet(os.path.join(folder, 'wheel2.xlsx'), ('level1', 'level2', 'level2'), [('Joy', 'Happy', 'Glad')])
    with pytest.raises(ValueError, match=r"wheel2.xlsx: a repeated column 'level2'"):
        load_wheel_folder(folder)


def test_the_sheets_are_real_xlsx(folder):
    book = openpyxl.load_workbook(os.path.join(folder, 'synonym.xlsx'))
    assert book.active['A1'].value == 'word_run1' and book.active['D2'].value == 'joyful, content'
