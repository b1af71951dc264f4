"""A tiny emotion-wheel mapping, written the way MER ships ``wheel_mapping.npz`` (hand-made, not MER's data).

Two wheels. 'worried' has the form candidates worry + anxiety + fear: sorted, 'anxiety' comes first,
which only wheel2 has, so wheel1 falls through to 'fear' (its 'worry' entry would give 'nervousness').
'calm' maps into no wheel and is dropped.
"""
from __future__ import annotations

import json

import numpy as np

FORMAT_MAPPING = {'happy': ['happy'], 'happiness': ['happy'], 'joyful': ['joyful'], 'sad': ['sad'],
                  'angry': ['angry'], 'worried': ['worried', 'anxious'], 'calm': ['calm']}
RAW_MAPPING = {'happy': ['happy'], 'joyful': ['joy', 'happy'], 'sad': ['sadness'], 'angry': ['anger'],
               'worried': ['worry'], 'anxious': ['fear', 'anxiety'], 'calm': ['calmness']}
WHEEL_MAP_WHOLE = {
    'wheel1': {'level1': {'joy': 'positive', 'happy': 'positive', 'sadness': 'negative', 'anger': 'negative',
                          'fear': 'negative', 'worry': 'negative'},
               'level2': {'joy': 'joy', 'happy': 'joy', 'sadness': 'sadness', 'anger': 'anger', 'fear': 'fear',
                          'worry': 'nervousness'}},
    'wheel2': {'level1': {'happy': 'pleasant', 'sadness': 'unpleasant', 'anger': 'unpleasant',
                          'anxiety': 'unpleasant'},
               'level2': {'happy': 'happy', 'sadness': 'sad', 'anger': 'mad', 'anxiety': 'scared'}},
}
MAPS = {'format_mapping': FORMAT_MAPPING, 'raw_mapping': RAW_MAPPING, 'wheel_map_whole': WHEEL_MAP_WHOLE}


def object_array(value) -> np.ndarray:
    """A 0-d object array holding ``value``: np.save pickles it, as MER's maps are stored."""
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def write_wheel_npz(path, maps=MAPS) -> str:
    np.savez(path, **{k: object_array(v) for k, v in maps.items()})
    return str(path)


def write_wheel_json(path, maps=MAPS) -> str:
    with open(path, 'w') as f:
        json.dump(maps, f)
    return str(path)
