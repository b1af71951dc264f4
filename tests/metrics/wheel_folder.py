"""A small emotion_wheel/ folder written with openpyxl, in AffectGPT's layout, for the benchmark tests.

Its maps, worked out by hand (level-1 cluster of each label in wheel1..wheel5; '' = none):

    label             wheel1   wheel2   wheel3     wheel4  wheel5   why
    happy, content    happy    joy      joyful     happy   happy
    joyful, joy       happy    joy      joyful     happy   happy    candidates [happy, joyful]: 'happy' first
    sad, sadness      sad      sadness  sad        sad     sad
    glum              angry    anger    mad        sad     angry    candidates [angry, sad]: alphabetical
    angry, anger      angry    anger    mad        ''      angry
    irate             angry    anger    mad        ''      angry    candidates [angry, furious] (run2 adds furious)
    furious, fury     angry    anger    ''         ''      angry
    hurt              angry    ''       sad        ''      sad      wheel1: blank level2 carried into Angry
    fearful, fear     ''       fear     ''         ''      ''
    disgusted, disgust ''      ''       disgusted  ''      ''
    calm, neutral     neutral  ''       ''         ''      ''
    lonely, revolted, livid: not in format.csv, so no cluster anywhere.
"""
from __future__ import annotations

import csv
import os

import openpyxl

WHEELS = {
    # wheel1: blanks carry down; row 5's blank level3 repeats 'Isolated', row 6's blank level2 carries 'Hurt'
    # into Angry, so 'hurt' is first sad, then angry (the later occurrence wins); 'Glad' ends up neutral.
    'wheel1': [('Happy', 'Joyful', 'Glad'), (None, None, 'Cheerful'), (None, 'Proud', 'Confident'),
               ('Sad', 'Lonely', 'Isolated'), (None, 'Hurt', None), ('Angry', None, 'Annoyed'),
               (None, 'Mad', 'Furious'), ('Neutral', 'Calm', ' Relaxed '), (None, None, 'Glad')],
    'wheel2': [('Joy', 'Happy', 'Cheerful'), ('Sadness', 'Sad', 'Lonely'), ('Anger', 'Angry', 'Furious'),
               ('Fear', 'Scared', 'Fearful')],
    'wheel3': [('Mad', 'Angry', 'Annoyed'), ('Sad', 'Hurt', 'Lonely'), ('Joyful', 'Happy', 'Proud'),
               ('Disgusted', 'Disapproving', 'Awful')],
    'wheel4': [('Happy', 'Glad', 'Cheerful'), ('Sad', 'Lonely', 'Isolated')],
    'wheel5': [('Happy', 'Proud', 'Confident'), ('Angry', 'Mad', 'Furious'), ('Sad', 'Hurt', 'Lonely')],
}
RUN1 = [('happy', 'joyful, content'), ('sad', 'glum, down'), ('angry', 'glum, irate'), ('fearful', 'fear, afraid'),
        ('disgusted', 'revolted'), ('hurt', 'wounded'), ('calm', 'serene'), ('neutral', 'indifferent'),
        ('joyful', 'joy')]
RUN2 = RUN1[:-1] + [('Furious ', 'Livid, Irate')]       # case and spaces: lower-cased and stripped
FORMATS = [('happy', 'happiness,happily'), ('sad', 'sadness'), ('glum', 'glumness'), ('angry', 'anger'),
           ('fearful', 'fear,fearfully'), ('disgusted', 'disgust'), ('hurt', ''), ('calm', 'calmness'),
           ('neutral', ''), ('joyful', 'joy,joyfully'), ('furious', 'fury'), ('irate', ''), ('content', '')]


def write_sheet(path, header, rows) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    book.save(path)


def write_wheel_folder(folder, wheels=None, runs=None, formats=None) -> str:
    """Writes format.csv, synonym.xlsx and wheel1..5.xlsx into ``folder``; returns its path."""
    os.makedirs(folder, exist_ok=True)
    for name, rows in (wheels or WHEELS).items():
        write_sheet(os.path.join(folder, f'{name}.xlsx'), ('level1', 'level2', 'level3'), rows)
    runs = runs or [RUN1, RUN2] + [RUN1] * 6
    header = [f'{kind}_run{k}' for k in range(1, 9) for kind in ('word', 'synonym')]
    rows = [[cell for run in runs for cell in run[i]] for i in range(len(runs[0]))]
    write_sheet(os.path.join(folder, 'synonym.xlsx'), header, rows)
    with open(os.path.join(folder, 'format.csv'), 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['name', 'format'])
        writer.writerows(formats or FORMATS)
    return str(folder)
