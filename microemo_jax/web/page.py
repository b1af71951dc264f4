"""The Gradio page of the web demo (upload or pick a clip; explanation, labels, timeline, utterances, model
panel) and its ``/explain`` API endpoint, which returns the JSON ``predict --out`` writes."""
from __future__ import annotations

import html
import sys
import traceback

from microemo_jax.web.model_facts import HeldOut
from microemo_jax.web.service import KEEP_OUTPUTS_S, Service
from microemo_jax.web.upload import ServeError, public_result, public_text

DEFAULT_PORT = 7860
ERROR_TOAST_S = 30  # how long a per-user error stays on the page
INTERNAL_ERROR = ('The model failed on this clip (an internal error; the server log has the details). The server '
                  'is still running; try another clip.')

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
    """The line under the labels: what was sampled and found, and a held-out clip's gold labels."""
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
    import gradio as gr  # optional dependency (the web extra)

    held = sorted(service.held_out)

    def pick(name):
        clip = service.held_out.get(name)
        if clip is None:
            return gr.update(), gr.update()
        return clip.video, clip.subtitles

    def explain(video, subtitles, progress):
        """The result with server paths (for the page's own picture); a user sees only messages, never
        internals: an upload's problem in its own words, anything else as INTERNAL_ERROR (details in the log)."""
        try:
            return service.explain(video, subtitles, progress=lambda f, text: progress(f, desc=text))
        except ServeError as e:
            print(f'refused: {e}', file=sys.stderr, flush=True)
            raise gr.Error(public_text(e), duration=ERROR_TOAST_S, print_exception=False) from None
        except Exception:  # noqa: BLE001  one request fails, the server keeps serving
            traceback.print_exc()
            raise gr.Error(INTERNAL_ERROR, duration=ERROR_TOAST_S, print_exception=False) from None

    def explain_json(video, subtitles=None, progress=gr.Progress()):
        """Explain one clip: the JSON `python -m microemo_jax.predict --out` writes (explanation, labels,
        utterances, timestamps, faces_found, ...), its files named without their server paths."""
        return public_result(explain(video, subtitles, progress))

    def explain_page(video, subtitles=None, progress=gr.Progress()):
        result = explain(video, subtitles, progress)
        rows = [[u['start'], u['end'], u['text']] for u in result['utterances']]
        return (result['explanation'], labels_html(result['labels']), result['timeline'], rows,
                details_markdown(result, service.held_out.get(result['name'])), public_result(result))

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
    import gradio as gr  # optional dependency (the web extra)
    app = build_app(service)
    app.queue(default_concurrency_limit=1, max_size=queue_size)
    allowed = [p for c in service.held_out.values() for p in (c.video, c.subtitles) if p]
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
               max_file_size=f'{service.limits.max_upload_mb:g}mb' if service.limits.max_upload_mb else None,
               allowed_paths=allowed, prevent_thread_lock=not block, quiet=quiet, show_error=False,
               theme=gr.themes.Default(), css=CSS, enable_monitoring=False)
    return app
