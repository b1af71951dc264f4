"""A real face that can act: the astronaut photo of scikit-image, animated by smooth image warps.

The demo corpus needs a face that a real detector finds and whose expression carries the emotion, without
shipping any media. ``skimage.data.astronaut()`` is a real frontal photo; we crop her face and move it
with displacement fields localised around hand-placed landmarks (mouth corners, lips, cheeks, eyebrows,
eyelids), one field per facial action, plus a per-column model of the mouth (how far each lip is drawn
back from the teeth, how far the jaw drops). A frame is one ``cv2.remap`` of the photo by the weighted sum
of those fields composed with a small head rotation/translation, with a few texture changes that warps
cannot make (dark open mouth, frown and nose creases): about a millisecond per frame at 160 px.

The photo smiles with her teeth showing; the neutral face relaxes the smile and closes the lips over the
teeth (``teeth_upper = teeth_lower = 0``), ``happy`` opens them again. All displacements are given in photo
pixels and scaled to the output size.

    rig = FaceRig(160)
    frame = rig.render(expression('angry', 1.0), head=(dx, dy, degrees))   # (160, 160, 3) uint8 RGB
"""
from __future__ import annotations

import functools

import cv2
import numpy as np
from skimage import data

# Face crop in the 512x512 photo (x0, y0, side): the face fills about two thirds of the frame.
CROP = (147, 45, 150)

# Landmarks in photo pixels (x, y), placed by hand on skimage.data.astronaut().
LM = {
    'eye_l': (201.0, 101.0), 'eye_r': (244.5, 102.0),
    'brow_l_in': (213.0, 93.0), 'brow_l_mid': (201.0, 89.0), 'brow_l_out': (189.0, 91.0),
    'brow_r_in': (232.0, 92.0), 'brow_r_mid': (245.0, 89.0), 'brow_r_out': (258.0, 92.0),
    'glabella': (222.5, 94.0), 'nose_tip': (222.0, 126.0), 'nostril_l': (214.0, 129.0), 'nostril_r': (231.0, 129.0),
    'mouth_l': (203.0, 140.0), 'mouth_r': (245.0, 139.0),
    'lip_top': (222.0, 137.0), 'lip_upper_in': (222.0, 142.0), 'lip_lower_in': (222.0, 149.0),
    'lip_bottom': (222.0, 154.0), 'chin': (222.0, 172.0),
    'cheek_l': (195.0, 122.0), 'cheek_r': (250.0, 122.0),
}
EYE_HALF = (7.5, 3.5)        # half width, half height of an eye opening (photo px)
JAW_PX = 10.0                # jaw drop at jaw = 1 (photo px)
MOUTH_INSIDE = (70.0, 28.0, 32.0)   # RGB of the dark inside of an open mouth

# Parameters of a face state: displacement fields (weights) then the mouth model.
FIELDS = ('relax', 'smile', 'cheek_raise', 'lip_corner_down', 'brow_raise', 'brow_inner_up', 'brow_lower', 'lip_press',
          'lip_stretch', 'nose_wrinkle', 'sneer', 'eye_wide', 'squint', 'lid_droop', 'blink')
MOUTH = ('teeth_upper', 'teeth_lower', 'jaw')     # lip retraction from the teeth (photo = 1), jaw drop
PARAMS = FIELDS + MOUTH

# Expression prototypes (FACS-like, exaggerated so they read at 128-160 px).
EXPRESSIONS = {
    'neutral': {'relax': 1.0},
    'happy': {'smile': 0.9, 'cheek_raise': 1.0, 'squint': 0.6, 'teeth_upper': 1.0, 'teeth_lower': 1.0},
    'sad': {'relax': 1.0, 'lip_corner_down': 1.0, 'brow_inner_up': 1.0, 'lid_droop': 1.0},
    'angry': {'relax': 1.0, 'lip_press': 1.0, 'brow_lower': 1.0, 'eye_wide': 0.5},
    'surprised': {'relax': 1.0, 'brow_raise': 1.0, 'eye_wide': 1.0, 'teeth_upper': 0.5, 'jaw': 0.9},
    'fearful': {'relax': 1.0, 'lip_stretch': 1.0, 'brow_raise': 0.6, 'brow_inner_up': 0.8, 'eye_wide': 1.0,
                'teeth_upper': 0.9, 'teeth_lower': 0.9, 'jaw': 0.25},
    'disgusted': {'relax': 1.0, 'nose_wrinkle': 1.0, 'sneer': 1.0, 'brow_lower': 0.6, 'lip_corner_down': 1.3,
                  'squint': 0.7, 'teeth_upper': 0.6},
}
EMOTIONS = tuple(EXPRESSIONS)


