"""A prepared dataset as it is after ``prepare`` ran again with other tokenizers (the demo's are trained on the
corpus text, so editing one label is enough), without paying for a second prepare: a copy whose tokenizer
folders are replaced and whose report records them, as prepare records its own."""
from __future__ import annotations

import json
import os
import shutil

from microemo_jax.data.demo_tokenizers import train_demo_tokenizers
from microemo_jax.data.tokenizer_identity import identities


def retokenized_copy(prepared, dest, cfg) -> str:
    """Copy the dataset ``prepared`` to ``dest`` with tokenizers trained on other text; returns ``dest``."""
    shutil.copytree(prepared, dest, ignore=shutil.ignore_patterns('.lock'))
    llm, qf = train_demo_tokenizers(['An edited label: she is furious, not calm at all.',
                                     'This frame is sampled at 0.2 second.'], os.path.join(dest, 'tokenizers'),
                                    llm_vocab_size=cfg.model.llm.vocab_size,
                                    qformer_vocab_size=cfg.model.image_qformer.vocab_size)
    report_path = os.path.join(dest, 'prepare_report.json')
    with open(report_path) as f:
        report = json.load(f)
    report['tokenizers'] = {'llm': llm, 'qformer': qf, 'how': 'trained on the corpus text',
                            'identity': identities(llm, qf)}
    with open(report_path, 'w') as f:
        json.dump(report, f, indent=2)
    return str(dest)
