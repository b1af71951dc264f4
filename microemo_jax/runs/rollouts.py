"""Stage 3's rollouts: G answers per clip sampled from the policy, read back as text and rewarded.

* ``strip_answers``: a training batch's prompts alone (the record's answer tokens become padding), the prompt
  ``generate`` and the GRPO step both read.
* ``Rollouts.sample``: ``generate.sample_placed`` on the device batch with the policy's parameters and the frozen
  weights as separate trees (one copy of each), ``num_samples=G``: the encoders and the prefill run once per
  clip and the cache is repeated G times; one compiled decode loop, no host round-trip per token; the tokens
  and their behaviour log-probabilities stay sharded over the batch axes.
* ``Rollouts.reward``: each process reads only its own rows (the clips its data shard holds), decodes them,
  scores them with ``training.rewards`` against the clips' gold labels, and the per-row rewards are assembled
  into global arrays again. Rewards run on the host (they are the metrics' Python code); the rollout is the one
  device-to-host transfer of a step.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh

from microemo_jax.data.raw.splits import video_of
from microemo_jax.data.shapes import MODEL_INPUTS
from microemo_jax.generate import EOS_SLOTS, sample_placed
from microemo_jax.inference.explainer import decode_answer
from microemo_jax.training import rewards as rewards_lib
from microemo_jax.training.step import batch_input_sharding


def strip_answers(batch: dict, width: int | None = None) -> dict:
    """A host batch with each row's answer (``loss_mask``) turned into padding: the right-padded prompts, cut to
    ``width`` tokens when given (at least the longest prompt: ``rl_data.question_records``)."""
    out = dict(batch)
    answer = np.asarray(batch['loss_mask'], bool)
    s = answer.shape[1]
    start = np.where(answer.any(axis=1), answer.argmax(axis=1), s)
    width = s if width is None else min(int(width), s)
    has = answer.any(axis=1)          # rows without one: evaluation's padding clips, whose answer is not marked
    if (start[has] > width).any():
        raise ValueError(f"a prompt of {int(start[has].max())} tokens does not fit the rollout width {width}")
    keep = np.arange(width)[None, :] < start[:, None]
    out['input_ids'] = np.where(keep, batch['input_ids'][:, :width], 0).astype(np.int32)
    out['attention_mask'] = np.asarray(batch['attention_mask'], bool)[:, :width] & keep
    out['loss_mask'] = np.zeros_like(answer[:, :width])
    return out


def question_of(record_name: str) -> str:
    """'ov' for the OV-label record of a clip (``NAME#ov``), else 'description' (``scoring.plan_videos``' rule)."""
    return 'ov' if str(record_name).endswith('#ov') else 'description'


def local_rows(array: jax.Array) -> np.ndarray:
    """This process's rows of a global array sharded over its leading axis, in order (replicas read once)."""
    if array.is_fully_addressable:
        return np.asarray(jax.device_get(array))
    parts = {}
    for shard in array.addressable_shards:
        parts.setdefault(shard.index[0].start or 0, shard.data)
    return np.concatenate([np.asarray(parts[k]) for k in sorted(parts)])


def eos_array(tokenizer) -> np.ndarray:
    """The end-of-sequence ids as ``generate`` and the GRPO step take them: (EOS_SLOTS,) int32, -1 = unused."""
    out = np.full(EOS_SLOTS, -1, np.int32)
    if tokenizer.eos_token_id is None:
        raise ValueError("the LLM tokenizer has no end-of-sequence token: stage 3 cannot tell where answers end")
    out[0] = int(tokenizer.eos_token_id)
    return out


@dataclasses.dataclass
class Rewarded:
    """One rollout batch's rewards, as global (all processes') arrays and this process's texts."""
    rewards: jax.Array          # (B * G,) float32 total reward (0 where not finite)
    parts: jax.Array            # (B * G, len(rl.rewards)) each component
    valid: jax.Array            # (B * G,) bool: a real clip whose group's rewards are all finite
    completions: list           # this process's rewards.Completion rows
    errors: list                # messages of rewards that raised (scored 0)
    nonfinite_groups: int       # this process's groups skipped for a non-finite reward


class Rollouts:
    """Samples and rewards stage-3 answers for one run (``cfg``: the stage-3 run config)."""

    def __init__(self, graphdef, cfg, mesh: Mesh, tokenizer, gold: dict, context: rewards_lib.RewardContext):
        self.graphdef, self.cfg, self.mesh, self.tokenizer = graphdef, cfg, mesh, tokenizer
        self.rl, self.gold, self.context = cfg.rl, gold, context
        self.rules = tuple((str(k), tuple(v) if isinstance(v, list) else v) for k, v in cfg.sharding_rules)
        self.eos = eos_array(tokenizer)
        self.rows = batch_input_sharding(mesh, self.rules)
        rewards_lib.check_names(self.rl.rewards)

    def sample(self, params, frozen, batch: dict, key, *, greedy: bool = False):
        """(tokens, behaviour log-probabilities), (B * G, T) global arrays sharded over the batch axes; ``greedy``:
        one argmax answer per clip (the held-out scoring)."""
        rl = self.rl
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        return sample_placed(self.graphdef, (params, frozen), inputs, max_new_tokens=rl.max_new_tokens,
                             temperature=0.0 if greedy else rl.temperature, top_p=rl.top_p, top_k=rl.top_k,
                             eos=(int(self.eos[0]),), rng=key, num_samples=1 if greedy else rl.group_size,
                             return_logprobs=True, mesh=self.mesh, rules=self.rules, replicate=False,
                             vocab_size=self.cfg.model.llm.vocab_size)

    def completions(self, names, tokens: np.ndarray, per_clip: int) -> list:
        """``rewards.Completion`` of this process's rows (``names``: its clips' record names, '' = padding)."""
        out, eos = [], int(self.eos[0])
        for i, row in enumerate(tokens):
            name = str(names[i // per_clip])
            ended = bool((row == eos).any())
            count = int(np.argmax(row == eos)) + 1 if ended else len(row)
            out.append(rewards_lib.Completion(name=video_of(name), text=decode_answer(self.tokenizer, row),
                                              gold=tuple(self.gold.get(name) or ()), question=question_of(name),
                                              tokens=count, ended=ended))
        return out

    def reward(self, names, tokens: jax.Array, per_clip: int) -> Rewarded:
        """Rewards of this process's rows of ``tokens`` (B * per_clip rows), assembled into global arrays."""
        rl = self.rl
        completions = self.completions(names, local_rows(tokens), per_clip)
        totals, parts, errors = rewards_lib.score(completions, rl.rewards, dict(rl.weights), self.context)
        totals = np.asarray(totals, np.float64)
        table = np.asarray([parts[n] for n in rl.rewards], np.float64).T.reshape(len(completions), len(rl.rewards))
        real = np.repeat(np.asarray([bool(str(n)) for n in names]), per_clip)
        finite = np.isfinite(totals) & np.isfinite(table).all(axis=1)
        group_ok = finite.reshape(-1, per_clip).all(axis=1)
        valid = real & np.repeat(group_ok, per_clip)
        nonfinite = int((~group_ok & real.reshape(-1, per_clip).all(axis=1)).sum())
        totals = np.where(finite, totals, 0.0).astype(np.float32)
        table = np.where(np.isfinite(table), table, 0.0).astype(np.float32)
        make = lambda x: jax.make_array_from_process_local_data(self.rows, x)  # noqa: E731
        return Rewarded(rewards=make(totals), parts=make(table), valid=make(valid), completions=completions,
                        errors=errors, nonfinite_groups=nonfinite)

