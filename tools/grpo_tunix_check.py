"""Our GRPO objective against google-tunix's own functions, on the test case of tests/training/test_grpo.py.

    python tools/grpo_tunix_check.py [--tunix DIR]

tunix is not a dependency (it needs packages we do not use), so this reads its source from the wheel:
``pip download google-tunix==0.1.7 --no-deps`` into ~/.cache/microemo-jax/tunix (or --tunix DIR, an unpacked
wheel), takes ``compute_advantages``, ``compute_drgrpo_advantages``, ``aggregate_loss`` and
``compute_kl_divergence`` out of it with ``ast`` (nothing else of tunix is imported or run) and builds its GRPO
loss as ``grpo_loss_fn`` does (per-token ``max(-A r, -A clip(r))``, aggregated, plus beta times the aggregated
``low_var_kl``). Prints both values and the largest gradient difference for ``grpo`` and ``dr_grpo``.
"""
from __future__ import annotations

import argparse
import ast
import functools
import glob
import os
import subprocess
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from microemo_jax.training.grpo import completion_mask  # noqa: E402
from tests.training.test_grpo import BETA, EOS, EPS, LOGP, OLD, REF, REWARDS, TOKENS, G, ours  # noqa: E402

VERSION = '0.1.7'
WANTED = {'rl/common.py': ('compute_kl_divergence', 'aggregate_loss', '_check_get_norm'),
          'rl/algo_core.py': ('compute_advantages', 'compute_drgrpo_advantages')}


def tunix_source(folder: str | None) -> str:
    if folder:
        return folder
    cache = os.path.expanduser('~/.cache/microemo-jax/tunix')
    wheels = glob.glob(os.path.join(cache, f'google_tunix-{VERSION}-*.whl'))
    if not wheels:
        subprocess.run([sys.executable, '-m', 'pip', 'download', f'google-tunix=={VERSION}', '--no-deps', '-q',
                        '-d', cache], check=True)
        wheels = glob.glob(os.path.join(cache, f'google_tunix-{VERSION}-*.whl'))
    out = os.path.join(cache, 'src')
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(out)
    return out


def tunix_functions(src: str) -> dict:
    """The wanted functions, executed from tunix's source with jax/numpy in scope (registry decorators dropped)."""
    class Registry:
        def __getattr__(self, name):
            return lambda *a, **k: (lambda f: f)
    ns = {'jax': jax, 'jnp': jnp, 'np': np, 'Any': object, 'functools': functools, 'function_registry': Registry()}
    for path, names in WANTED.items():
        tree = ast.parse(open(os.path.join(src, 'tunix', path)).read())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in names:
                exec(compile(ast.Module([node], []), path, 'exec'), ns)
    return ns


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tunix', help='an unpacked google-tunix wheel (default: download it once)')
    ns = tunix_functions(tunix_source(parser.parse_args(argv).tunix))
    mask = np.asarray(completion_mask(jnp.asarray(TOKENS), jnp.array([EOS]))).astype(np.float32)
    for loss, advantages, aggregation in (('grpo', 'compute_advantages', 'sequence-mean-token-mean'),
                                          ('dr_grpo', 'compute_drgrpo_advantages', 'sequence-mean-token-scale')):
        def theirs(logp):
            adv = jnp.asarray(ns[advantages](np.asarray(REWARDS), G))[:, None]
            ratio = jnp.exp(jnp.clip(logp - OLD, -20, 20))
            per_token = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1 - EPS, 1 + EPS))
            kl = ns['compute_kl_divergence'](logp, jnp.asarray(REF), 'low_var_kl')
            return ns['aggregate_loss'](per_token, mask, aggregation) + BETA * ns['aggregate_loss'](kl, mask, aggregation)
        t_value, t_grad = jax.value_and_grad(theirs)(jnp.asarray(LOGP))
        o_value, o_grad = jax.value_and_grad(lambda p: ours(p, loss=loss)[0])(jnp.asarray(LOGP))
        print(f"{loss:8s} tunix {float(t_value):.7f}  ours {float(o_value):.7f}  "
              f"max |gradient difference| {float(jnp.abs(t_grad - o_grad).max()):.2e}")


if __name__ == '__main__':
    main()
