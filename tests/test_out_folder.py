"""Nothing outside an output folder is written or deleted, whatever a file in it says or a link in it points to."""
from __future__ import annotations

import json
import os

import pytest

from microemo_jax.demo import corpus as demo_corpus
from microemo_jax.safe_paths import OutsideFolderError, inside, remove_inside


def victims(folder, names=('victim.mp4', 'victim.srt')) -> dict[str, str]:
    """Files outside the output folder that a hostile folder would like us to touch."""
    os.makedirs(folder, exist_ok=True)
    out = {}
    for name in names:
        path = os.path.join(folder, name)
        with open(path, 'w') as f:
            f.write('keep me')
        out[path] = 'keep me'
    return out


def untouched(files: dict[str, str]) -> bool:
    return all(os.path.isfile(p) and open(p).read() == text for p, text in files.items())


@pytest.mark.parametrize('name', ['../victim', '{abs}/victim', '..', 'a/../../victim', 'ok\nname'])
def test_demo_corpus_never_deletes_what_an_old_corpus_json_names_outside(tmp_path, name):
    outside = victims(str(tmp_path / 'elsewhere'))
    out = tmp_path / 'elsewhere' / 'out'
    out.mkdir()
    name = name.format(abs=str(tmp_path / 'elsewhere'))
    (out / 'corpus.json').write_text(json.dumps({'clips': [{'name': 'demo_00000'}, {'name': name}]}))
    (out / 'demo_00000.mp4').write_text('old clip')
    with pytest.raises(ValueError, match=r'corpus\.json.*refused'):
        demo_corpus.write_corpus(str(out), 1, size=64, progress=False, speech='synthetic')
    assert untouched(outside)
    assert (out / 'demo_00000.mp4').read_text() == 'old clip'        # refused before anything was deleted


def test_demo_corpus_never_writes_through_a_planted_link(tmp_path):
    outside = victims(str(tmp_path / 'elsewhere'), ('target.mp4',))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'corpus.json').write_text(json.dumps({'clips': []}))
    os.symlink(tmp_path / 'elsewhere' / 'target.mp4', out / 'demo_00000.mp4')
    with pytest.raises(OutsideFolderError, match='leads outside'):
        demo_corpus.write_corpus(str(out), 1, size=64, progress=False, speech='synthetic')
    assert untouched(outside)


def test_demo_corpus_removes_a_listed_link_itself_not_its_target(tmp_path):
    outside = victims(str(tmp_path / 'elsewhere'), ('target.srt',))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'corpus.json').write_text(json.dumps({'clips': [{'name': 'old'}]}))
    os.symlink(tmp_path / 'elsewhere' / 'target.srt', out / 'old.srt')
    demo_corpus.write_corpus(str(out), 1, size=64, progress=False, speech='synthetic')
    assert untouched(outside) and not os.path.lexists(out / 'old.srt') and (out / 'demo_00000.mp4').is_file()


def test_inside_and_remove_inside(tmp_path):
    root = tmp_path / 'root'
    (root / 'sub').mkdir(parents=True)
    outside = victims(str(tmp_path / 'elsewhere'), ('x',))
    assert inside(str(root), 'sub', 'a.json') == str(root / 'sub' / 'a.json')
    for names in (('..', 'x'), ('/etc',), ('a/b',), ('',), ('.hidden',)):
        with pytest.raises(OutsideFolderError, match='refused'):
            inside(str(root), *names)
    os.symlink(tmp_path / 'elsewhere', root / 'link')
    with pytest.raises(OutsideFolderError, match='leads outside'):
        inside(str(root), 'link', 'x')
    with pytest.raises(OutsideFolderError, match='leads outside'):
        remove_inside(str(root), 'link', 'x')
    os.symlink(tmp_path / 'elsewhere' / 'x', root / 'sub' / 'x')
    assert remove_inside(str(root), 'sub', 'x') and untouched(outside)
    assert not remove_inside(str(root), 'sub', 'gone')


def test_prepare_never_writes_through_a_link_in_its_out_folder(tmp_path):
    """``OUT/tfds`` (or any entry prepare writes) planted as a link to another folder is refused, not followed."""
    from microemo_jax.data.records import tfds_builder
    from tests.support.records import make_record
    out, elsewhere = tmp_path / 'out', tmp_path / 'elsewhere'
    outside = victims(str(elsewhere), ('keep.txt',))
    os.makedirs(out / 'work')
    tfds_builder.write_shard(str(out / 'work'), 0, key='k', records=[make_record('a')], skips=[])
    os.symlink(elsewhere, out / 'tfds')
    with pytest.raises(OutsideFolderError, match='leads outside'):
        tfds_builder.build(str(out), num_crops=2, timestamp_tokens=5, num_mel_bins=16)
    assert untouched(outside) and os.listdir(elsewhere) == ['keep.txt']


def test_a_corrupt_checkpoint_is_never_moved_out_of_the_workdir(tmp_path):
    from microemo_jax.training.checkpointing import Checkpointer
    workdir, elsewhere = tmp_path / 'run', tmp_path / 'elsewhere'
    victims(str(elsewhere), ('keep.txt',))
    ckpt = Checkpointer(str(workdir), async_save=False)
    (workdir / 'checkpoints' / '7').mkdir(parents=True)
    os.symlink(elsewhere, workdir / 'checkpoints-corrupt')
    with pytest.raises(OutsideFolderError, match='leads outside'):
        ckpt.quarantine(7)
    ckpt.close()
    assert os.listdir(elsewhere) == ['keep.txt'] and (workdir / 'checkpoints' / '7').is_dir()
