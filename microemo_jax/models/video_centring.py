"""Video centring (``model.video_centring``): the LLM gets its video tokens minus their running mean over training
clips, times a gain, and optionally plus a learned marker. The config's reading and the running mean's variable
type live here; ``MicroEmo.encode`` applies them and the train step (``training/step.py``) keeps the mean."""
from __future__ import annotations

from flax import nnx


class RunningMean(nnx.Param):
    """The video tokens' running mean over training clips (``model.video_centring``): saved with the parameters,
    never differentiated (the model reads it through ``stop_gradient``), set by the train step from each batch
    (``training/step.py``: first batch, then an exponential moving average), as BatchNorm keeps its statistics.

    Why: every clip's video tokens share one large component, the learned queries' output. In the trained demo
    models the clips' tokens differ by about 6 % of their size; a from-scratch LLM then reads none of it, even
    where a linear probe names the face's expression from them (docs/ablations.md). Removing the shared part
    leaves the LLM the part that differs between clips. A running mean (not the batch's own) keeps an answer
    independent of the other clips of its batch, in training as in inference."""


def video_centring(m) -> tuple[float, float]:
    """(gain, momentum) of ``model.video_centring``: the centred video tokens' gain (0: no centring, as in an older
    config without the section) and the share of the running mean each training batch keeps."""
    vc = m.get('video_centring')
    return (float(vc.gain), float(vc.momentum)) if vc is not None else (0.0, 0.99)


def video_marker(m) -> bool:
    """Whether the centred video tokens get a learned marker (``model.video_centring.marker``; centring only).

    Why: centring removes what every clip's video tokens share, and with it what tells the LLM's attention, from
    their content, that a position holds video. The marker (one vector per video token, from 0) lets the LLM
    learn that part back at the size its attention needs (docs/ablations.md)."""
    vc = m.get('video_centring')
    return vc is not None and bool(vc.get('marker', False)) and video_centring(m)[0] > 0
