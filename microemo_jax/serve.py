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

The app itself is ``microemo_jax.web`` (upload checks, model facts, the service, the page); this module is
its command line.
"""
from __future__ import annotations

import os
import sys

from microemo_jax import cli_checks
from microemo_jax.inference.settings import GenerationSettings
from microemo_jax.inference.videos import Predictor
from microemo_jax.params import ParamsFolderError, check_folder
from microemo_jax.web.page import DEFAULT_PORT, launch
from microemo_jax.web.service import Service
from microemo_jax.web.upload import Limits, ServeError


def main(argv=None) -> None:
    parser = cli_checks.Parser(prog='python -m microemo_jax.serve', description=__doc__.split('\n')[0])
    parser.add_argument('--params', required=True,   # checked by check_folder below, with a `make demo` hint
                        help='parameter folder written by train (WORKDIR/params)')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to bind (default 127.0.0.1: this machine only; 0.0.0.0 serves the network)')
    parser.add_argument('--port', type=cli_checks.port, default=DEFAULT_PORT)
    parser.add_argument('--max-upload-mb', dest='max_upload_mb', type=cli_checks.positive_float, default=200.0)
    parser.add_argument('--max-seconds', dest='max_seconds', type=cli_checks.positive_float, default=300.0,
                        help='longest clip explained, in seconds')
    parser.add_argument('--max-new-tokens', dest='max_new_tokens', type=cli_checks.positive_int,
                        default=GenerationSettings.max_new_tokens)
    parser.add_argument('--scores', type=cli_checks.existing_path, help="evaluate's summary.json (or its folder) for the model panel "
                                         "(default: one found near --params that names it)")
    parser.add_argument('--require-faces', dest='require_faces', action='store_true',
                        help='refuse clips in which no face is found (the config may require it already)')
    parser.add_argument('--queue-size', dest='queue_size', type=cli_checks.positive_int, default=16,
                        help='requests waiting at most; more get a "queue full" message')
    args = parser.parse_args(argv)
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