def params(**weights: float) -> np.ndarray:
    """A parameter vector (len(PARAMS),) from keyword weights (unnamed ones are 0)."""
    v = np.zeros(len(PARAMS), np.float32)
    for k, w in weights.items():
        if k not in PARAMS:
            raise ValueError(f"unknown face parameter {k!r}; known: {', '.join(PARAMS)}")
        v[PARAMS.index(k)] = w
    return v


def expression(emotion: str, intensity: float = 1.0) -> np.ndarray:
    """Parameter vector of ``emotion`` at ``intensity`` (0 = the neutral face, 1 = the prototype)."""
    if emotion not in EXPRESSIONS:
        raise ValueError(f"unknown expression {emotion!r}; known: {', '.join(EMOTIONS)}")
    neutral = params(**EXPRESSIONS['neutral'])
    return neutral + float(intensity) * (params(**EXPRESSIONS[emotion]) - neutral)


def landmark(name: str, size: int) -> tuple[float, float]:
    """Position of a landmark in output pixels of a ``size`` x ``size`` frame (before head motion)."""
    return _photo_to_out(LM[name], size)


def region(name: str, size: int) -> tuple[int, int, int, int]:
    """Box (x0, y0, x1, y1) in output pixels around a face part: 'brows', 'eyes', 'mouth' or 'face'."""
    parts = {'brows': ('brow_l_out', 'brow_r_out', 'brow_l_mid', 'glabella'),
             'eyes': ('eye_l', 'eye_r'), 'mouth': ('mouth_l', 'mouth_r', 'lip_top', 'lip_bottom'),
             'face': ('brow_l_out', 'brow_r_out', 'chin', 'brow_l_mid')}[name]
    pts = np.array([landmark(p, size) for p in parts])
    pad = {'brows': 6, 'eyes': 6, 'mouth': 4, 'face': 4}[name] * size / CROP[2]
    (x0, y0), (x1, y1) = pts.min(0) - pad, pts.max(0) + pad
    return int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))


