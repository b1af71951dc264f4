"""The jitted train and eval steps: pure functions of (state, frozen, batch) with explicit shardings.

``train_step(state, frozen, batch) -> (state, metrics)``:

* the batch's leading dimension is split into ``optim.grad_accum_steps`` micro-batches, looped over with
  ``lax.scan`` inside the step; per micro-batch the *summed* answer-token cross-entropy and its gradient
  are accumulated (float32) and divided by the total number of answer tokens at the end, so the update
  equals the one of the whole batch at once (token-weighted mean), whatever the split;
* compute runs in ``model.dtype`` (bf16 at paper scale) while the trained weights, gradients and
  optimiser state stay float32 (the model casts per ``dtype``/``param_dtype``);
* the dropout key of each step is split from ``state.rng``; the state is donated (updated in place);
* a step whose loss or gradient norm is not finite is *skipped*: parameters and optimiser state come
  back unchanged, ``step`` still advances (so data and step numbers stay aligned) and
  ``metrics['finite']`` is False. The loop decides what to do (log, stop, never checkpoint it).

With video centring (``model.video_centring``) the step also keeps the video tokens' running mean
(``models.video_centring.RunningMean``): the first step of a run sets it to that batch's mean, each later one moves it
``1 - momentum`` of the way to the batch's mean (over the tokens of valid slots, all micro-batches together;
a slot no clip of the batch has keeps its value). The forward pass reads the mean as it was before the step,
so a clip's tokens never depend on the other clips of its batch. A skipped step leaves it too.

With the answer-words head (``model.answer_words.weight`` > 0) the objective adds that weight times the
answer-words loss (``training/losses.py``: the answer's words predicted from the pooled video tokens), per answer
token as the cross-entropy is, so the objective's mean is ``loss + weight * answer_words``. The eval step and the
logged ``loss`` stay the answer's cross-entropy alone.

Metrics (replicated scalars): loss, answer_words (with the head), grad_norm (before clipping), learning_rate
(the schedule at optax's update count, which skipped steps do not advance: the rate this update used), tokens
(answer tokens), input_tokens (attended prompt tokens), finite, and ``gate/NAME``: tanh of each gate after the
update (``gate_values``: how much the global-local attention lets the face branch in).

Batches arrive as global arrays sharded over the 'batch' rule (``device_batch``); non-numeric entries
such as ``names`` never enter the step.
"""
from __future__ import annotations

import itertools
import math
from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from microemo_jax.models.answer_words import answer_words_weight
from microemo_jax.models.video_centring import RunningMean, video_centring
from microemo_jax.sharding import activation_sharding, batch_sharding, split_batch
from microemo_jax.training.losses import answer_words_loss, chunked_next_token_loss, next_token_loss
from microemo_jax.training.optimizer import is_gate, make_optimizer, make_schedule


def batch_input_sharding(mesh: Mesh, rules) -> NamedSharding:
    """Sharding of every batch array: leading (batch) dimension over the 'batch' rule, rest replicated."""
    return batch_sharding(mesh, rules, 1)


def batch_shards(mesh: Mesh, rules) -> int:
    """Number of ways the batch dimension is split across the mesh."""
    spec = batch_input_sharding(mesh, rules).spec
    axes = spec[0] if len(spec) else None
    axes = () if axes is None else ((axes,) if isinstance(axes, str) else tuple(axes))
    return math.prod(mesh.shape[a] for a in axes)


def device_batch(batch: dict, mesh: Mesh, rules) -> dict[str, jax.Array]:
    """Host batch (this process's rows) -> global arrays sharded over the mesh; drops string/object entries.

    On several hosts each process passes its own slice of the global batch (the Grain pipeline shards by
    process); ``jax.make_array_from_process_local_data`` assembles them without any host holding it all.
    """
    sharding = batch_input_sharding(mesh, rules)
    out = {}
    for name, value in batch.items():
        if isinstance(value, jax.Array):
            out[name] = value if value.sharding == sharding else jax.device_put(value, sharding)
            continue
        value = np.asarray(value)
        if value.dtype.kind in 'USO':  # clip names and other host-only metadata
            continue
        out[name] = jax.make_array_from_process_local_data(sharding, value)
    return out


