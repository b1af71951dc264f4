"""Training metrics: a progress line, TensorBoard events (tensorboardX, no TensorFlow) and metrics.jsonl.

``logger.log(step, metrics)`` is called after every step with the step's metrics as device arrays; it
only keeps references (no device sync) except every ``log_every`` steps, when it fetches the buffered
metrics at once and reports over the interval:

* ``loss``: token-weighted mean of the interval's steps (non-finite steps excluded; ``nonfinite_steps``
  counts them); ``grad_norm``, ``learning_rate``: of the last step;
* ``steps_per_s`` and ``tokens_per_s`` (attended prompt tokens of the global batch) from wall time
  between reports; timing starts at the first ``log`` call, so it excludes the compile. A report that
  covers only that first step has no rate yet: the line says so and metrics.jsonl holds null;
* ``mfu`` (model FLOPs: forward + backward, no recompute) and ``hfu`` (hardware FLOPs: remat's
  recomputation included) when the step's FLOPs and the device peak are known (``flops.py``); else
  'n/a' and absent from metrics.jsonl;
* ``eta``: remaining steps at the current rate;
* ``gate/NAME``: tanh of each global-local gate after the last step (``step.gate_values``), when the
  step reports them: whether the face branch is let in.
* each key of ``averaged`` (stages 1-2 with the answer-words head: answer_words; stage 3: reward_mean,
  reward_std, each reward_<name>, kl, clip_fraction, response_length, entropy, ...): its mean over the interval's steps where it is finite, as a top-level key of
  the report (and a TensorBoard scalar), and on the progress line.

``workdir/metrics.jsonl`` gets one JSON object per report (``step``, ``loss``, ...) and one per
validation (``step``, ``val_loss``, ...). Only process 0 writes files; every process prints nothing
but process 0 either, to keep multi-host logs readable.

A run resumed at step N (``resume_step=N``) first cuts ``metrics.jsonl`` back to the records of steps <= N
(those after N were logged by the interrupted run after its last checkpoint and are about to be redone), so
the file holds one curve, each step once; TensorBoard hides the events of steps > N the same way
(tensorboardX's ``purge_step``: the new event file starts with a marker that makes TensorBoard drop the
earlier files' events from step N + 1 on; the old files are not rewritten).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

import jax
import numpy as np
from tensorboardX import SummaryWriter

from microemo_jax.training.flops import estimate_mfu


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return '?'
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def truncate_jsonl(path: str, step: int) -> None:
    """Keep only the records of steps <= ``step`` in a metrics.jsonl (rewritten atomically; a torn last line,
    from a process killed mid-write, goes too)."""
    if not os.path.isfile(path):
        return
    kept, dropped = [], 0
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
                keep = isinstance(record, dict) and int(record.get('step', 0)) <= step and line.endswith('\n')
            except (ValueError, TypeError):
                keep = False
            if keep:
                kept.append(line)
            else:
                dropped += 1
    if dropped:
        tmp = path + '.tmp'
        with open(tmp, 'w') as f:
            f.writelines(kept)
        os.replace(tmp, path)


class MetricsLogger:

    def __init__(self, workdir: str, total_steps: int, *, log_every: int = 1,
                 model_flops_per_step: float | None = None, hardware_flops_per_step: float | None = None,
                 peak_flops_per_device: float | None = None, num_devices: int | None = None, stream=None,
                 resume_step: int | None = None, averaged: tuple[str, ...] = ()):
        """FLOPs per step are global (all devices): ``flops.train_step_flops``; hardware defaults to model.
        ``resume_step``: the step the run restored (0: a fresh run; None: append, cut nothing), see the module
        docstring. ``averaged``: keys reported as their interval mean (stage 3's rewards, KL, ...)."""
        self.averaged = tuple(averaged)
        self.total_steps, self.log_every = total_steps, max(1, log_every)
        self.model_flops = model_flops_per_step
        self.hardware_flops = hardware_flops_per_step if hardware_flops_per_step is not None else model_flops_per_step
        self.peak = peak_flops_per_device
        self.num_devices = num_devices or jax.device_count()
        self.stream = stream or sys.stdout
        self.is_main = jax.process_index() == 0
        self._pending: list[tuple[int, dict]] = []
        self._t0: float | None = None
        self._last_step: int | None = None
        self._writer = None
        self._jsonl = None
        if self.is_main:
            os.makedirs(workdir, exist_ok=True)
            purge = None
            if resume_step is not None:
                truncate_jsonl(os.path.join(workdir, 'metrics.jsonl'), resume_step)
                purge = resume_step + 1
            self._writer = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=purge)
            self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')

    def should_report(self, step: int) -> bool:
        return step % self.log_every == 0 or step == self.total_steps

    def log(self, step: int, metrics: dict) -> dict | None:
        """Record step ``step``'s metrics (after the update that made it); reports on log steps."""
        now = time.perf_counter()
        if self._t0 is None:  # rates are measured from here: the first step (with its compile) is not timed
            self._t0, self._last_step = now, step
        self._pending.append((step, metrics))
        if not self.should_report(step):
            return None
        fetched = jax.device_get([m for _, m in self._pending])
        n_steps = step - self._last_step
        elapsed = now - self._t0
        self._t0, self._last_step = now, step
        self._pending.clear()
        return self._report(step, fetched, n_steps, elapsed)

    def _report(self, step: int, fetched: list[dict], n_steps: int, elapsed: float) -> dict:
        finite = [m for m in fetched if bool(m.get('finite', True))]
        weights = np.array([float(m.get('tokens', 1.0)) for m in finite])
        losses = np.array([float(m['loss']) for m in finite])
        loss = float((losses * weights).sum() / max(weights.sum(), 1e-9)) if finite else float('nan')
        last = fetched[-1]
        steps_per_s = n_steps / elapsed if elapsed > 0 and n_steps > 0 else float('nan')
        tokens = sum(float(m.get('input_tokens', 0.0)) for m in fetched[-n_steps:]) if n_steps > 0 else 0.0
        record = dict(step=step, loss=loss, grad_norm=float(last.get('grad_norm', float('nan'))),
                      learning_rate=float(last.get('learning_rate', float('nan'))),
                      steps_per_s=steps_per_s, tokens_per_s=tokens / elapsed if steps_per_s > 0 else float('nan'),
                      nonfinite_steps=len(fetched) - len(finite))
        for key in self.averaged:
            values = [float(m[key]) for m in fetched if key in m and math.isfinite(float(m[key]))]
            record[key] = sum(values) / len(values) if values else float('nan')
        gates = {k: float(v) for k, v in last.items() if k.startswith('gate/')}
        record.update(gates)
        step_time = 1.0 / steps_per_s if steps_per_s > 0 else 0.0
        mfu = estimate_mfu(self.model_flops, step_time, self.num_devices, self.peak)
        hfu = estimate_mfu(self.hardware_flops, step_time, self.num_devices, self.peak)
        if mfu is not None:
            record['mfu'] = mfu
        if hfu is not None:
            record['hfu'] = hfu
        if steps_per_s > 0:
            eta = (self.total_steps - step) / steps_per_s
            pct = lambda x: f'{100 * x:.1f}%' if x is not None else 'n/a'  # noqa: E731
            speed = (f"{steps_per_s:.2f} steps/s  {record['tokens_per_s']:.0f} tok/s  "
                     f"MFU {pct(mfu)}  HFU {pct(hfu)}  ETA {_fmt_duration(eta)}")
        else:  # only the first step so far: it started timing, so there is no rate to show yet
            speed = 'speed from the next report on (timing starts after the first step)'
        extra = ''.join(f"  {k} {record[k]:.4g}" for k in self.averaged)
        self._print(f"step {step}/{self.total_steps}  loss {loss:.4f}{extra}  lr {record['learning_rate']:.3g}  {speed}"
                    + (f"  gates {' '.join(f'{v:.3f}' for v in gates.values())}" if gates else '')
                    + (f"  ({record['nonfinite_steps']} non-finite steps skipped)" if record['nonfinite_steps']
                       else ''))
        self._write(step, record)
        return record

    def log_eval(self, step: int, metrics: dict) -> None:
        """Validation results, e.g. ``step.validation_loss`` output ({'val_loss', ...})."""
        record = dict(step=step, **{k: float(v) for k, v in jax.device_get(metrics).items()})
        self._print(f"step {step}/{self.total_steps}  " + "  ".join(
            f"{k} {v:.4f}" for k, v in record.items() if k != 'step'))
        self._write(step, record)

    def _print(self, line: str) -> None:
        if self.is_main:
            print(line, file=self.stream, flush=True)

    def _write(self, step: int, record: dict) -> None:
        if not self.is_main:
            return
        for key, value in record.items():
            if key != 'step' and isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(key, value, step)
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in record.items()}
        self._jsonl.write(json.dumps(clean) + '\n')
        self._jsonl.flush()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
