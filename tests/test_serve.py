"""serve: the web demo on 127.0.0.1, driven through its /explain API (gradio_client) and in a real browser
(Playwright for Python with Debian's Chromium, /usr/bin/chromium): an uploaded clip gets its explanation,
labels, timeline and utterances; a bad upload gets a message and the server keeps serving; nothing leaves
the machine.

The model is the shared tiny random one (support.inference). Random weights write random text, so the
test wraps the real explainer to end every answer with a fixed label sentence: the page then has labels to
show, and they still come out of the real label extraction.
"""
import ipaddress
import os
import re
import shutil
import socket
import time
from types import SimpleNamespace

import pytest

from tests.support.inference import corpus, params_dir  # noqa: F401  (shared fixtures)

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']
SENTENCE = " The character's emotional state is happy, surprised."
WAIT_MS = 90_000  # the first explanation compiles the model (seconds with a warm compile cache)

pytestmark = [pytest.mark.integration,  # a real server, its HTTP API and a browser
              pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore:.*:Warning:gradio.queueing')]


def _loopback(host) -> bool:
    if host in ('localhost', '', None):
        return True
    try:
        return ipaddress.ip_address(str(host).split('%')[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope='module')
def outside(request):
    """Every non-loopback address this process connects to or looks up while the module runs (must stay empty)."""
    seen = []
    mp = pytest.MonkeyPatch()
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(address):
        if isinstance(address, tuple) and not _loopback(address[0]):
            seen.append(address)

    def guarded_connect(self, address):
        check(address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        check(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        check((host,))
        return getaddrinfo(host, *args, **kwargs)

    mp.setattr(socket.socket, 'connect', guarded_connect)
    mp.setattr(socket.socket, 'connect_ex', guarded_connect_ex)
    mp.setattr(socket, 'getaddrinfo', guarded_getaddrinfo)
    yield seen
    mp.undo()
    assert not seen, f'the server or client reached outside the machine: {seen}'


class _WithLabels:
    """The real explainer, with SENTENCE appended to each answer (see the module docstring)."""

    def __init__(self, explainer):
        self.inner = explainer

    def explain(self, records, **kwargs):
        return [text + SENTENCE for text in self.inner.explain(records, **kwargs)]

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    """A freshly generated talking-face clip with subtitles (my_clip.mp4/.srt) and two text files, one named .mp4."""
    from microemo_jax.demo.corpus import write_corpus
    root = tmp_path_factory.mktemp('uploads')
    write_corpus(str(root / 'gen'), 1, seed=11, size=96, workers=1, progress=False)
    shutil.copy(root / 'gen' / 'demo_00000.mp4', root / 'my_clip.mp4')
    shutil.copy(root / 'gen' / 'demo_00000.srt', root / 'my_clip.srt')
    (root / 'notes.mp4').write_text('these are my notes, not a video\n')
    (root / 'notes.txt').write_text('these are my notes, not a video\n')
    return SimpleNamespace(video=str(root / 'my_clip.mp4'), srt=str(root / 'my_clip.srt'),
                           fake_video=str(root / 'notes.mp4'), text=str(root / 'notes.txt'))


@pytest.fixture(scope='module')
def server(params_dir, tmp_path_factory, outside):  # noqa: F811
    """The app on a free loopback port, in this process; shut down at the end of the module."""
    from microemo_jax.inference.videos import Predictor
    from microemo_jax.web.page import launch
    from microemo_jax.web.service import Service
    from microemo_jax.web.upload import Limits
    mp = pytest.MonkeyPatch()
    mp.setenv('GRADIO_TEMP_DIR', str(tmp_path_factory.mktemp('gradio')))
    predictor = Predictor(params_dir, max_new_tokens=6)
    predictor.explainer = _WithLabels(predictor.explainer)
    service = Service(predictor, limits=Limits(max_upload_mb=5, max_seconds=30),
                            workdir=str(tmp_path_factory.mktemp('serve')))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    app = launch(service, host='127.0.0.1', port=port, block=False, quiet=True)
    try:
        yield SimpleNamespace(url=f'http://127.0.0.1:{port}/', service=service, app=app)
    finally:
        app.close()
        service.close()
        mp.undo()


@pytest.fixture(scope='module')
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=60_000)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the app; every request it makes must go to the server."""
    context = browser.new_context(viewport={'width': 1280, 'height': 900})
    p = context.new_page()
    requests = []
    p.on('request', lambda r: requests.append(r.url))
    p.goto(server.url, wait_until='load', timeout=60_000)
    yield p
    context.close()
    away = [u for u in requests if not re.match(r'(data|blob):|http://127\.0\.0\.1:\d+/', u)]
    assert not away, f'the page requested outside the server: {away[:5]}'


def _subtitle_texts(path):
    from microemo_jax.data.speech.subtitles import read_subtitles
    return [u.text for u in read_subtitles(path)]


def test_api_explain_returns_predicts_json(server, clips):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from microemo_jax.inference.videos import find_videos
    client = Client(server.url, verbose=False)
    result = client.predict(handle_file(clips.video), handle_file(clips.srt), api_name='/explain')
    assert set(result) >= {'name', 'explanation', 'labels', 'utterances', 'timestamps', 'faces_found',
                           'face_frames', 'generation', 'timeline'}
    assert result['name'] == 'my_clip' and result['explanation'].endswith(SENTENCE)
    assert result['labels'] == ['happy', 'surprised']
    assert result['utterance_source'] == 'subtitles'
    assert [u['text'] for u in result['utterances']] == _subtitle_texts(clips.srt)
    assert result['faces_found'] > 0 and result['timeline'] == 'my_clip.mp4.timeline.png'   # names, not server paths
    assert result['video'] == 'my_clip.mp4' and '/' not in result['params']
    # the same as predict gives for the same file (same model, greedy decoding)
    direct, = server.service.predictor.explain_clips(find_videos(clips.video, clips.srt))
    for key in ('explanation', 'labels', 'utterances', 'timestamps', 'faces_found', 'face_frames', 'generation'):
        assert result[key] == direct[key], key

    # subtitles are optional; a bad upload is this caller's error, with the file's name
    assert client.predict(handle_file(clips.video), api_name='/explain')['utterance_source'] != 'subtitles'
    with pytest.raises(AppError, match='notes.mp4 cannot be read as a video'):
        client.predict(handle_file(clips.fake_video), None, api_name='/explain')
    # several callers at once are queued, and each gets its own answer
    jobs = [client.submit(handle_file(clips.video), handle_file(clips.srt), api_name='/explain') for _ in range(2)]
    assert [job.result(timeout=120)['explanation'] for job in jobs] == [result['explanation']] * 2


def test_limits_are_checked_before_any_work(server, clips, tmp_path):
    from microemo_jax.web.service import Service
    from microemo_jax.web.upload import Limits, ServeError
    service = server.service
    with pytest.raises(ServeError, match='Upload a video'):
        service.check(None, None)
    with pytest.raises(ServeError, match=r'notes\.txt is not a video file'):
        service.check(clips.text, None)
    with pytest.raises(ServeError, match=r'notes\.txt is not a subtitle file'):
        service.check(clips.video, clips.text)
    big = tmp_path / 'big.mp4'
    with open(big, 'wb') as f:
        f.truncate(6_000_000)
    with pytest.raises(ServeError, match=r'big\.mp4 is 6\.0 MB; this server takes videos up to 5 MB'):
        service.check(str(big), None)
    short = Service.__new__(Service)
    short.limits = Limits(max_seconds=1.0)
    with pytest.raises(ServeError, match=r'my_clip\.mp4 is \d+\.\d s long; .* up to 1 s'):
        short.check(clips.video, None)


def test_no_face_is_refused_when_faces_are_required(server, tmp_path):
    import numpy as np

    from microemo_jax.web.service import Service
    from microemo_jax.web.upload import Limits, ServeError
    from tests.support.media import textured_background, write_video
    frames = np.stack([textured_background(96, 96, seed=i) for i in range(20)])
    video = write_video(tmp_path / 'wall.mp4', frames, fps=10)
    strict = Service(server.service.predictor, limits=Limits(require_faces=True),
                           workdir=str(tmp_path / 'serve'))
    with pytest.raises(ServeError, match=r'wall\.mp4: no face found in any sampled frame'):
        strict.explain(video)


def test_model_panel_and_held_out_clips(server, corpus, tmp_path):  # noqa: F811
    from microemo_jax.web.model_facts import find_scores, load_summary, model_markdown
    from microemo_jax.web.upload import Limits, ServeError
    service = server.service
    assert 'Trained on' in service.model_markdown and '`raw`' in service.model_markdown
    assert str(corpus[1]) not in service.model_markdown                # names, never server paths
    # (other test modules may have evaluated this session's shared folder: the panel without scores is built here)
    assert 'no evaluation found' in model_markdown(service.predictor.folder.path, service.predictor.folder.cfg,
                                                   service.info, None, {}, Limits())
    assert service.held_out and all(os.path.isfile(c.video) and c.gold for c in service.held_out.values())
    # evaluate's summary.json: found beside the parameter folder when it names it, shown with the baseline
    summary = {'split': 'validation', 'params': server.service.predictor.folder.path, 'n_videos': 2,
               'scores': {'accuracy_s': 0.25, 'recall_s': 0.5, 'avg': 0.375, 'n': 2},
               'baseline': {'label': 'happy', 'scores': {'accuracy_s': 0.5, 'recall_s': 0.25, 'avg': 0.375, 'n': 2}}}
    import json
    out = tmp_path / 'evaluate'
    out.mkdir()
    (out / 'summary.json').write_text(json.dumps(summary))
    assert find_scores(service.predictor.folder.path, str(out)) == str(out / 'summary.json')
    text = model_markdown(service.predictor.folder.path, service.predictor.folder.cfg, service.info,
                          load_summary(str(out / 'summary.json')), {}, Limits())
    assert 'Scores on the validation split' in text and '| model | 0.250 | 0.500 | 0.375 |' in text
    assert 'majority label (happy)' in text
    with pytest.raises(ServeError, match='no such file'):
        find_scores(service.predictor.folder.path, str(tmp_path / 'nope.json'))


@pytest.mark.slow
def test_page_explains_an_uploaded_clip(server, page, clips, tmp_path):
    from playwright.sync_api import expect
    page.locator('#video input[type=file]').set_input_files(clips.video)
    page.locator('#subtitles input[type=file]').set_input_files(clips.srt)
    page.locator('#explain').click()
    explanation = page.locator('#explanation textarea')
    expect(explanation).to_have_value(re.compile(re.escape(SENTENCE.strip()) + '$'), timeout=WAIT_MS)
    expect(page.locator('#labels .chip')).to_have_text(['happy', 'surprised'])
    timeline = page.locator('#timeline img')
    expect(timeline).to_be_visible()
    page.wait_for_function("() => document.querySelector('#timeline img')?.naturalWidth > 300", timeout=30_000)
    for text in _subtitle_texts(clips.srt):
        expect(page.locator('#utterances')).to_contain_text(text)
    expect(page.locator('#details')).to_contain_text('my_clip')
    expect(page.locator('#model')).to_contain_text('Trained on')
    shot = tmp_path / 'explained.png'
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    # what the page shows is what predict gives for this file
    from microemo_jax.inference.videos import find_videos
    direct, = server.service.predictor.explain_clips(find_videos(clips.video, clips.srt))
    assert explanation.input_value() == direct['explanation']


@pytest.mark.slow
def test_page_bad_upload_shows_the_error_and_the_server_keeps_serving(server, page, clips, tmp_path):
    from playwright.sync_api import expect
    # a text file named .mp4 gets past the page's file-type check; the server names it and says why
    page.locator('#video input[type=file]').set_input_files(clips.fake_video)
    page.locator('#explain').click()
    error = page.get_by_text('notes.mp4 cannot be read as a video')
    expect(error).to_be_visible(timeout=WAIT_MS)
    assert 'gradio' not in error.inner_text()  # the upload's name, not the server's path
    page.screenshot(path=str(tmp_path / 'error.png'), full_page=True)
    # the server keeps serving: a held-out clip picked from the list is explained next
    name = sorted(server.service.held_out)[0]
    page.locator('#held_out input').click()
    page.get_by_role('option', name=name).click()
    # the player shows the picked clip (not still the refused upload) before the request is sent
    expect(page.locator('#video video')).to_have_attribute('src', re.compile(re.escape(name)), timeout=30_000)
    page.locator('#explain').click()
    expect(page.locator('#details')).to_contain_text(name, timeout=WAIT_MS)
    expect(page.locator('#details')).to_contain_text('its gold labels')
    expect(page.locator('#explanation textarea')).to_have_value(re.compile(re.escape(SENTENCE.strip())))
    page.screenshot(path=str(tmp_path / 'held_out.png'), full_page=True)


def test_cli_refuses_a_folder_that_is_not_a_model(tmp_path):
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t0 = time.time()
    out = subprocess.run([sys.executable, '-m', 'microemo_jax.serve', '--params', str(tmp_path)], cwd=repo,
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': repo})
    assert out.returncode != 0 and 'not a microemo-jax parameter folder' in out.stderr
    assert 'Traceback' not in out.stderr and time.time() - t0 < 120
