"""Initialising the parts no checkpoint provides, at small widths (``model.kernel_init='fan_in'``).

The default init of every weight matrix is BERT's N(0, 0.02) (``layers.default_kernel_init``), right for the
paper model, whose towers and Q-Formers come from checkpoints at widths of 768 and more. The demo trains
every part from scratch at a width of 64, where that init shrinks each Dense layer's input ~8x and a
cross-attention (value, then output projection) ~60x.
"""
from __future__ import annotations

import jax
import numpy as np
from flax import nnx

# The parts of the model that no checkpoint provides: the ones ``model.kernel_init='fan_in'`` initialises.
FROM_SCRATCH = (('frame_encoder', 'qformer'), ('video_qformer',), ('audio', 'slots'), ('micro_expression',),
                ('face_vit',), ('global_local',), ('local_proj',))


def fan_in_init(model: nnx.Module, rngs: nnx.Rngs, parts=FROM_SCRATCH) -> None:
    """Redraw every weight matrix (``kernel``) under ``parts`` from N(0, 1/fan_in) (LeCun normal).

    Why: the default init is BERT's N(0, 0.02), meant for widths of 768 and more and for weights that come from
    a checkpoint. At the demo's width of 64 a Dense layer then shrinks its input ~8x, and a cross-attention
    (value, then output projection) ~60x: the Q-Formers' outputs at init vary across clips by 0.2 % of their
    size (their learned queries are all that is left), training never finds the inputs, and the model learns
    the answers' templates from the text alone (measured: benchmarks/README.md, "Why the demo model ignored
    its inputs"). With N(0, 1/fan_in) a layer keeps its input's scale and the variation is 14-27 %."""
    for path, var in nnx.iter_graph(model):
        names = tuple(str(p) for p in path)
        if not (isinstance(var, nnx.Param) and names and names[-1] == 'kernel'
                and any(names[:len(part)] == part for part in parts)):
            continue
        value = var.get_value()
        axes = tuple(var.get_metadata().get('axes') or ())
        shape = value.shape[1:] if axes[:1] == ('layers',) else value.shape   # scanned: per layer
        fan_in = int(np.prod(shape[:-1]))
        var.set_value(jax.random.normal(rngs.params(), value.shape, value.dtype) / np.sqrt(fan_in))
