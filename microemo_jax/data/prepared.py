"""A prepared dataset's report (``OUT/prepare_report.json``): where it is, and which tokenizers made the records.

``train`` copies those tokenizers into the parameter folder and compares their identity with the run's;
``evaluate`` compares it with the parameter folder's (``data/tokenizer_identity.py``).
"""
from __future__ import annotations

import json
import os

from microemo_jax.data.tokenizer_identity import identities

REPORT = 'prepare_report.json'


class NotPrepared(ValueError):
    """A folder is not (inside) a dataset made by ``prepare``, or its report is unusable."""


def find_prepare_report(data_dir: str) -> str:
    """``prepare_report.json`` of a prepared dataset, given its ``--out`` folder or the TFDS folder inside it."""
    here = os.path.abspath(data_dir)
    for _ in range(4):  # OUT, or OUT/tfds/NAME/VERSION
        if os.path.isfile(os.path.join(here, REPORT)):
            return os.path.join(here, REPORT)
        here = os.path.dirname(here)
    raise NotPrepared(f"{data_dir}: no {REPORT} in it or above it; was it made by "
                      f"`python -m microemo_jax.prepare`?")


def read_report(data_dir: str) -> tuple[str, dict]:
    """(path, contents) of a dataset's report; NotPrepared when it is missing or not a JSON object."""
    path = find_prepare_report(data_dir)
    try:
        with open(path, encoding='utf-8') as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise NotPrepared(f"{path}: cannot be read ({e})") from None
    if not isinstance(report, dict):
        raise NotPrepared(f"{path}: not a report written by `python -m microemo_jax.prepare`")
    return path, report


def _existing_dir(recorded: str, out: str, report_path: str) -> str:
    """A tokenizer folder recorded by prepare (possibly relative to where prepare ran)."""
    for candidate in (recorded, os.path.join(os.path.dirname(out), recorded),
                      os.path.join(out, 'tokenizers', os.path.basename(recorded))):
        if os.path.isdir(candidate):
            return candidate
    raise NotPrepared(f"the tokenizer folder {recorded!r} recorded in {report_path} is gone")


def tokenizer_dirs(data_dir: str) -> dict[str, str]:
    """{'llm': folder, 'qformer': folder}: the tokenizers the dataset was prepared with."""
    path, report = read_report(data_dir)
    try:
        recorded = {key: str(report['tokenizers'][key]) for key in ('llm', 'qformer')}
    except (KeyError, TypeError) as e:
        raise NotPrepared(f"{path}: does not say which tokenizers prepared the data ({e})") from None
    return {key: _existing_dir(folder, os.path.dirname(path), path) for key, folder in recorded.items()}


def dataset_tokenizers(data_dir: str) -> dict[str, str]:
    """The identity of the tokenizers that made the dataset's token ids: as recorded in its report, or (a dataset
    prepared before identities were recorded) computed from the tokenizer folders the report names."""
    _, report = read_report(data_dir)
    recorded = (report.get('tokenizers') or {}).get('identity') if isinstance(report.get('tokenizers'), dict) else None
    if isinstance(recorded, dict) and all(isinstance(recorded.get(k), str) for k in ('llm', 'qformer')):
        return {'llm': recorded['llm'], 'qformer': recorded['qformer']}
    dirs = tokenizer_dirs(data_dir)
    return identities(dirs['llm'], dirs['qformer'])
