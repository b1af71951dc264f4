"""A web demo of a trained model: upload a video, read the explanation, see the timeline.

    python -m microemo_jax.serve --params WORKDIR/params [--host 127.0.0.1] [--port 7860]
        [--max-upload-mb 200] [--max-seconds 300] [--max-new-tokens 256] [--scores summary.json]
        [--require-faces] [--queue-size 16]

A Gradio app over ``predict``: the uploaded clip (and optional .srt/.vtt subtitles) goes through the same
preprocessing and generation as ``python -m microemo_jax.predict``, and the page shows the explanation,
its emotion labels, the timeline picture and the utterances with their times. Held-out clips of the
corpus the model was trained on (the split ``evaluate`` scored, else the prepared validation split) can
be picked instead of an upload. A model panel shows what the run trained on and its validation scores
(``evaluate``'s summary.json: ``--scores``, or found beside the parameter folder).

The same function is an API endpoint that returns the JSON ``predict --out`` writes::

    from gradio_client import Client, handle_file
    Client('http://127.0.0.1:7860/').predict(handle_file('clip.mp4'), None, api_name='/explain')

Requests are queued and run one at a time (one model); a bad upload (not a video, too large, too long,
no face when faces are required) gets a message for that user and the server keeps serving. The server
binds to 127.0.0.1 unless ``--host`` says otherwise, and never phones home (Gradio analytics are off,
no share link).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import html
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback

# Before gradio is imported anywhere: no usage analytics, no version check, no Hugging Face telemetry.
os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
os.environ.setdefault('HF_HUB_DISABLE_TELEMETRY', '1')

DEFAULT_PORT = 7860
ERROR_TOAST_S = 30  # how long a per-user error stays on the page
KEEP_OUTPUTS_S = 3600  # request folders (timeline pictures, JSON) older than this are removed
SCORE_KEYS = (('accuracy_s', 'Accuracy_s'), ('recall_s', 'Recall_s'), ('avg', 'avg'),
              ('ew_level1_f', 'wheel F (level 1)'), ('ew_level2_f', 'wheel F (level 2)'), ('ew_mean', 'wheel F (mean)'))


class ServeError(ValueError):
    """An upload or a setting the server cannot use; the message is shown to the user as is."""


@dataclasses.dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 200.0
    max_seconds: float = 300.0
    require_faces: bool = False


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """A clip of the evaluated (never trained on) split, with its raw files and gold labels."""
    name: str
    video: str
    subtitles: str | None
    gold: list | None


# ---------------------------------------------------------------------------------------------- model facts

def find_scores(params_path: str, explicit: str | None = None) -> str | None:
    """``evaluate``'s summary.json for this parameter folder: ``explicit`` (a file or the folder holding it),
    else the newest one within two folders above the parameter folder that names this folder as its params
    (``make demo`` writes runs/demo/report/evaluate/summary.json for runs/demo/stage2/params)."""
    if explicit:
        path = os.path.join(explicit, 'summary.json') if os.path.isdir(explicit) else explicit
        if not os.path.isfile(path):
            raise ServeError(f"--scores {explicit}: no such file (expected evaluate's summary.json)")
        return path
    here = os.path.abspath(params_path)
    base = os.path.dirname(os.path.dirname(here))
    candidates = []
    for pattern in ('summary.json', '*/summary.json', '*/*/summary.json', '*/*/*/summary.json'):
        candidates += glob.glob(os.path.join(glob.escape(base), pattern))
    found = []
    for path in candidates:
        try:
            with open(path) as f:
                summary = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and os.path.abspath(str(summary.get('params', ''))) == here \
                and isinstance(summary.get('scores'), dict):
            found.append((summary.get('split') == 'validation', os.path.getmtime(path), path))
    return max(found)[2] if found else None


def load_summary(path: str | None) -> dict | None:
    if not path:
        return None
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        raise ServeError(f"--scores {path}: cannot read evaluate's summary ({e})") from e
    if not isinstance(summary, dict) or not isinstance(summary.get('scores'), dict):
        raise ServeError(f"--scores {path}: not a summary.json written by `python -m microemo_jax.evaluate`")
    summary['path'] = os.path.abspath(path)
    return summary


def _raw_video(raw_dir: str, name: str) -> str | None:
    from microemo_jax.data.sources import VIDEO_EXTENSIONS
    for ext in VIDEO_EXTENSIONS:
        for candidate in (os.path.join(raw_dir, name + ext), os.path.join(raw_dir, 'video', name + ext)):
            if os.path.isfile(candidate):
                return candidate
    return None


def held_out_clips(info: dict, summary: dict | None, limit: int = 50) -> list[HeldOut]:
    """The evaluated split's clips (per_sample.csv beside summary.json), else the prepared validation split's,
    whose raw videos are still where training.json says the raw corpus is."""
    from microemo_jax.evaluate import gold_labels, video_of
    from microemo_jax.data.sources import SUBTITLE_EXTENSIONS
    raw = info.get('raw')
    if not raw or not os.path.isdir(raw):
        return []
    names: dict[str, list | None] = {}
    per_sample = os.path.join(os.path.dirname(summary['path']), 'per_sample.csv') if summary else None
    if per_sample and os.path.isfile(per_sample):
        with open(per_sample, newline='') as f:
            for row in csv.DictReader(f):
                names[row['name']] = json.loads(row['gold']) if row.get('gold') else None
    elif info.get('data_dir'):
        try:
            from microemo_jax.data import pipeline
            source = pipeline.open_split(info['data_dir'], 'validation')
            for i in range(len(source)):
                rec = source[i]
                name = video_of(rec['name'].decode())
                gold = gold_labels(rec['openset'])
                if gold is not None or name not in names:
                    names[name] = gold
        except Exception:  # no validation split, or the prepared data moved: no held-out clips to offer
            return []
    clips = []
    for name in sorted(names)[:limit]:
        video = _raw_video(raw, name)
        if video is None:
            continue
        stem = os.path.splitext(video)[0]
        subtitles = next((stem + ext for ext in SUBTITLE_EXTENSIONS if os.path.isfile(stem + ext)), None)
        clips.append(HeldOut(name, video, subtitles, names[name]))
    return clips


def model_markdown(params_path: str, cfg, info: dict, summary: dict | None, generation: dict,
                   limits: Limits) -> str:
    """The model panel: the folder, the architecture in a line, what it trained on, its validation scores."""
    m = cfg.model
    stage = {1: 'stage 1 (alignment, LLM frozen)', 2: 'stage 2 (instruction tuning with LoRA)'}.get(
        cfg.get('stage'), f"stage {cfg.get('stage')}")
    lines = [f"**Parameter folder** `{params_path}`  ",
             f"**Variant** {cfg.get('variant') or 'custom'}, {stage}"
             + (f", {info['steps']} steps" if info.get('steps') else ''),
             '',
             f"**Model** {m.num_frames} frames at {m.vision.image_size} px, {m.micro_expression.num_crops} face crops "
             f"per anchor, up to {m.max_utterances} utterances; LLM {m.llm.num_layers} layers x {m.llm.hidden_size} "
             f"wide, vocabulary {m.llm.vocab_size}",
             '']
    if info:
        splits = info.get('splits') or {}
        split_text = ', '.join(f"{k}: {v} records" for k, v in sorted(splits.items())) or 'unknown'
        lines += [f"**Trained on** {info.get('source') or '?'} corpus `{info.get('raw') or '?'}`, prepared in "
                  f"`{info.get('data_dir') or '?'}` ({split_text}; the splits share no video)", '']
    else:
        lines += ['**Trained on** not recorded (no training.json in the parameter folder)', '']
    if summary:
        keys = [(k, label) for k, label in SCORE_KEYS if k in summary['scores']]
        rows = [('model', summary['scores'])]
        if summary.get('baseline'):
            rows.append((f"majority label ({summary['baseline'].get('label')})", summary['baseline']['scores']))
        lines += [f"**Scores on the {summary.get('split', '?')} split** ({summary['scores'].get('n', '?')} clips "
                  f"with gold labels; OV-emotion set scores from `evaluate`, higher is better)", '',
                  '| | ' + ' | '.join(label for _, label in keys) + ' |',
                  '|---|' + '---:|' * len(keys)]
        for label, scores in rows:
            lines.append(f'| {label} | ' + ' | '.join(f"{scores[k]:.3f}" for k, _ in keys) + ' |')
        lines += ['', f"from `{summary['path']}`"]
    else:
        lines += ['**Scores** no evaluation found for this folder: run `python -m microemo_jax.evaluate --params '
                  f'{params_path} --data PREPARED --out DIR` and serve with `--scores DIR/summary.json`.']
    lines += ['', f"**Generation** {', '.join(f'{k}={v}' for k, v in generation.items())}  ",
              f"**Limits** uploads up to {limits.max_upload_mb:g} MB and {limits.max_seconds:g} s"
              + ('; a face must be found' if limits.require_faces else '')]
    return '\n'.join(lines)


# --------------------------------------------------------------------------------------------- the service

class Service:
    """The model behind the page: checks uploads, explains one clip at a time, keeps its outputs a while."""

    def __init__(self, predictor, *, limits: Limits = Limits(), scores: str | None = None, workdir: str | None = None):
        self.predictor = predictor
        self.limits = limits
        folder = predictor.folder
        self.info = folder.info
        self.summary = load_summary(find_scores(folder.path, scores))
        self.held_out = {c.name: c for c in held_out_clips(self.info, self.summary)}
        self.require_faces = limits.require_faces or bool(folder.cfg.data.get('require_faces'))
        self.workdir = workdir or tempfile.mkdtemp(prefix='microemo-serve-')
        self._lock = threading.Lock()  # the queue runs one request at a time; this guards direct callers too
        self.model_markdown = model_markdown(folder.path, folder.cfg, self.info, self.summary,
                                             predictor.generation.as_dict(), self.limits)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- checks -----------------------------------------------------------------------------------------
    def check(self, video, subtitles):
        """A RawClip for an upload, or ServeError saying what is wrong with it (by the uploaded file's name)."""
        from microemo_jax.data import video as video_lib
        from microemo_jax.data.sources import SUBTITLE_EXTENSIONS, VIDEO_EXTENSIONS
        from microemo_jax.predict import PredictError, find_videos
        video, subtitles = _path(video), _path(subtitles)
        if not video:
            raise ServeError('Upload a video (or pick a held-out clip) first.')
        name = os.path.basename(video)
        if not os.path.isfile(video):
            raise ServeError(f'{name}: the upload is gone from the server; upload it again.')
        size_mb = os.path.getsize(video) / 1e6
        if size_mb > self.limits.max_upload_mb:
            raise ServeError(f'{name} is {size_mb:.1f} MB; this server takes videos up to '
                             f'{self.limits.max_upload_mb:g} MB (--max-upload-mb).')
        if not name.lower().endswith(VIDEO_EXTENSIONS):
            raise ServeError(f"{name} is not a video file this demo reads: upload a {', '.join(VIDEO_EXTENSIONS)} "
                             f"file (subtitles go in the subtitles box).")
        if subtitles and not subtitles.lower().endswith(SUBTITLE_EXTENSIONS):
            raise ServeError(f"{os.path.basename(subtitles)} is not a subtitle file: use .srt or .vtt timed "
                             f"subtitles, or leave the box empty.")
        try:
            info = video_lib.probe(video)
        except video_lib.MediaError as e:
            raise ServeError(_readable(f'{name} cannot be read as a video: {e.detail}. Upload a video file '
                                       f'({", ".join(VIDEO_EXTENSIONS)}).', video, None)) from None
        except Exception as e:  # noqa: BLE001  (any decoder failure is the upload's problem, not the server's)
            raise ServeError(_readable(f'{name} cannot be read as a video ({type(e).__name__}: {e}).', video,
                                       None)) from None
        if info.duration > self.limits.max_seconds:
            raise ServeError(f'{name} is {info.duration:.1f} s long; this server explains clips up to '
                             f'{self.limits.max_seconds:g} s (--max-seconds). Cut it shorter and upload again.')
        try:
            clip, = find_videos(video, subtitles)
        except PredictError as e:
            raise ServeError(_readable(str(e), video, subtitles)) from None
        return clip

    # -- work --------------------------------------------------------------------------------------------
    def explain(self, video, subtitles=None, progress=None) -> dict:
        """The result dict of ``predict --out`` for one upload (``progress(fraction, text)`` if given)."""
        from microemo_jax.predict import PredictError
        say = progress or (lambda fraction, text: None)
        say(0.02, 'Checking the upload')
        clip = self.check(video, subtitles)
        with self._lock:
            t0 = time.time()
            say(0.1, 'Reading the video: frames, faces, audio, utterances')
            try:
                rec, media = self.predictor.preprocess(clip)
            except PredictError as e:
                raise ServeError(_readable(str(e), clip.video, clip.subtitle_file)) from None
            if self.require_faces and not media['face_mask'].any():
                raise ServeError(f'{os.path.basename(clip.video)}: no face found in any sampled frame; this server '
                                 f'needs a visible face (upload a clip where the speaker faces the camera).')
            say(0.4, 'Generating the explanation')
            text, = self.predictor.explainer.explain([rec])
            result = self.predictor.result(clip, rec, media, text)
            say(0.9, 'Drawing the timeline')
            result['timeline'] = self.predictor.write(result, media, self._request_dir())
            result['seconds'] = round(time.time() - t0, 2)
        return result

    def _request_dir(self) -> str:
        now = time.time()
        for old in glob.glob(os.path.join(glob.escape(self.workdir), 'req-*')):
            try:
                if now - os.path.getmtime(old) > KEEP_OUTPUTS_S:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        os.makedirs(self.workdir, exist_ok=True)
        return tempfile.mkdtemp(prefix='req-', dir=self.workdir)


def _path(value) -> str | None:
    """A file path from what Gradio passes (a path, a FileData-like dict, or an object with .path/.name)."""
    if value is None or value == '':
        return None
    if isinstance(value, (list, tuple)):
        return _path(value[0]) if value else None
    if isinstance(value, dict):
        return value.get('path') or value.get('name') or (_path(value.get('video')) if 'video' in value else None)
    return getattr(value, 'path', None) or getattr(value, 'name', None) or os.fspath(value)


def _readable(message: str, video: str | None, subtitles: str | None) -> str:
    """predict's messages name server paths and CLI flags; the web user knows the uploaded file names."""
    for path in (video, subtitles):
        if path:
            message = message.replace('file:' + path, path).replace(path, os.path.basename(path))
    message = re.sub(r'\[Errno -?\d+\] ', '', message)  # FFmpeg's error numbers mean nothing to a web user
    return message.replace('--subtitles ', 'subtitles ').replace('--video ', '')


# ------------------------------------------------------------------------------------------------ the page

CSS = """
#labels .chip { display: inline-block; margin: 2px 6px 2px 0; padding: 3px 12px; border-radius: 999px;
  background: var(--color-accent-soft); color: var(--body-text-color); border: 1px solid var(--color-accent);
  font-weight: 600; }
#labels .title { font-weight: 600; margin-right: 8px; }
#labels .none { color: var(--body-text-color-subdued); }
"""


def labels_html(labels, empty: str = 'no emotion words found in the explanation') -> str:
    """The labels as chips (escaped: they come from model output)."""
    chips = ''.join(f'<span class="chip">{html.escape(str(x))}</span>' for x in labels or ())
    return f'<div class="labels"><span class="title">Labels</span>{chips or f"<span class=none>{empty}</span>"}</div>'


def details_markdown(result: dict, held_out: HeldOut | None) -> str:
    t = result['timestamps']
    faces = f"a face in {result['faces_found']} of {len(result['face_frames'])} sampled frames"
    source = {'subtitles': 'from the subtitles', 'utterance_file': 'from the utterance file',
              'asr-whisper': 'recognised by Whisper', 'asr-pocketsphinx': 'recognised by PocketSphinx',
              'vad': 'from voice activity', 'whole': '(the whole clip)'}.get(
        result.get('utterance_source'), f"from {result.get('utterance_source')}")
    lines = [f"**{html.escape(result['name'])}**: {len(t)} frames sampled between {t[0]:.1f} s and {t[-1]:.1f} s, "
             f"{faces}; {len(result['utterances'])} utterance(s) {source}; explained in {result.get('seconds', 0):.1f} s."
             if t else f"**{html.escape(result['name'])}**"]
    if held_out is not None and held_out.gold:
        lines.append(f"Held-out clip; its gold labels: {html.escape(', '.join(map(str, held_out.gold)))}.")
    return '\n\n'.join(lines)


def build_app(service: Service):
    """The Gradio Blocks of the demo (not launched)."""
    import gradio as gr

    held = sorted(service.held_out)

    def pick(name):
        clip = service.held_out.get(name)
        if clip is None:
            return gr.update(), gr.update()
        return clip.video, clip.subtitles

    def explain_json(video, subtitles=None, progress=gr.Progress()):
        """Explain one clip: the JSON `python -m microemo_jax.predict --out` writes (explanation, labels,
        utterances, timestamps, faces_found, ...)."""
        try:
            return service.explain(video, subtitles, progress=lambda f, text: progress(f, desc=text))
        except ServeError as e:
            print(f'refused: {e}', file=sys.stderr, flush=True)
            raise gr.Error(str(e), duration=ERROR_TOAST_S, print_exception=False) from None
        except Exception as e:  # noqa: BLE001  one request fails, the server keeps serving
            traceback.print_exc()
            raise gr.Error(f'The model failed on this clip ({type(e).__name__}: {e}). The server is still '
                           f'running; try another clip.', duration=ERROR_TOAST_S, print_exception=False) from None

    def explain_page(video, subtitles=None, progress=gr.Progress()):
        result = explain_json(video, subtitles, progress)
        rows = [[u['start'], u['end'], u['text']] for u in result['utterances']]
        return (result['explanation'], labels_html(result['labels']), result['timeline'], rows,
                details_markdown(result, service.held_out.get(result['name'])), result)

    with gr.Blocks(title='MicroEmo: explain the emotions in a video', analytics_enabled=False,
                   delete_cache=(KEEP_OUTPUTS_S, KEEP_OUTPUTS_S)) as app:
        gr.Markdown('# MicroEmo: which emotions does the person in this video show, and why?\n'
                    'Upload a short video of a person speaking (and its timed subtitles if you have them), or pick '
                    'a held-out clip the model never saw in training. The model reads the frames at their '
                    'timestamps, the speaker\'s face (micro-expressions included), the speech audio and the '
                    'utterances, then writes an explanation; the labels are the emotion words in it.')
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                video = gr.Video(label='Video (.mp4 .avi .mkv .webm .mov)', sources=['upload'], elem_id='video')
                subtitles = gr.File(label='Subtitles (.srt or .vtt, optional)', file_types=['.srt', '.vtt'],
                                    type='filepath', elem_id='subtitles')
                clip = gr.Dropdown(choices=held, value=None, label='...or pick a held-out clip', elem_id='held_out',
                                   interactive=bool(held),
                                   info=f'{len(held)} clips of the split the model was scored on' if held else
                                   'none available: the raw corpus of this model is not on this machine')
                button = gr.Button('Explain', variant='primary', elem_id='explain')
            with gr.Column(scale=3):
                explanation = gr.Textbox(label='Explanation', lines=4, interactive=False, elem_id='explanation')
                labels = gr.HTML(labels_html(None, 'they appear here'), elem_id='labels')
                details = gr.Markdown(elem_id='details')
        gr.Markdown('### Timeline\nThe sampled frames at their timestamps with the speaker\'s face box, the '
                    'utterances, the labels and the explanation.')
        timeline = gr.Image(show_label=False, type='filepath', interactive=False, elem_id='timeline')
        utterances = gr.Dataframe(headers=['start (s)', 'end (s)', 'text'], datatype=['number', 'number', 'str'],
                                  label='Utterances', interactive=False, wrap=True, elem_id='utterances')
        with gr.Accordion('Model', open=True, elem_id='model'):
            gr.Markdown(service.model_markdown)
        with gr.Accordion('JSON (what the /explain API returns)', open=False):
            result_json = gr.JSON(elem_id='result_json')

        clip.change(pick, clip, [video, subtitles], api_visibility='private', queue=False)
        button.click(explain_page, [video, subtitles],
                     [explanation, labels, timeline, utterances, details, result_json],
                     api_visibility='undocumented', concurrency_id='model', concurrency_limit=1)
        # The API: files in, predict's JSON out (hidden components: the page has its own event above).
        api_video = gr.File(label='video', visible=False, type='filepath')
        api_subtitles = gr.File(label='subtitles', visible=False, type='filepath')
        api_result = gr.JSON(label='result', visible=False)
        api_button = gr.Button(visible=False)
        api_button.click(explain_json, [api_video, api_subtitles], api_result, api_name='explain',
                         concurrency_id='model', concurrency_limit=1)
    return app


def launch(service: Service, *, host: str = '127.0.0.1', port: int | None = DEFAULT_PORT, queue_size: int = 16,
           block: bool = True, quiet: bool = False):
    """Queue and start the app; returns it (with ``block=False``, call ``app.close()`` to stop)."""
    import gradio as gr
    app = build_app(service)
    app.queue(default_concurrency_limit=1, max_size=queue_size)
    allowed = [p for c in service.held_out.values() for p in (c.video, c.subtitles) if p]
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
               max_file_size=f'{service.limits.max_upload_mb:g}mb' if service.limits.max_upload_mb else None,
               allowed_paths=allowed, prevent_thread_lock=not block, quiet=quiet, show_error=True,
               theme=gr.themes.Default(), css=CSS, enable_monitoring=False)
    return app


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog='python -m microemo_jax.serve', description=__doc__.split('\n')[0])
    parser.add_argument('--params', required=True, help='parameter folder written by train (WORKDIR/params)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default 127.0.0.1: this machine only; 0.0.0.0 serves the network)')
    parser.add_argument('--port', type=int, default=DEFAULT_PORT)
    parser.add_argument('--max-upload-mb', dest='max_upload_mb', type=float, default=200.0)
    parser.add_argument('--max-seconds', dest='max_seconds', type=float, default=300.0,
                        help='longest clip explained, in seconds')
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=int, default=256)
    parser.add_argument('--scores', help="evaluate's summary.json (or its folder) for the model panel "
                                         "(default: one found near --params that names it)")
    parser.add_argument('--require-faces', dest='require_faces', action='store_true',
                        help='refuse clips in which no face is found (the config may require it already)')
    parser.add_argument('--queue-size', dest='queue_size', type=int, default=16,
                        help='requests waiting at most; more get a "queue full" message')
    args = parser.parse_args(argv)
    if args.max_upload_mb <= 0 or args.max_seconds <= 0 or args.queue_size < 1:
        parser.error('--max-upload-mb and --max-seconds must be > 0, --queue-size >= 1')
    from microemo_jax.params import ParamsFolderError, check_folder
    from microemo_jax.predict import Predictor
    try:
        check_folder(args.params)
        print(f'loading {args.params} ...', flush=True)
        predictor = Predictor(args.params, max_new_tokens=args.max_new_tokens)
        service = Service(predictor, scores=args.scores,
                          limits=Limits(args.max_upload_mb, args.max_seconds, args.require_faces))
    except (ParamsFolderError, ServeError, ValueError, OSError) as e:
        hint = (' (train the demo model with `make demo` first)'
                if 'runs/demo' in args.params and not os.path.isdir(args.params) else '')
        sys.exit(f'error: {e}{hint}')
    print(f"serving {predictor.folder.path} on http://{args.host}:{args.port}/ (Ctrl+C stops)"
          + (f"; validation scores from {service.summary['path']}" if service.summary else '')
          + f"; {len(service.held_out)} held-out clips", flush=True)
    try:
        launch(service, host=args.host, port=args.port, queue_size=args.queue_size)
    except OSError as e:
        sys.exit(f'error: cannot serve on {args.host}:{args.port}: {e}')
    finally:
        service.close()


if __name__ == '__main__':
    main()
