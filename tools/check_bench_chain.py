"""Check the whole MER-UniBench chain (published label layouts -> prepare -> evaluate --bench) on real caches.

Writes gold files for the nine datasets in their published layouts (MELD's real ``test_sent_emo.csv``; the
others synthetic, seeded, since their labels are under EULA), named as AffectGPT's published caches name the
clips; prepares each with ``prepare --source`` (labels only: no clip is needed for the cache extractor); runs
``evaluate --bench --extractor cache --select best``; then scores every (dataset, checkpoint) again with the
metrics CLI straight on the cache ``.npz`` and reports the largest difference. Offline; needs AffectGPT's
``output/`` and ``emotion_wheel/`` folders (its repository at fffca79) and MELD's csv (declare-lab/MELD):

    python tools/check_bench_chain.py --affectgpt AffectGPT/AffectGPT --meld MELD/data/MELD/test_sent_emo.csv \
        --work /tmp/bench-chain
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np

SOURCES = {'MER2023': 'mer2023', 'MER2024': 'mer2024', 'MELD': 'meld', 'IEMOCAPFour': 'iemocap',
           'CMUMOSI': 'cmumosi', 'CMUMOSEI': 'cmumosei', 'SIMS': 'sims', 'SIMSv2': 'simsv2',
           'OVMERDPlus': 'ovmerdplus'}
MER = ['neutral', 'angry', 'happy', 'sad', 'worried', 'surprise']
OV = ['happy', 'sad', 'angry', 'worried', 'surprised', 'calm', 'excited', 'nervous', 'frustrated', 'confused']


def _write(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_layouts(raw: str, cache: str, meld_csv: str, seed: int = 0) -> None:
    rng = random.Random(seed)

    def names(dataset):
        path = sorted(glob.glob(f'{cache}/results-{dataset.lower()}/*/checkpoint_*-openset.npz'))[0]
        return [str(n) for n in np.load(path)['filenames']]

    _write(f'{raw}/mer2023/test1-label.csv', ['name', 'discrete', 'valence'],
           [[n, rng.choice(MER), '0'] for n in names('MER2023')])
    n24 = names('MER2024')
    _write(f'{raw}/mer2024/semi-label.csv', ['name', 'discrete'],
           [[n, rng.choice(MER)] for n in n24] + [[f'extra_{i}', 'sad'] for i in range(len(n24) + 1)])
    os.makedirs(f'{raw}/meld', exist_ok=True)
    shutil.copy(meld_csv, f'{raw}/meld/test_sent_emo.csv')
    dialogs: dict[str, list[str]] = {}
    for n in names('IEMOCAPFour'):
        dialogs.setdefault(n.rsplit('_', 1)[0], []).append(n)
    for dialog, utterances in dialogs.items():
        path = f'{raw}/iemocap/Session5/dialog/EmoEvaluation/{dialog}.txt'
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write('% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n')
            for i, n in enumerate(utterances):
                code = rng.choice(['hap', 'exc', 'sad', 'neu', 'ang'])
                f.write(f'[{i:.4f} - {i + 0.5:.4f}]\t{n}\t{code}\t[2.5000, 2.5000, 2.5000]\n\n')
    for dataset, label_file, values in (('CMUMOSI', 'label.csv', [-2.4, -1.0, 0.0, 0.6, 3.0]),
                                        ('CMUMOSEI', 'label.csv', [-2.4, -1.0, 0.0, 0.6, 3.0]),
                                        ('SIMS', 'label.csv', [-0.8, 0.0, 0.2, 1.0]),
                                        ('SIMSv2', 'meta.csv', [-0.8, 0.0, 0.2, 1.0])):
        rows = [[*n.rsplit('_', 1), 'text', rng.choice(values), 'x', 'test'] for n in names(dataset)]
        _write(f'{raw}/{SOURCES[dataset]}/{label_file}', ['video_id', 'clip_id', 'text', 'label', 'annotation', 'mode'],
               rows)
    ov = names('OVMERDPlus')
    _write(f'{raw}/ovmerdplus/ovlabel.csv', ['name', 'openset'], [[n, str(rng.sample(OV, rng.randint(0, 3)))] for n in ov])
    _write(f'{raw}/ovmerdplus/subtitle_eng.csv', ['name', 'sentence'], [[n, 'hi'] for n in ov])


def _run(args):
    return subprocess.run([sys.executable, '-m', *args], capture_output=True, text=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--affectgpt', required=True, help="AffectGPT's AffectGPT/ folder (output/, emotion_wheel/)")
    parser.add_argument('--meld', required=True, help="MELD's test_sent_emo.csv")
    parser.add_argument('--work', required=True, help='scratch folder (raw/, root/, out/)')
    args = parser.parse_args(argv)
    cache, wheel = os.path.join(args.affectgpt, 'output'), os.path.join(args.affectgpt, 'emotion_wheel')
    raw, root, out = (os.path.join(args.work, d) for d in ('raw', 'root', 'out'))
    write_layouts(raw, cache, args.meld)
    for dataset, source in SOURCES.items():
        _run(['microemo_jax.prepare', '--source', source, '--raw', f'{raw}/{source}', '--out', f'{root}/{source}',
              '--config', 'configs/emer.py:tiny', '--workers', '1'])    # no clip: ends with "no clip could be prepared"
        with open(f'{root}/{source}/prepare_report.json', encoding='utf-8') as f:
            bench = json.load(f)['benchmark']
        print(f"{dataset}: {bench['test_clips']} test clips (official {bench['expected_test_clips']})")
    done = _run(['microemo_jax.evaluate', '--bench', 'merunibench', '--extractor', 'cache', '--cache', cache,
                 '--select', 'best', '--data-root', root, '--out', out, '--wheel', wheel])
    if done.returncode:
        sys.exit(done.stderr[-2000:])
    print(done.stdout)
    worst, pairs = 0.0, 0
    for dataset, source in SOURCES.items():
        for npz in sorted(glob.glob(f'{cache}/results-{dataset.lower()}/*/checkpoint_*-openset.npz')):
            label = os.path.basename(npz)[:len('checkpoint_000030')]
            cli = json.loads(_run(['microemo_jax.metrics', '--dataset', dataset, '--gold',
                                   f'{root}/{source}/bench_gold.csv', '--pred', npz, '--wheel', wheel]).stdout)
            with open(f'{out}/{label}/{dataset}/score.json', encoding='utf-8') as f:
                mine = json.load(f)
            worst, pairs = max(worst, abs(cli[cli['metric']] - mine[cli['metric']])), pairs + 1
    print(f'{pairs} (dataset, checkpoint) pairs; largest difference from the metrics CLI on the caches: {worst}')


if __name__ == '__main__':
    main()
