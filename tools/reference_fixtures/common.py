"""Helpers shared by the fixture makers: deterministic seeding and writing a case folder."""
from __future__ import annotations

import os
import shutil

import numpy as np
import torch


def seed(n: int) -> None:
    torch.manual_seed(n)
    np.random.seed(n)


def case_dir(out_root: str, name: str) -> str:
    """An empty folder ``out_root/name`` (recreated so stale files never linger)."""
    path = os.path.join(out_root, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def save_reference(path: str, **arrays) -> None:
    """Write ``reference.npz``: torch tensors become float32/int64 numpy arrays."""
    out = {}
    for k, v in arrays.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu()
            v = v.float().numpy() if v.is_floating_point() else v.numpy()
        out[k] = np.asarray(v)
    np.savez_compressed(os.path.join(path, 'reference.npz'), **out)