class FaceRig:
    """Renders the astronaut's face at ``size`` px from a parameter vector and a head pose."""

    def __init__(self, size: int = 160):
        if size < 64 or size % 2:
            raise ValueError(f"face size must be even and >= 64 px, got {size}")
        self.size = size
        self.texture = _texture(size)
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        self.grid_x, self.grid_y = xs, ys
        fields = _fields(size)
        self.fields = [fields[u] for u in FIELDS]                        # (H, W, 2) backward offsets each
        self.mouth = _MouthModel(size)
        self.creases = {'brow_lower': _creases(size, [((219.5, 92.0), (218.5, 101.0)),
                                                      ((225.5, 92.0), (226.5, 101.0))]),
                        'nose_wrinkle': _creases(size, [((216.0, 111.0), (229.0, 111.0)),
                                                        ((217.0, 115.5), (228.0, 115.5))])}

    def render(self, p: np.ndarray, head: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """One RGB uint8 frame for parameters ``p`` (see ``PARAMS``) and head motion (dx px, dy px, degrees)."""
        p = np.asarray(p, np.float32)
        offset = np.zeros((self.size, self.size, 2), np.float32)
        for w, field in zip(p[:len(FIELDS)], self.fields):
            if w != 0.0:
                offset += w * field                       # a few axpys: cheaper than BLAS for 2 shared cores
        teeth_upper, teeth_lower, jaw = (float(p[PARAMS.index(k)]) for k in MOUTH)
        offset[..., 1] += self.mouth.offsets(teeth_upper, teeth_lower, jaw)
        tex = self._shade(p, jaw)
        # Head motion: out pixel x shows face point B^-1 x, which shows photo point B^-1 x + offset(B^-1 x).
        dx, dy, deg = head
        c = (self.size - 1) / 2.0
        fwd = cv2.getRotationMatrix2D((c, c), float(deg), 1.0)
        fwd[:, 2] += (dx, dy)
        inv = cv2.invertAffineTransform(fwd).astype(np.float32)
        off = cv2.warpAffine(offset, inv, (self.size, self.size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        map_x = inv[0, 0] * self.grid_x + inv[0, 1] * self.grid_y + inv[0, 2] + off[..., 0]
        map_y = inv[1, 0] * self.grid_x + inv[1, 1] * self.grid_y + inv[1, 2] + off[..., 1]
        out = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _shade(self, p, jaw):
        """Texture changes in photo coordinates (they then move with the warp)."""
        tex = self.texture
        dark = float(np.clip(jaw / 0.25, 0.0, 1.0))
        crease = [(float(p[PARAMS.index(k)]), m) for k, m in self.creases.items() if p[PARAMS.index(k)] > 0]
        if dark <= 0 and not crease:
            return tex
        tex = tex.copy()
        if dark > 0:
            a = dark * self.mouth.inside_mask[..., None]
            tex = tex * (1 - a) + a * np.asarray(MOUTH_INSIDE, np.float32)
        for weight, m in crease:
            tex *= 1.0 - min(weight, 1.0) * m[..., None]
        return tex


# ------------------------------------------------------------------------------------------ construction
@functools.lru_cache(maxsize=4)
def _texture(size: int) -> np.ndarray:
    """The face crop of the photo, float32 RGB at ``size`` px."""

    photo = data.astronaut()
    x0, y0, side = CROP
    crop = photo[y0:y0 + side, x0:x0 + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def _photo_to_out(p, size):
    x0, y0, side = CROP
    s = size / side
    return ((p[0] - x0 + 0.5) * s - 0.5, (p[1] - y0 + 0.5) * s - 0.5)


def _gauss(size, center, sigma):
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return np.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2.0 * sigma ** 2)).astype(np.float32)


def _bumps(size: int, moves) -> np.ndarray:
    """Backward field for forward moves [(landmark name or photo point, (dx, dy) photo px, sigma photo px)].

    Content around p moving by v is approximated by sampling from x - v G(x - p - v/2).
    """
    s = size / CROP[2]
    field = np.zeros((size, size, 2), np.float32)
    for where, (vx, vy), sigma in moves:
        px, py = _photo_to_out(LM[where] if isinstance(where, str) else where, size)
        g = _gauss(size, (px + vx * s / 2, py + vy * s / 2), sigma * s)
        field[..., 0] -= vx * s * g
        field[..., 1] -= vy * s * g
    return field


def _mirror(moves):
    """Moves on the face's left side and their mirror images (landmarks ``*_l*`` -> ``*_r*``, points about x=222.5)."""
    out = []
    for where, (vx, vy), sigma in moves:
        out.append((where, (vx, vy), sigma))
        other = where.replace('_l', '_r') if isinstance(where, str) else (445.0 - where[0], where[1])
        out.append((other, (-vx, vy), sigma))
    return out


def _blink_field(size):
    """Upper eyelids slide down over the eyes (the eye rows sample the lid skin above)."""
    s = size / CROP[2]
    field = np.zeros((size, size, 2), np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    for eye in ('eye_l', 'eye_r'):
        ex, ey = landmark(eye, size)
        hw, hh = EYE_HALF[0] * s * 1.3, EYE_HALF[1] * s
        top, bottom = ey - hh - 1.0 * s, ey + hh
        lid = 5.0 * s
        col = np.clip(1.0 - (np.abs(xs - ex) / hw) ** 2, 0, 1)
        inside = (ys >= top - lid) & (ys <= bottom)
        src = (top - lid) + (ys - (top - lid)) * lid / (bottom - top + lid)   # [top-lid, bottom] <- [top-lid, top]
        field[..., 1] += np.where(inside, (src - ys) * col, 0.0)
    return field


def _fields(size: int) -> dict[str, np.ndarray]:
    eye_l, eye_r = LM['eye_l'], LM['eye_r']
    return {
        'relax': _bumps(size, _mirror([('mouth_l', (0.5, 3.5), 3.5), ((207.0, 136.0), (0.0, 1.5), 3.5)])),
        'smile': _bumps(size, _mirror([('mouth_l', (-2.0, -3.5), 5.0), ('cheek_l', (0.0, -1.5), 8.0)])),
        'cheek_raise': _bumps(size, _mirror([('cheek_l', (0.0, -2.5), 7.0)])
                              + [((eye_l[0], 106.0), (0.0, -1.5), 3.0), ((eye_r[0], 107.0), (0.0, -1.5), 3.0)]),
        'lip_corner_down': _bumps(size, _mirror([('mouth_l', (0.5, 4.5), 5.0)]) + [('lip_bottom', (0, 1.0), 6.0)]),
        'brow_raise': _bumps(size, _mirror([('brow_l_in', (0.0, -4.5), 6.0), ('brow_l_mid', (0.0, -5.5), 6.0),
                                            ('brow_l_out', (0.0, -4.0), 6.0)])),
        'brow_inner_up': _bumps(size, _mirror([('brow_l_in', (0.5, -5.5), 4.5), ((206.0, 90.0), (0.0, -2.5), 4.0),
                                               ('brow_l_out', (0.0, 1.5), 4.0)])),
        'brow_lower': _bumps(size, _mirror([('brow_l_in', (3.5, 5.0), 5.0), ('brow_l_mid', (1.5, 4.0), 5.0),
                                            ('brow_l_out', (0.0, 2.0), 5.0)])),
        'lip_press': _bumps(size, [('lip_top', (0.0, 1.8), 3.5), ('lip_bottom', (0.0, -2.2), 3.5)]
                            + _mirror([('mouth_l', (2.0, 0.5), 4.0)])),
        'lip_stretch': _bumps(size, _mirror([('mouth_l', (-4.5, 1.5), 5.5)])),
        'nose_wrinkle': _bumps(size, _mirror([('nostril_l', (0.0, -2.0), 4.0), ((213.0, 137.0), (0.0, -1.5), 4.0)])
                               + [('nose_tip', (0.0, -1.0), 5.0)]),
        'sneer': _bumps(size, [((211.0, 137.0), (0.0, -3.0), 4.0), ('nostril_l', (0.0, -1.5), 4.0)]),
        'eye_wide': _bumps(size, [((eye_l[0], 97.5), (0.0, -2.0), 3.0), ((eye_r[0], 98.5), (0.0, -2.0), 3.0)]),
        'squint': _bumps(size, [((eye_l[0], 105.0), (0.0, -1.8), 2.5), ((eye_r[0], 106.0), (0.0, -1.8), 2.5),
                                ((eye_l[0], 97.5), (0.0, 1.0), 2.5), ((eye_r[0], 98.5), (0.0, 1.0), 2.5)]),
        'lid_droop': _bumps(size, [((eye_l[0] + 2, 97.0), (0.0, 1.6), 3.0), ((eye_r[0] - 2, 98.0), (0.0, 1.6), 3.0)]),
        'blink': _blink_field(size),
    }


class _MouthModel:
    """Per-column backward map of the mouth in y: lips drawn back from the teeth by a fraction, jaw drop.

    In the photo, each column x of the mouth has the inner upper-lip edge at ``yu`` and the inner lower-lip
    edge at ``yl`` (teeth between), seam ``m`` midway, half-gap ``h``. Output rows are mapped piecewise
    linearly: upper lip [m-R, m-a h] <- [m-R, yu]; gap [m-a h, m+b h+J] <- teeth [yu, yl]; lower lip and chin
    shift so that m+b h+J <- yl, the lip part of the shift fading out down to the neck and the jaw part
    below the chin. a = b = 1, J = 0 is the photo; a = b = 0 closes the lips over the teeth.
    """

    def __init__(self, size):
        s = size / CROP[2]
        (xl, yl), (xr, yr) = landmark('mouth_l', size), landmark('mouth_r', size)
        xc = (xl + xr) / 2
        yu, ylo = landmark('lip_upper_in', size)[1], landmark('lip_lower_in', size)[1]
        xs = np.arange(size, dtype=np.float32)
        u = np.clip((xs - xc) / ((xr - xl) / 2), -1.0, 1.0)
        corner = np.where(u < 0, yl, yr)
        upper = yu + (corner - yu) * u ** 2
        lower = ylo + (corner - ylo) * u ** 2
        self.m = ((upper + lower) / 2)[None, :]
        self.h = np.maximum((lower - upper) / 2, 0)[None, :]
        self.reach = self.h + 6.0 * s
        self.jaw_col = (JAW_PX * s * np.exp(-((xs - xc) ** 2) / (2 * (0.42 * (xr - xl)) ** 2)))[None, :]
        self.chin = landmark('chin', size)[1]
        self.fade = 12.0 * s
        self.margin = 0.8 * s
        self.ys = np.arange(size, dtype=np.float32)[:, None]
        # the inside of the mouth: the lower 60% of the teeth band, dark when the jaw opens
        band = (self.ys - (upper + 0.4 * (lower - upper))[None, :]) / np.maximum(lower - upper, 1e-3)[None, :]
        inside = (band >= 0) & (self.ys <= lower[None, :] + 0.5) & (np.abs(u) < 0.97)[None, :]
        self.inside_mask = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 0.6 * s)

    def offsets(self, a: float, b: float, jaw: float) -> np.ndarray:
        """Backward y offsets (H, W) for upper/lower lip retraction a, b (photo = 1) and jaw drop ``jaw``."""
        if a == 1.0 and b == 1.0 and jaw == 0.0:
            return np.zeros_like(self.ys * self.m)
        ys, m, h, reach = self.ys, self.m, self.h, self.reach
        jaw_px = max(jaw, 0.0) * self.jaw_col
        top_out = m - a * h                       # inner upper-lip edge in the output
        bot_out = m + b * h + jaw_px              # inner lower-lip edge in the output
        # a closed lip samples just beside the teeth (no bright seam from bilinear sampling)
        yu = m - h - self.margin * max(0.0, 1.0 - a)
        yl = m + h + self.margin * max(0.0, 1.0 - b)
        start = m - reach
        up = start + (ys - start) * (yu - start) / np.maximum(top_out - start, 1e-3)
        gap = yu + (ys - top_out) * (yl - yu) / np.maximum(bot_out - top_out, 1e-3)
        lip_shift = m + b * h - yl                # how far the lower lip moves (output - photo) without the jaw
        span = np.maximum(self.chin + self.fade - bot_out, 1.0)
        t = np.clip((ys - bot_out) / span, 0.0, 1.0)
        jaw_fade = np.exp(-np.maximum(ys - self.chin, 0.0) ** 2 / (2 * self.fade ** 2))
        low = ys - lip_shift * (1.0 - t) - jaw_px * jaw_fade
        src = np.where(ys < start, ys, np.where(ys < top_out, up, np.where(ys < bot_out, gap, low)))
        return (src - ys).astype(np.float32)


def _creases(size, segments):
    """Soft dark lines (photo-coordinate segments) that deepen with an action: frown or nose wrinkles."""
    s = size / CROP[2]
    sub = 4
    m = np.zeros((size, size), np.float32)
    for p0, p1 in segments:
        (a, b), (c, d) = _photo_to_out(p0, size), _photo_to_out(p1, size)
        cv2.line(m, (int(round(a * sub)), int(round(b * sub))), (int(round(c * sub)), int(round(d * sub))), 1.0,
                 1, cv2.LINE_AA, 2)
    return 0.25 * cv2.GaussianBlur(m, (0, 0), 0.6 * s)
