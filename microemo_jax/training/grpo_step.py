"""Stage 3's jitted programs over (state, frozen, batch, rollout): the answers' log-probabilities and the GRPO update.

``completion_logprobs`` scores sampled answers the way they were sampled: each clip's prompt embeddings are
computed once (encoders, Q-Formers, projections) and repeated for its G answers, the answer tokens' embeddings
are appended, and one LLM pass reads the logits that predicted each answer token (the first from the prompt's
last attended slot). Positions count attended tokens only, so a right-padded prompt plus its answer is the
sequence the KV-cached decode saw.

``make_grpo_step`` returns ``step(state, frozen, batch, rollout) -> (state, metrics)``, one jit with explicit
shardings and the state donated, as the supervised step (``step.py``):

* the rollout holds the answers (``tokens``), their behaviour log-probabilities (``old_logp``, from the
  sampler), the reference's (``ref_logp``), the total reward and each component per answer, and which rows
  count (``valid``: not a padding clip, no non-finite reward in the group);
* advantages, the completion mask and the row count are computed once, then ``rl.mu`` optimiser updates run
  on the same rollout (``lax.scan``), each over ``optim.grad_accum_steps`` micro-batches of whole groups whose
  per-row losses are summed and divided by the whole batch's row count, so the update does not depend on the split;
* no dropout: the ratio compares the same deterministic function before and after an update;
* an update whose loss or gradient norm is not finite is skipped (parameters and optimiser state kept) and
  ``finite`` is False; ``step`` advances once per rollout batch (the data position).

Metrics (replicated scalars): loss, grad_norm, learning_rate, kl, clip_fraction, ratio_mean, entropy (token
means over the answers), response_length (tokens per counted answer), reward_mean, reward_std and
reward_<name> per component (over counted answers), valid_groups, tokens, input_tokens, finite.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from microemo_jax.sharding import activation_sharding
from microemo_jax.training.grpo import completion_mask, group_advantages, row_losses, token_logprobs, token_means
from microemo_jax.training.optimizer import make_optimizer, make_schedule
from microemo_jax.training.step import batch_input_sharding, schedule_count


def completion_logprobs(model, batch: dict, tokens, group_size: int, temperature: float):
    """(log-probabilities, entropies), both (B * G, T) float32, of answer ``tokens`` (B * G, T) to ``batch``'s B clips."""
    embeds, mask = model.prompt_embeddings(batch)                          # encoders once per clip
    embeds, mask = jnp.repeat(embeds, group_size, axis=0), jnp.repeat(mask, group_size, axis=0)
    n, s = mask.shape
    t = tokens.shape[1]
    x = jnp.concatenate([embeds, model.llm.embed(tokens).astype(embeds.dtype)], axis=1)
    attend = jnp.concatenate([mask, jnp.ones((n, t), bool)], axis=1)
    last = s - 1 - jnp.argmax(mask[:, ::-1], axis=1)                      # each prompt's last attended slot
    at = jnp.concatenate([last[:, None], jnp.broadcast_to(s + jnp.arange(t - 1), (n, t - 1))], axis=1)
    logits = model.llm(inputs_embeds=x, attention_mask=attend, logits_at=at)
    return token_logprobs(logits, tokens, temperature)


def _shardings(mesh: Mesh, rules):
    return batch_input_sharding(mesh, rules), NamedSharding(mesh, P())


def make_logprob_fn(graphdef: nnx.GraphDef, cfg, mesh: Mesh, params_sharding, frozen_sharding):
    """A jit of ``(params, frozen, batch, tokens) -> (B * G, T) log-probabilities`` (the reference's, no gradient)."""
    rules, rl = cfg.sharding_rules, cfg.rl
    rows, _ = _shardings(mesh, rules)

    def logprobs(params, frozen, batch, tokens):
        with activation_sharding(mesh, rules):
            logp, _ = completion_logprobs(nnx.merge(graphdef, params, frozen), batch, tokens, rl.group_size,
                                          rl.temperature)
        return logp

    return jax.jit(logprobs, in_shardings=(params_sharding, frozen_sharding, rows, rows), out_shardings=rows)


