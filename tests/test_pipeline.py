"""Tests for gt_jax/data/pipeline.py: determinism, sharding, resume."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from gt_jax.config import load_config
from gt_jax.data import pairs
from gt_jax.data import pipeline

_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs",
                       "globaltrack_r50_fpn.py")
_BOX = [12.0, 10.0, 20.0, 16.0]  # passes every Seq2Pair frame filter


def _cfg(**data):
  cfg = load_config(_CONFIG + ":tiny")
  cfg.global_batch_size = 4
  cfg.data.epoch_size = 8
  cfg.data.max_instances = 2
  cfg.data.num_workers = 0
  cfg.data.prefetch = 1
  for k, v in data.items():
    setattr(cfg.data, k, v)
  return cfg


def _write_frames(folder, n, h, w, seed):
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(n):
    p = os.path.join(folder, f"{i + 1:08d}.jpg")
    Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(p)
    paths.append(p)
  return paths


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  """Two landscape and one portrait sequence, three images."""
  root = str(tmp_path_factory.mktemp("pairs"))
  seqs = []
  for k, (h, w) in enumerate([(48, 64), (48, 64), (64, 48)]):
    paths = _write_frames(os.path.join(root, f"s{k}"), 4, h, w, k)
    seqs.append(types.SimpleNamespace(
        name=f"s{k}", frame_paths=paths, boxes=np.tile(_BOX, (4, 1)),
        valid=np.ones(4, bool), meta={}))
  imgs = []
  for k, (h, w) in enumerate([(40, 56), (56, 40), (40, 40)]):
    path = _write_frames(os.path.join(root, f"i{k}"), 1, h, w, 10 + k)[0]
    imgs.append(types.SimpleNamespace(
        path=path, height=h, width=w, meta={},
        boxes=np.array([[2, 2, 10, 12], [20, 5, 8, 8], [5, 20, 9, 9]])))
  return root, seqs, imgs


def _make(sources, cfg, weights=(0.6, 0.4), **kw):
  _, seqs, imgs = sources
  srcs = {"got": pipeline.build_pair_source("got", seqs, "sequences", cfg),
          "coco": pipeline.build_pair_source("coco", imgs, "images", cfg)}
  return pipeline.make_pipeline(srcs, {"got": weights[0],
                                       "coco": weights[1]}, cfg, **kw)


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_same_seed_same_stream(sources):
  cfg = _cfg()
  it, fp = _make(sources, cfg, process_index=0, process_count=1)
  first = _take(it, 3)
  it2, fp2 = _make(sources, _cfg(), process_index=0, process_count=1)
  _assert_batches_equal(first, _take(it2, 3))
  assert fp == fp2
  b = first[0]
  assert b["query_image"].shape[0] == 4 and b["query_image"].ndim == 4
  assert b["query_boxes"].shape == (4, 2, 4)
  assert b["instance_valid"].shape == (4, 2)
  assert b["query_hw"].shape == (4, 2) and b["query_hw"].dtype == np.int32
  # Every pair of a batch fits the batch's canvas orientation.
  for batch in first:
    hc, wc = batch["query_image"].shape[1:3]
    assert (batch["query_hw"] <= (hc, wc)).all()
    assert (batch["search_hw"] <= (hc, wc)).all()
    assert batch["instance_valid"][:, 0].all()  # no instance leaves here
  other = _cfg()
  other.seed = 1
  it3, fp3 = _make(sources, other, process_index=0, process_count=1)
  assert fp3 != fp
  assert any(not np.array_equal(x["query_image"], y["query_image"])
             for x, y in zip(first, _take(it3, 3)))


def test_process_shards_partition_the_global_batches(sources):
  cfg = _cfg()
  whole, fp1 = _make(sources, cfg, process_index=0, process_count=1)
  epoch = _take(whole, 2)  # 8 pairs = one epoch of 2 global batches
  shards = []
  for p in range(2):
    it, fp = _make(sources, cfg, process_index=p, process_count=2)
    shards.append(_take(it, 2))
    assert fp == fp1  # the global stream does not depend on the hosts
  for b in range(2):
    for p in range(2):
      for k, v in shards[p][b].items():
        assert v.shape[0] == 2  # per-host batch = 4 / 2
        np.testing.assert_array_equal(v, epoch[b][k][2 * p:2 * p + 2],
                                      err_msg=k)
  with pytest.raises(ValueError, match="not divisible by process_count=3"):
    _make(sources, cfg, process_index=0, process_count=3)
  with pytest.raises(ValueError, match="process_index 2 not in"):
    _make(sources, cfg, process_index=2, process_count=2)


def test_default_process_is_jax_process(sources):
  import jax  # pylint: disable=g-import-not-at-top
  assert jax.process_count() == 1
  it, fp = _make(sources, _cfg())
  it1, fp1 = _make(sources, _cfg(), process_index=0, process_count=1)
  assert fp == fp1
  _assert_batches_equal(_take(it, 1), _take(it1, 1))


@pytest.mark.parametrize("save_workers,restore_workers",
                         [(0, 0), (2, 2), (2, 0)])
def test_orbax_resume_mid_epoch(sources, tmp_path, save_workers,
                                restore_workers):
  import grain  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  it, fp = _make(sources, _cfg(num_workers=save_workers), process_index=0,
                 process_count=1)
  head = _take(it, 3)
  mngr = ocp.CheckpointManager(str(tmp_path / "ckpt"))
  mngr.save(3, args=ocp.args.Composite(
      data=grain.checkpoint.CheckpointSave(it)))
  mngr.wait_until_finished()
  tail = _take(it, 2)
  mngr.close()
  it.close()
  it2, fp2 = _make(sources, _cfg(num_workers=restore_workers),
                   process_index=0, process_count=1)
  ocp.CheckpointManager(str(tmp_path / "ckpt")).restore(
      3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(it2)))
  _assert_batches_equal(tail, _take(it2, 2))
  it2.close()
  assert fp == fp2  # the worker count is not part of the stream
  if save_workers == restore_workers == 2:
    # Worker processes do not change the stream.
    serial, _ = _make(sources, _cfg(num_workers=0), process_index=0,
                      process_count=1)
    _assert_batches_equal(head + tail, _take(serial, 5))


def test_restore_into_another_pipeline_is_refused(sources):
  it, _ = _make(sources, _cfg(), process_index=0, process_count=1)
  _take(it, 2)
  state = it.get_state()
  other, _ = _make(sources, _cfg(), weights=(0.1, 0.9), process_index=0,
                   process_count=1)
  with pytest.raises(ValueError, match=r"differs from the checkpointed"):
    other.set_state(state)
  same, _ = _make(sources, _cfg(), process_index=0, process_count=1)
  same.set_state(state)
  _assert_batches_equal(_take(it, 1), _take(same, 1))


def test_check_fingerprint_names_changed_fields(sources):
  _, fp = _make(sources, _cfg(), process_index=0, process_count=1)
  _, fp2 = _make(sources, _cfg(), weights=(0.5, 0.5), process_index=0,
                 process_count=1)
  _, fp3 = _make(sources, _cfg(flip_prob=0.0), process_index=0,
                 process_count=1)
  with pytest.raises(ValueError, match=r"fields: sources\)"):
    pipeline.check_fingerprint(fp, fp2)
  with pytest.raises(ValueError, match=r"fields: transform\)"):
    pipeline.check_fingerprint(fp, fp3)


def _write_got10k(root, names):
  train = os.path.join(root, "train")
  for k, name in enumerate(names):
    _write_frames(os.path.join(train, name), 3, 48, 64, 20 + k)
    with open(os.path.join(train, name, "groundtruth.txt"), "w") as f:
      f.write("12,10,20,16\n13,10,20,16\n14,11,20,16\n")
  with open(os.path.join(train, "list.txt"), "w") as f:
    f.write("\n".join(names) + "\n")


def test_make_train_pipeline_reads_config_sources(tmp_path):
  root = str(tmp_path / "GOT-10k")
  _write_got10k(root, ["GOT-10k_Train_000001", "GOT-10k_Train_000002"])
  cfg = _cfg(sources=(("got10k", root, 1.0),),
             cache_dir=str(tmp_path / "cache"))
  it, fp = pipeline.make_train_pipeline(cfg, process_index=0,
                                        process_count=1)
  batch = next(it)
  assert batch["search_image"].shape == (4, 128, 160, 3)  # landscape canvas
  # 64 x 48 frames -> s = min(160/64, 128/48) = 2.5 -> 160 x 120.
  np.testing.assert_array_equal(batch["query_hw"], [[120, 160]] * 4)
  assert '"name": "got10k"' in fp and '"items": 20' in fp


def test_make_train_pipeline_synthetic_source(tmp_path):
  from gt_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  out = str(tmp_path / "synth")
  synthetic.generate(out, num_train=2, num_val=0, num_test=0, num_frames=20,
                     num_coco_images=0, num_coco_val_images=0)
  cfg = _cfg(sources=(("synthetic", out, 1.0),),
             cache_dir=str(tmp_path / "cache"))
  it, fp = pipeline.make_train_pipeline(cfg, process_index=0,
                                        process_count=1)
  batch = next(it)
  assert batch["query_image"].shape[0] == 4
  assert batch["instance_valid"][:, 0].all()
  assert '"name": "synthetic"' in fp


@pytest.mark.parametrize("entry,match", [
    (("nope", "/x", 1.0), "unknown dataset 'nope'"),
    (("got10k", "/x"), r"data.sources\[0\]=.* is not \(name, root, weight\)"),
    (("got10k", "/x", 0.0), r"data.sources\[0\]: weight of 'got10k'"),
    (("got10k", "/does/not/exist", 1.0), "root '/does/not/exist'"),
])
def test_make_train_pipeline_config_errors(entry, match):
  with pytest.raises((ValueError, FileNotFoundError), match=match):
    pipeline.make_train_pipeline(_cfg(sources=(entry,)), process_index=0,
                                 process_count=1)


def test_sources_are_pure_functions_of_the_index(sources):
  _, seqs, _ = sources
  src = pairs.SequencePairSource(seqs, seed=3)
  order = [src[i].query_ref for i in range(len(src))]
  again = [src[i].query_ref for i in reversed(range(len(src)))][::-1]
  assert order == again  # no state: access order does not matter


def test_data_modules_do_not_import_jax():
  code = ("import sys; import gt_jax.data.pairs, gt_jax.data.transforms, "
          "gt_jax.data.pipeline; print('jax' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, timeout=60,
                       cwd=os.path.join(os.path.dirname(__file__), ".."))
  assert out.stdout.strip() == "False"