def _loss_sum(graphdef, params, frozen, batch, dropout_rng, loss_chunk: int = 0, answer_words: float = 0.0):
    """(objective summed over answer tokens, (number of answer tokens, statistics)) for one (micro-)batch.

    The objective is the answer tokens' NLL, plus ``answer_words`` times the answer-words loss per answer token
    when the model has the head; the statistics then hold both sums (``nll_sum``, ``answer_words_sum``). They also
    hold the video tokens' sums with video centring (``MicroEmo.encode``), and are {} with neither.

    ``loss_chunk`` (config ``train.loss_chunk``) > 0: the LM head is fused with the loss and walked in chunks of
    that many rows, so the (B, S, vocab) float32 logits never exist (``training/losses.py``); same value."""
    model = nnx.merge(graphdef, params, frozen)
    stats = {}
    if loss_chunk:
        hidden = model(batch, dropout_rng=dropout_rng, hidden_only=True, stats=stats)
        mean, count = chunked_next_token_loss(hidden, model.llm.head_kernel(), batch['input_ids'],
                                              batch['loss_mask'], chunk=loss_chunk)
    else:
        logits = model(batch, dropout_rng=dropout_rng, stats=stats)
        mean, count = next_token_loss(logits, batch['input_ids'], batch['loss_mask'])
    objective = mean * count
    word_logits = stats.pop('answer_word_logits', None)
    if answer_words and word_logits is not None:
        words, _ = answer_words_loss(word_logits, batch['input_ids'], batch['loss_mask'])   # same count
        stats.update(nll_sum=objective, answer_words_sum=words * count)
        objective = objective + answer_words * words * count
    return objective, (count, jax.tree.map(jax.lax.stop_gradient, stats))


