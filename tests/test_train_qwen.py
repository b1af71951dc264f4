"""configs/emer.py:tiny_qwen3 end to end: prepare with a ChatML (Qwen-style) tokenizer and its chat template,
train a MicroEmo whose LLM is a tiny Qwen3 (q/k norms, head_dim apart from hidden/heads, tied head), export the
parameter folder and explain a clip with it."""
import json
import os

import numpy as np
import pytest

from microemo_jax import params
from microemo_jax.config import load_config
from microemo_jax.data.pipeline import as_record, open_split
from microemo_jax.data.tokenizers import eos_token_ids, tokenizer_identity
from microemo_jax.inference.explainer import Explainer, prompt_examples, stack
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.runs.supervised import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Only the LLM is new here: the audio and micro-expression branches stay off (as in tests/support/training.py), and
# one checkpoint at the end and no validation pass keep this to one compiled train step.
SMALL = ('model.audio.enabled=false', 'model.micro_expression.enabled=false', 'checkpoint_every=4',
         'train.validate_every=0')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from microemo_jax.data.records.build import prepare
    from microemo_jax.demo.corpus import write_corpus
    root = tmp_path_factory.mktemp('qwen')
    write_corpus(str(root / 'raw'), 4, seed=3, size=96, workers=1, progress=False)
    cfg = load_config('configs/emer.py:tiny_qwen3', [*SMALL, f'data.dir={root / "prepared"}'])
    report = prepare(cfg, 'folder', str(root / 'raw'), str(root / 'prepared'), workers=1)
    last = run(cfg, str(root / 'work'))
    return cfg, root, report, last


def test_prepare_writes_chatml_prompts_that_say_which_tokenizer_made_them(trained):
    cfg, root, report, _ = trained
    llm_dir = report['tokenizers']['llm']
    identity = report['tokenizers']['identity']['llm']
    assert os.path.isfile(os.path.join(llm_dir, 'chat_template.jinja')) and tokenizer_identity(llm_dir) == identity
    folder_tok = params.load_tokenizers(str(root / 'work' / 'params'))[0]
    rec = as_record(open_split(str(root / 'prepared'), 'train')[0])
    assert rec['tokenizer'] == identity
    text = folder_tok.decode(rec['input_ids'])
    assert text.startswith('<|im_start|>system\n') and '<|im_start|>user\n<Video>' in text
    assert folder_tok.decode(rec['input_ids'][rec['loss_mask']]).endswith('<|im_end|>')


def test_tiny_qwen3_trains_exports_and_explains(trained):
    cfg, root, report, last = trained
    with open(root / 'work' / 'metrics.jsonl') as f:
        losses = {r['step']: r['loss'] for r in map(json.loads, f) if r.get('loss') is not None}
    assert sorted(losses) == [1, 2, 3, 4] and losses[4] < losses[1]
    folder = params.load(str(root / 'work' / 'params'))
    llm = folder.model.llm
    assert llm.cfg.qk_norm and llm.lm_head is None and llm.cfg.head_dim == 2 * llm.cfg.hidden_size // llm.cfg.num_heads
    llm_dir = os.path.join(folder.path, params.TOKENIZER_DIRS['llm'])
    assert tokenizer_identity(llm_dir) == report['tokenizers']['identity']['llm']  # the copy keeps the identity
    tok = folder.llm_tokenizer
    explainer = Explainer(folder, GenerationSettings(max_new_tokens=8))
    assert explainer.eos_ids == eos_token_ids(llm_dir) == [tok.convert_tokens_to_ids('<|im_end|>'),
                                                           tok.convert_tokens_to_ids('<|endoftext|>')]
    record = as_record(open_split(str(root / 'prepared'), 'validation')[0])
    text, = explainer.explain([record])
    assert isinstance(text, str)
    ids = explainer.generate_batch(stack(prompt_examples([record], folder.cfg, explainer.tokenizer_identity), 1)[0])
    assert ids.shape == (1, 8) and np.issubdtype(ids.dtype, np.integer)
    other = dict(record, tokenizer='sha256:ffffffffffffffff')  # a record another tokenizer made
    with pytest.raises(ValueError, match='tokenizer sha256:ffffffffffffffff'):
        explainer.explain([other])
