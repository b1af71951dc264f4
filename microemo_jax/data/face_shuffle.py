"""Faces shuffled between clips, for the ablation that asks whether the model reads the face it is shown.

``evaluate --shuffle-faces SEED`` gives every evaluated clip the face tubelets of another clip of the split
(``face_donors``: a random cycle, so no clip keeps its own faces and no two clips share a donor) while its
frames, audio, utterances and prompt stay its own. ``with_faces_of`` swaps them at the record level,
before decoding: the face crops, their mask, boxes and landmarks, and any other per-anchor field whose
name starts with ``face_`` or ``tubelet_`` (e.g. the times of apex tubelets), cut or zero-padded to the
clip's own number of anchors.
"""
from __future__ import annotations

import numpy as np

FACE_FIELDS = ('faces_jpeg', 'face_offsets', 'face_mask', 'face_boxes', 'face_landmarks', 'face_landmark_mask')
PER_ANCHOR_PREFIXES = ('face_', 'tubelet_')


def face_donors(n: int, seed: int) -> list[int]:
    """donor[i]: the clip whose faces clip i gets; a single random cycle through all n clips (n >= 2)."""
    if n < 2:
        raise ValueError(f"shuffling faces needs at least 2 clips, the split has {n}")
    order = np.random.default_rng(seed).permutation(n)
    donors = [0] * n
    for k in range(n):
        donors[int(order[k])] = int(order[(k + 1) % n])
    return donors


def _fit_rows(x: np.ndarray, t: int) -> np.ndarray:
    """``x`` cut or zero-padded along its first axis to ``t`` rows."""
    x = np.asarray(x)
    if len(x) >= t:
        return x[:t]
    return np.concatenate([x, np.zeros((t - len(x),) + x.shape[1:], x.dtype)])


def with_faces_of(rec: dict, donor: dict) -> dict:
    """``rec`` with ``donor``'s face tubelets (see the module doc); neither input is changed."""
    t, t_donor = len(rec['timestamps']), len(donor['timestamps'])
    k, k_donor = np.shape(rec['face_mask'])[1], np.shape(donor['face_mask'])[1]
    if k != k_donor:
        raise ValueError(f"cannot give clip {rec.get('name')!r} the faces of {donor.get('name')!r}: {k} and "
                         f"{k_donor} crops per anchor (the clips were prepared with different configs)")
    out = dict(rec)
    mask = _fit_rows(np.asarray(donor['face_mask'], bool), t)
    offsets = np.asarray(donor['face_offsets'])[:int(mask.sum()) + 1]   # crops are packed row-major
    out['face_mask'], out['face_offsets'] = mask, offsets
    out['faces_jpeg'] = np.asarray(donor['faces_jpeg'])[:int(offsets[-1])]
    for key, value in donor.items():
        if key in ('face_mask', 'face_offsets', 'faces_jpeg') or not key.startswith(PER_ANCHOR_PREFIXES):
            continue
        if np.ndim(value) >= 1 and len(value) == t_donor:
            out[key] = _fit_rows(value, t)
    return out