def _micro_batches(batch: dict, steps: int, mesh: Mesh, rules) -> dict:
    """(B, ...) -> (steps, B/steps, ...); micro-batch j holds rows j, j+steps, ... (local to each device)."""
    shards = batch_shards(mesh, rules)
    spec = batch_input_sharding(mesh, rules).spec
    out = {}
    for name, x in batch.items():
        b = x.shape[0]
        split_batch(b, shards=shards, accum_steps=steps, mesh=mesh)
        y = jnp.moveaxis(x.reshape((b // steps, steps) + x.shape[1:]), 1, 0)
        out[name] = jax.lax.with_sharding_constraint(y, NamedSharding(mesh, P(None, *spec)))
    return out


def _grads(graphdef, params, frozen, batch, dropout_rng, steps, mesh, rules, loss_chunk=0, answer_words=0.0):
    """Summed objective, token count, float32 gradient of the summed objective and the summed statistics
    (``_loss_sum``) over ``steps`` micro-batches."""
    grad_fn = jax.value_and_grad(lambda p, b, r: _loss_sum(graphdef, p, frozen, b, r, loss_chunk, answer_words),
                                 has_aux=True)
    if steps == 1:
        (loss_sum, (count, stats)), grads = grad_fn(params, batch, dropout_rng)
        return loss_sum, count, grads, stats
    micro = _micro_batches(batch, steps, mesh, rules)
    keys = jax.random.split(dropout_rng, steps)

    def body(carry, xs):
        g_acc, l_acc, c_acc = carry
        (l, (c, s)), g = grad_fn(params, *xs)
        g_acc = jax.tree.map(lambda a, b: a + b.astype(jnp.float32), g_acc, g)
        return (g_acc, l_acc + l, c_acc + c), s

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)
    (grads, loss_sum, count), stats = jax.lax.scan(body, (zeros, jnp.float32(0), jnp.float32(0)), (micro, keys))
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    return loss_sum, count, grads, jax.tree.map(lambda x: x.sum(axis=0), stats)


def update_running_mean(params, stats, first, momentum: float):
    """``params`` with the video tokens' running mean (``RunningMean``) moved towards the batch's: set to it when
    ``first``, else ``momentum * old + (1 - momentum) * batch``; slots no clip of the batch had keep their value."""
    if 'video_count' not in stats:
        return params

    def update(var):
        if not isinstance(var, RunningMean):
            return var
        old = var.get_value()
        count = stats['video_count']
        batch_mean = stats['video_sum'] / jnp.maximum(count, 1.0)
        new = jnp.where(first, batch_mean, momentum * old + (1.0 - momentum) * batch_mean)
        return var.replace(jnp.where(count > 0, new, old).astype(old.dtype))

    return jax.tree.map(update, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def gate_values(params) -> dict[str, jax.Array]:
    """{'gate/global_local.attn': tanh(gate), ...}: every tanh gate of ``params`` (an nnx.State), one key per
    gate named by its path (a gate of several elements: their mean), as the model applies it."""
    out = {}
    for path, var in nnx.to_flat_state(params):
        if is_gate(path):
            name = '.'.join([str(p) for p in path[:-1]] + [str(path[-1])[:-len('_gate')]])
            out[f'gate/{name}'] = jnp.tanh(var.get_value().astype(jnp.float32)).mean()
    return out


def schedule_count(opt_state, default):
    """The update count optax's learning-rate schedule reads (``ScaleByScheduleState.count``).

    It advances only on applied updates (a skipped non-finite step keeps the old optimiser state),
    unlike ``TrainState.step``; the logged learning rate is the schedule at this count, i.e. the rate
    the step's update used (or would have used, if it was skipped).
    """
    counts = [s.count for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByScheduleState))
              if isinstance(s, optax.ScaleByScheduleState)]
    return counts[0] if counts else default


def make_train_step(graphdef: nnx.GraphDef, cfg, mesh: Mesh, state_sharding, frozen_sharding, *,
                    donate: bool = True):
    """A jax.jit of ``(state, frozen, batch) -> (state, metrics)``; the state is donated unless donate=False."""
    tx = make_optimizer(cfg)
    schedule = make_schedule(cfg)
    steps = cfg.optim.grad_accum_steps
    rules = cfg.sharding_rules
    loss_chunk = cfg.train.get('loss_chunk', 0)
    _, momentum = video_centring(cfg.model)
    answer_words = answer_words_weight(cfg.model)

    def train_step(state, frozen, batch):
        key = jax.random.wrap_key_data(state.rng)
        key, dropout_rng = jax.random.split(key)
        with activation_sharding(mesh, rules):
            loss_sum, count, grads, stats = _grads(graphdef, state.params, frozen, batch, dropout_rng, steps, mesh,
                                                   rules, loss_chunk, answer_words)
        denom = jnp.maximum(count, 1.0)
        loss = stats.get('nll_sum', loss_sum) / denom
        extra = {'answer_words': stats['answer_words_sum'] / denom} if 'answer_words_sum' in stats else {}
        grads = jax.tree.map(lambda g: g / denom.astype(g.dtype), grads)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = update_running_mean(optax.apply_updates(state.params, updates), stats, state.step == 0, momentum)
        finite = jnp.isfinite(loss_sum) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731  skip a non-finite update
        new_state = state.replace(step=state.step + 1, params=jax.tree.map(keep, params, state.params),
                                  opt_state=jax.tree.map(keep, opt_state, state.opt_state),
                                  rng=jax.random.key_data(key))
        metrics = dict(loss=loss, grad_norm=grad_norm, learning_rate=schedule(schedule_count(state.opt_state, state.step)),
                       tokens=count,
                       input_tokens=batch['attention_mask'].sum(dtype=jnp.float32), finite=finite,
                       **extra, **gate_values(new_state.params))
        return new_state, metrics

    replicated = NamedSharding(mesh, P())
    return jax.jit(train_step, in_shardings=(state_sharding, frozen_sharding, batch_input_sharding(mesh, rules)),
                   out_shardings=(state_sharding, replicated), donate_argnums=(0,) if donate else ())


def make_eval_step(graphdef: nnx.GraphDef, cfg, mesh: Mesh, state_sharding, frozen_sharding):
    """A jax.jit of ``(state, frozen, batch) -> {loss, loss_sum, tokens}`` without dropout (nothing donated)."""
    rules = cfg.sharding_rules
    loss_chunk = cfg.train.get('loss_chunk', 0)

    def eval_step(state, frozen, batch):
        with activation_sharding(mesh, rules):
            loss_sum, (count, _) = _loss_sum(graphdef, state.params, frozen, batch, None, loss_chunk)
        return dict(loss=loss_sum / jnp.maximum(count, 1.0), loss_sum=loss_sum, tokens=count)

    return jax.jit(eval_step, in_shardings=(state_sharding, frozen_sharding, batch_input_sharding(mesh, rules)),
                   out_shardings=NamedSharding(mesh, P()))


def validation_loss(eval_step, state, frozen, batches: Iterable[dict], mesh: Mesh, rules) -> dict:
    """Token-weighted validation loss over host ``batches``: {'val_loss', 'val_tokens', 'val_batches'}."""
    total, tokens, n = 0.0, 0.0, 0
    previous = None
    for b in itertools.chain(batches, [None]):
        out = eval_step(state, frozen, device_batch(b, mesh, rules)) if b is not None else None
        if previous is not None:  # fetch one behind: the next batch is in flight, at most two on device
            total += float(previous['loss_sum'])
            tokens += float(previous['tokens'])
            n += 1
        previous = out
    return dict(val_loss=total / max(tokens, 1.0), val_tokens=tokens, val_batches=n)