def _split(x, steps: int, lead: int):
    """Rows of ``lead`` per clip ((B, ...) batch arrays: 1; (B * G, ...) rollout arrays: G) -> (steps, ...)
    micro-batches of whole clips: micro-batch j holds clips j, j + steps, ... (local to each device)."""
    b = x.shape[0] // lead
    y = x.reshape((b // steps, steps, lead) + x.shape[1:])
    return jnp.moveaxis(y, 1, 0).reshape((steps, (b // steps) * lead) + x.shape[1:])


def make_grpo_step(graphdef: nnx.GraphDef, cfg, mesh: Mesh, state_sharding, frozen_sharding, *, donate: bool = True):
    """A jit of ``(state, frozen, batch, rollout) -> (state, metrics)`` (see the module docstring).

    ``cfg`` is the stage-3 run config (``rl_config.run_config``); ``rollout`` keys: tokens, old_logp, ref_logp
    (B * G, T), rewards, valid (B * G,), parts (B * G, number of rl.rewards); ``eos`` (8,) int32, -1 = unused.
    """
    rl, rules = cfg.rl, cfg.sharding_rules
    tx, schedule = make_optimizer(cfg), make_schedule(cfg)
    g, steps = rl.group_size, cfg.optim.grad_accum_steps
    names = tuple(rl.rewards)

    def loss_sum(params, frozen, batch, ro, adv, mask):
        model = nnx.merge(graphdef, params, frozen)
        logp, entropy = completion_logprobs(model, batch, ro['tokens'], g, rl.temperature)
        rows, sums = row_losses(logp, ro['old_logp'], ro['ref_logp'], adv, mask, epsilon=rl.epsilon, beta=rl.beta,
                                loss=rl.loss, max_new_tokens=rl.max_new_tokens)
        sums['entropy'] = (entropy * mask).sum()
        return rows.sum(), sums

    grad_fn = jax.value_and_grad(loss_sum, has_aux=True)

    def grads_of(params, frozen, batch, ro, adv, mask):
        if steps == 1:
            return grad_fn(params, frozen, batch, ro, adv, mask)
        xs = (jax.tree.map(lambda x: _split(x, steps, 1), batch),
              *jax.tree.map(lambda x: _split(x, steps, g), (ro, adv, mask)))

        def body(acc, x):
            (l, s), gr = grad_fn(params, frozen, *x)
            return jax.tree.map(jnp.add, acc, ((l, s), gr)), None

        zero = jax.eval_shape(lambda: grad_fn(params, frozen, *jax.tree.map(lambda x: x[0], xs)))
        acc, _ = jax.lax.scan(body, jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), zero), xs)
        return acc

    def grpo_step(state, frozen, batch, rollout):
        key = jax.random.wrap_key_data(state.rng)
        valid = rollout['valid']
        mask = completion_mask(rollout['tokens'], rollout['eos'], valid)
        adv = group_advantages(rollout['rewards'], valid, g, normalise_std=rl.loss == 'grpo')
        n_rows = jnp.maximum((mask.sum(axis=1) > 0).sum(), 1).astype(jnp.float32)
        ro = {k: rollout[k] for k in ('tokens', 'old_logp', 'ref_logp')}

        def update(carry, _):
            params, opt_state = carry
            with activation_sharding(mesh, rules):
                (total, sums), grads = grads_of(params, frozen, batch, ro, adv, mask)
            loss = total / n_rows
            grads = jax.tree.map(lambda x: x / n_rows.astype(x.dtype), grads)
            grad_norm = optax.tree.norm(grads)
            updates, new_opt = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731  skip a non-finite update
            out = dict(loss=loss, grad_norm=grad_norm, finite=finite,
                       learning_rate=schedule(schedule_count(opt_state, state.step)), **token_means(sums),
                       entropy=sums['entropy'] / jnp.maximum(sums['tokens'], 1.0))
            return (jax.tree.map(keep, new_params, params), jax.tree.map(keep, new_opt, opt_state)), out

        (params, opt_state), per = jax.lax.scan(update, (state.params, state.opt_state), None, length=rl.mu)
        metrics = {k: v.all() if k == 'finite' else v.mean() for k, v in per.items()}
        metrics.update(_rollout_metrics(rollout, valid, mask, names, g))
        metrics['input_tokens'] = batch['attention_mask'].sum(dtype=jnp.float32)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  rng=jax.random.key_data(jax.random.split(key)[0]))
        return new_state, metrics

    rows, replicated = _shardings(mesh, rules)
    rollout_sharding = dict(tokens=rows, old_logp=rows, ref_logp=rows, rewards=rows, valid=rows, parts=rows,
                            eos=replicated)
    return jax.jit(grpo_step, in_shardings=(state_sharding, frozen_sharding, rows, rollout_sharding),
                   out_shardings=(state_sharding, replicated), donate_argnums=(0,) if donate else ())


def _rollout_metrics(rollout, valid, mask, names, g) -> dict:
    w = valid.astype(jnp.float32)
    n = jnp.maximum(w.sum(), 1.0)
    r = jnp.where(valid, rollout['rewards'], 0.0)
    mean = r.sum() / n
    out = dict(reward_mean=mean, reward_std=jnp.sqrt((w * (r - mean) ** 2).sum() / n),
               response_length=mask.sum(dtype=jnp.float32) / n, valid_groups=w.sum() / g,
               tokens=mask.sum(dtype=jnp.float32))
    parts = jnp.where(valid[:, None], rollout['parts'], 0.0)
    for i, name in enumerate(names):
        out[f'reward_{name}'] = parts[:, i].sum() / n
    return out

