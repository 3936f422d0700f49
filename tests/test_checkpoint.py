"""Tests of gt_jax.pth_reader, gt_jax.checkpoint and gt_jax.convert.

The `.pth` fixtures were written by real PyTorch
(tests/fixtures/make_pth_fixtures.py); these tests never import torch.
Conversions are checked element-wise with index formulas written here
(LS §12), and key names against the official list (Appendix A).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import re
import struct
import sys

import jax
import numpy as np
import pytest

from gt_jax import checkpoint
from gt_jax.checkpoint import convert
from gt_jax.checkpoint import pth_reader
from gt_jax.config import load_config
import pth_writer

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs",
                      "globaltrack_r50_fpn.py")
TINY_LEGACY = os.path.join(FIXTURES, "tiny_qg_rcnn_legacy.pth")
TINY_ZIP = os.path.join(FIXTURES, "tiny_qg_rcnn_zip.pth")


@pytest.fixture(scope="session")
def tiny_cfg():
  return load_config(CONFIG + ":tiny").model


@pytest.fixture(scope="session")
def tiny_ckpt():
  return pth_reader.load_pth(TINY_LEGACY)


def _fixture_module():
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "make_pth_fixtures", os.path.join(FIXTURES, "make_pth_fixtures.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


# --------------------------------------------------------------------------
# Independent reference: torch key -> Flax path by string rules (LS §12).

_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"),
       "running_var": ("batch_stats", "var")}


def ref_path(key: str) -> tuple[str, ...]:
  """Flax path of an official key, e.g. backbone.layer1.0.bn1.weight."""
  *mod, leaf = key.split(".")
  m = ".".join(mod)
  m = re.sub(r"layer(\d)\.(\d+)", r"layer\1_\2", m)
  m = m.replace("downsample.0", "downsample_conv")
  m = m.replace("downsample.1", "downsample_bn")
  m = re.sub(r"lateral_convs\.(\d)\.conv", r"lateral_\1", m)
  m = re.sub(r"fpn_convs\.(\d)\.conv", r"fpn_\1", m)
  m = m.replace("shared_fcs.0", "fc6").replace("shared_fcs.1", "fc7")
  m = re.sub(r"proj_(modulator|out)\.(\d)", r"proj_\1_\2", m)
  parts = tuple(m.split("."))
  is_bn = parts[-1].startswith(("bn", "downsample_bn"))
  if is_bn:
    col, name = _BN[leaf]
    return (col,) + parts + (name,)
  return ("params",) + parts + ("kernel" if leaf == "weight" else "bias",)


def check_converted(torch_w: np.ndarray, flax_w: np.ndarray, key: str,
                    roi_size: int = 7) -> None:
  """flax_w is torch_w converted (index formulas of LS §12)."""
  t = np.asarray(torch_w, np.float32)
  assert flax_w.dtype == np.float32, key
  if t.ndim == 4:  # conv: kernel[h, w, i, o] == weight[o, i, h, w].
    o, i, h, w = np.indices(t.shape)
    np.testing.assert_array_equal(flax_w[h, w, i, o], t, err_msg=key)
  elif t.ndim == 2 and key.endswith("shared_fcs.0.weight"):
    # fc6: torch column c*R*R + y*R + x; Flax row (y*R + x)*C + c.
    r = roi_size
    c = t.shape[1] // (r * r)
    for ch, y, x in [(0, 0, 0), (c - 1, r - 1, r - 1), (1, 2, 3),
                     (c // 2, r - 1, 0)]:
      np.testing.assert_array_equal(
          flax_w[(y * r + x) * c + ch, :], t[:, ch * r * r + y * r + x],
          err_msg=key)
    assert flax_w.shape == (t.shape[1], t.shape[0])
  elif t.ndim == 2:  # linear: kernel[i, o] == weight[o, i].
    o, i = np.indices(t.shape)
    np.testing.assert_array_equal(flax_w[i, o], t, err_msg=key)
  else:
    np.testing.assert_array_equal(flax_w, t, err_msg=key)


def check_variables(state: dict, variables: dict, roi_size: int = 7,
                    skip=()) -> None:
  flat = checkpoint.flatten_variables(variables)
  expected = {}
  for k, v in state.items():
    if k.endswith("num_batches_tracked") or k.startswith(skip):
      continue
    expected[ref_path(k)] = k
    check_converted(v, flat[ref_path(k)], k, roi_size)
  assert set(flat) == set(expected)


# --------------------------------------------------------------------------
# pth_reader


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_misc_fixture_values(fmt):
  obj = pth_reader.load_pth(os.path.join(FIXTURES, f"misc_{fmt}.pth"))
  assert obj["meta"] == {"epoch": 3, "tuple": (1, 2.5, "z", None, True),
                         "bytes": b"\x00\xffab", "set": {1, 2},
                         "list": [1, [2]]}
  storage = obj["storage"]  # an untyped storage: its bytes.
  assert storage.dtype == np.uint8 and storage.shape == (8,)
  np.testing.assert_array_equal(
      storage.view(np.float32), np.array([1.0, -2.0], np.float32))
  sd = obj["state_dict"]
  assert isinstance(sd, collections.OrderedDict)
  base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
  shared = np.arange(10, dtype=np.float32)
  expected = {
      "contiguous": base,
      "permuted": np.transpose(base, (2, 0, 1)),
      "sliced": base[1:, ::2, 1:],
      "shared_a": shared[2:8].reshape(2, 3),
      "shared_b": shared[::3],
      "half": np.array([0.5, -1.25, 3.0], np.float16),
      "bf16": np.array([1.0, -2.5], np.float32),
      "float64": np.array([[1.0, 2.0]]),
      "int64_scalar": np.array(1234, np.int64),
      "int32": np.array([-7, 9], np.int32),
      "uint8": np.array([0, 255], np.uint8),
      "bool": np.array([True, False]),
      "empty": np.zeros((0, 3), np.float32),
      "param": np.full((2,), 0.25, np.float32),
  }
  assert list(sd) == list(expected)
  for k, want in expected.items():
    got = sd[k]
    assert got.shape == want.shape, k
    assert got.flags["C_CONTIGUOUS"], k
    if k == "bf16":
      assert got.dtype.name == "bfloat16"
      got = got.astype(np.float32)
    else:
      assert got.dtype == want.dtype, k
    np.testing.assert_array_equal(got, want, err_msg=k)


def test_zip_big_endian(tmp_path):
  """A zip checkpoint whose `byteorder` record says big-endian."""
  import zipfile  # pylint: disable=g-import-not-at-top
  src = os.path.join(FIXTURES, "misc_zip.pth")
  little = pth_reader.load_pth(src)["state_dict"]
  # torch numbers storage records by first use; three tensors share one.
  itemsizes = [v.dtype.itemsize for k, v in little.items()
               if k not in ("permuted", "sliced", "shared_b")]
  itemsizes.append(1)  # the bare untyped storage, saved last.
  path = tmp_path / "big.pth"
  with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
    for name in zin.namelist():
      data = zin.read(name)
      if name.endswith("/byteorder"):
        data = b"big"
      elif "/data/" in name:
        item = itemsizes[int(name.rsplit("/", 1)[1])]
        data = np.frombuffer(data, f"u{item}").byteswap().tobytes()
      zout.writestr(name, data)
  big = pth_reader.load_pth(str(path))["state_dict"]
  for k, v in little.items():
    assert big[k].dtype == v.dtype and big[k].dtype.isnative, k
    np.testing.assert_array_equal(big[k], v, err_msg=k)


def test_tiny_legacy_and_zip_agree(tiny_ckpt):
  zipped = pth_reader.load_pth(TINY_ZIP)
  assert zipped["meta"] == tiny_ckpt["meta"]
  assert zipped["optimizer"] == tiny_ckpt["optimizer"]
  a, b = tiny_ckpt["state_dict"], zipped["state_dict"]
  assert list(a) == list(b)
  assert a["backbone.bn1.num_batches_tracked"].dtype == np.int64
  assert int(a["backbone.bn1.num_batches_tracked"]) == 1234
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


_ITEMSIZE = {"HalfStorage": 2, "FloatStorage": 4, "LongStorage": 8}


class _PidRecorder(pickle.Unpickler):
  """Records storage persistent ids; rebuilds nothing (test-only)."""

  def __init__(self, f):
    super().__init__(f)
    self.pids = []

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if name.endswith("Storage"):
      return name
    return lambda *args: None

  def persistent_load(self, pid):
    self.pids.append(pid)


def _legacy_sections(data: bytes):
  """Opcodes of the 4 header/object pickles with storage keys renamed by
  first use, the key list and the raw bytes of each storage, renamed."""
  f = io.BytesIO(data)
  for _ in range(3):
    pickle.load(f)
  rec = _PidRecorder(f)
  rec.load()
  keys = pickle.load(f)
  rename, itemsize = {}, {}
  for pid in rec.pids:
    rename.setdefault(pid[2], f"key{len(rename)}")
    itemsize[pid[2]] = _ITEMSIZE[pid[1]]
  raw = {}
  for k in keys:
    (n,) = struct.unpack("<q", f.read(8))
    raw[rename[k]] = f.read(n * itemsize[k])
  assert not f.read()
  f.seek(0)
  ops = []
  for _ in range(4):  # (torch sorts the key list; its order is free.)
    for op, arg, _ in pickletools.genops(f):
      ops.append((op.name, rename.get(arg, arg) if isinstance(arg, str)
                  else arg))
  return ops, sorted(rename[k] for k in keys), raw


def test_writer_matches_torch_legacy_bytes(tiny_ckpt):
  """tests/pth_writer.py writes what torch.save wrote, up to storage keys."""
  with open(TINY_LEGACY, "rb") as f:
    torch_bytes = f.read()
  ops_t, keys_t, raw_t = _legacy_sections(torch_bytes)
  ops_w, keys_w, raw_w = _legacy_sections(pth_writer.dumps_legacy(tiny_ckpt))
  assert len(ops_t) == len(ops_w)
  assert ops_t == ops_w
  assert keys_t == keys_w
  assert raw_t == raw_w


def _assert_reads_as(path, obj, expected):
  """`path` reads back with `obj`'s meta and exactly the `expected` tensors."""
  got = pth_reader.load_pth(path)
  assert got["meta"] == obj["meta"]
  assert list(got["state_dict"]) == list(expected)
  for k, want in expected.items():
    assert got["state_dict"][k].dtype == want.dtype, k
    np.testing.assert_array_equal(got["state_dict"][k], want, err_msg=k)


def test_writer_views_and_strides_roundtrip(tmp_path):
  """Values torch.load returns for the writer's output (make_pth_fixtures)."""
  obj, expected = _fixture_module().writer_object()
  path = str(tmp_path / "w.pth")
  pth_writer.write_legacy_pth(path, obj)
  _assert_reads_as(path, obj, expected)


def _malicious_legacy(tmp_path):
  """A legacy file whose object pickle calls a function on load."""
  marker = tmp_path / "pwned"
  f = io.BytesIO()
  for header in (pth_writer.MAGIC_NUMBER, pth_writer.PROTOCOL_VERSION,
                 pth_writer.SYS_INFO):
    pickle.dump(header, f, protocol=2)
  f.write(b"\x80\x02cbuiltins\nopen\nq\x00X" +
          struct.pack("<I", len(str(marker))) + str(marker).encode() +
          b"X\x01\x00\x00\x00w\x86R.")
  pickle.dump([], f, protocol=2)
  path = tmp_path / "evil.pth"
  path.write_bytes(f.getvalue())
  return str(path), marker


def test_refuses_globals_outside_whitelist(tmp_path):
  path, marker = _malicious_legacy(tmp_path)
  with pytest.raises(pth_reader.PthFormatError,
                     match=r"evil\.pth.*builtins\.open.*not whitelisted"):
    pth_reader.load_pth(path)
  assert not marker.exists()


@pytest.mark.parametrize("src", [TINY_LEGACY, TINY_ZIP])
@pytest.mark.parametrize("damage", ["truncate_half", "truncate_tail",
                                    "flip_bytes", "empty"])
def test_corrupt_and_truncated_files(tmp_path, src, damage):
  with open(src, "rb") as f:
    data = bytearray(f.read())
  if damage == "truncate_half":
    data = data[:len(data) // 2]
  elif damage == "truncate_tail":
    data = data[:-3]
  elif damage == "flip_bytes":  # inside the object pickle / zip header.
    for i in range(150, 190):
      data[i] ^= 0x5A
  else:
    data = b""
  path = tmp_path / f"broken_{damage}.pth"
  path.write_bytes(bytes(data))
  with pytest.raises(pth_reader.PthFormatError,
                     match=f"broken_{damage}.pth"):
    pth_reader.load_pth(str(path))


def test_tensor_outside_its_storage(tmp_path):
  storage = pth_writer.Storage(np.arange(6, dtype=np.float32))
  path = str(tmp_path / "strides.pth")
  pth_writer.write_legacy_pth(
      path, {"w": pth_writer.Tensor(storage, 2, (2, 3), (3, 1))})
  with pytest.raises(pth_reader.PthFormatError,
                     match=r"strides\.pth.*reads past its storage of 6"):
    pth_reader.load_pth(path)


def test_missing_file():
  with pytest.raises(FileNotFoundError, match="nope.pth"):
    pth_reader.load_pth("/nonexistent/nope.pth")


def test_tar_layout(tmp_path):
  """The PyTorch <= 0.1.9 tar layout (writer checked against torch.load)."""
  obj, expected = _fixture_module().writer_object()
  del obj["state_dict"]["viewed"], expected["viewed"]
  path = str(tmp_path / "old.pth")
  pth_writer.write_tar_pth(path, obj)
  _assert_reads_as(path, obj, expected)
  # A tar archive without the tensor records is reported, not crashed on.
  import tarfile  # pylint: disable=g-import-not-at-top
  cut = tmp_path / "cut.pth"
  with tarfile.open(path) as src, tarfile.open(cut, "w") as dst:
    for m in src.getmembers():
      if m.name != "tensors":
        dst.addfile(m, src.extractfile(m))
  with pytest.raises(pth_reader.PthFormatError, match="cut.pth.*'tensors'"):
    pth_reader.load_pth(str(tmp_path / "cut.pth"))


# --------------------------------------------------------------------------
# Name map


def _appendix_a():
  """[(key, shape)] of the official checkpoint, from the reference list."""
  out = []
  with open(os.path.join(FIXTURES, "official_state_dict_keys.txt")) as f:
    for line in f:
      if line.startswith("#"):
        continue
      key, shape = line.split()
      out.append((key, () if shape == "scalar" else
                  tuple(int(s) for s in shape.split(","))))
  return out


def test_layout_is_appendix_a():
  official = _appendix_a()
  assert len(official) == 374
  assert sum(k.endswith("num_batches_tracked") for k, _ in official) == 53
  want = [(k, s) for k, s in official if not k.endswith("num_batches_tracked")]
  layout = checkpoint.checkpoint_layout()
  assert [(e.key, e.torch_shape) for e in layout] == want
  assert [e.path for e in layout] == [ref_path(k) for k, _ in want]


def test_layout_group_sizes_match_table():
  # LS §12 table: keys (with num_batches_tracked) and parameter counts.
  table = {"backbone": (318, 23_508_032), "neck": (16, 3_344_384),
           "rpn_head": (6, 593_935), "bbox_head": (8, 13_905_930),
           "rpn_modulator": (20, 16_386_560),
           "rcnn_modulator": (6, 1_245_952)}
  keys, params, stats = collections.Counter(), collections.Counter(), 0
  for e in checkpoint.checkpoint_layout():
    group = e.key.split(".")[0]
    keys[group] += 1 + e.key.endswith("running_var")  # + its nbt.
    if e.path[0] == "params":
      params[group] += int(np.prod(e.torch_shape))
    else:
      stats += int(np.prod(e.torch_shape))
  assert {g: (keys[g], params[g]) for g in table} == table
  assert stats + 53 == 53_173  # BN buffer elements incl. the 53 counters.


@pytest.mark.parametrize("variant", ["tiny", "default"])
def test_layout_matches_flax_model(variant):
  from gt_jax.model import build  # pylint: disable=g-import-not-at-top
  cfg = load_config(CONFIG + ("" if variant == "default" else ":tiny"))
  model = build.build_model(cfg.model)
  shapes = jax.eval_shape(lambda k: build.init_variables(model, k),
                          jax.random.key(0))
  model_shapes = {p: tuple(v.shape) for p, v in
                  checkpoint.flatten_variables(shapes).items()}
  assert checkpoint.expected_variable_shapes(cfg.model) == model_shapes
  if variant == "default":  # model_cfg=None means the official model.
    assert checkpoint.expected_variable_shapes(None) == model_shapes


def test_model_cfg_errors(tiny_cfg):
  cfg = tiny_cfg.copy_and_resolve_references()
  cfg.rpn_modulator_fx = True
  with pytest.raises(ValueError, match="rpn_modulator_fx"):
    checkpoint.checkpoint_layout(cfg)
  cfg.rpn_modulator_fx = False
  cfg.depth = 42
  with pytest.raises(ValueError, match="model.depth=42"):
    checkpoint.checkpoint_layout(cfg)


# --------------------------------------------------------------------------
# Loaders


@pytest.mark.parametrize("path", [TINY_LEGACY, TINY_ZIP])
def test_load_tiny_official_layout(path, tiny_cfg, tiny_ckpt):
  variables = checkpoint.load_mmdet_weights(path, tiny_cfg)
  assert set(variables) == {"params", "batch_stats"}
  check_variables(tiny_ckpt["state_dict"], variables)


def test_module_prefix_bare_dict_and_no_counters(tmp_path, tiny_cfg,
                                                 tiny_ckpt):
  sd = collections.OrderedDict(
      ("module." + k, v) for k, v in tiny_ckpt["state_dict"].items()
      if not k.endswith("num_batches_tracked"))
  path = str(tmp_path / "bare.pth")
  pth_writer.write_legacy_pth(path, sd)  # a bare state dict, no 'meta'.
  variables = checkpoint.load_mmdet_weights(path, tiny_cfg)
  check_variables(tiny_ckpt["state_dict"], variables)


def test_mismatches_reported_together(tmp_path, tiny_cfg, tiny_ckpt):
  sd = collections.OrderedDict(tiny_ckpt["state_dict"])
  del sd["neck.fpn_convs.2.conv.bias"]
  del sd["backbone.layer2.0.downsample.1.running_var"]
  sd["rpn_head.rpn_cls.weight"] = np.zeros((5, 16, 1, 1), np.float32)
  sd["bbox_head.fc_cls.bias"] = np.zeros(2, np.int64)
  sd["roi_head.extra.weight"] = np.zeros(3, np.float32)
  path = str(tmp_path / "bad.pth")
  pth_writer.write_legacy_pth(path, {"meta": {}, "state_dict": sd})
  with pytest.raises(checkpoint.CheckpointMismatchError) as err:
    checkpoint.load_mmdet_weights(path, tiny_cfg)
  e = err.value
  assert [m.split()[0] for m in e.missing] == [
      "backbone.layer2.0.downsample.1.running_var",
      "neck.fpn_convs.2.conv.bias"]
  assert e.unexpected == ["roi_head.extra.weight"]
  assert [m.split()[0] for m in e.misshaped] == ["rpn_head.rpn_cls.weight",
                                                 "bbox_head.fc_cls.bias"]
  msg = str(e)
  assert "bad.pth" in msg and "(5, 16, 1, 1)" in msg and "(3, 16, 1, 1)" in msg
  for name in ("neck.fpn_convs.2.conv.bias", "roi_head.extra.weight",
               "downsample.1.running_var", "fc_cls.bias"):
    assert name in msg
  # The tiny checkpoint does not fit the official model: every key differs.
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match="another model config.*missing"):
    checkpoint.load_mmdet_weights(TINY_LEGACY)


def test_not_a_state_dict(tmp_path):
  path = str(tmp_path / "list.pth")
  pth_writer.write_legacy_pth(path, [np.zeros(2, np.float32)])
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match="list.pth.*not a state dict"):
    checkpoint.load_mmdet_weights(path)


def test_official_size_random_checkpoint_without_torch(tmp_path):
  """All 374 keys of Appendix A with full ResNet-50 shapes."""
  rng = np.random.default_rng(0)
  sd = collections.OrderedDict()
  for key, shape in _appendix_a():
    if key.endswith("num_batches_tracked"):
      sd[key] = np.array(rng.integers(0, 10**6), np.int64)
    else:
      sd[key] = rng.standard_normal(shape, dtype=np.float32)
  path = str(tmp_path / "qg_rcnn_r50_fpn_random.pth")
  pth_writer.write_legacy_pth(
      path, {"meta": {"epoch": 12, "CLASSES": ("target",)}, "state_dict": sd})
  variables = checkpoint.load_mmdet_weights(path)
  assert "torch" not in sys.modules
  flat = checkpoint.flatten_variables(variables)
  assert len(flat) == 321
  assert checkpoint.parameter_counts(variables) == {
      "backbone": 23_508_032, "neck": 3_344_384, "rpn_head": 593_935,
      "bbox_head": 13_905_930, "rpn_modulator": 16_386_560,
      "rcnn_modulator": 1_245_952}
  for key in ("backbone.conv1.weight", "backbone.layer4.2.conv2.weight",
              "backbone.layer3.0.downsample.0.weight",
              "backbone.layer1.0.bn3.running_var",
              "neck.lateral_convs.3.conv.weight",
              "rpn_modulator.proj_modulator.4.weight",
              "rcnn_modulator.proj_out.weight", "bbox_head.shared_fcs.0.weight",
              "bbox_head.shared_fcs.1.weight", "bbox_head.fc_reg.weight",
              "bbox_head.fc_cls.bias"):
    check_converted(sd[key], flat[ref_path(key)], key)
  assert flat[("params", "bbox_head", "fc6", "kernel")].shape == (12544, 1024)
  assert flat[("params", "rpn_modulator", "proj_modulator_0",
               "kernel")].shape == (7, 7, 256, 256)


def _torchvision_state(tiny_ckpt):
  sd = collections.OrderedDict(
      (k.removeprefix("backbone."), v)
      for k, v in tiny_ckpt["state_dict"].items() if k.startswith("backbone."))
  sd["fc.weight"] = np.ones((10, 64), np.float32)  # ImageNet head: ignored.
  sd["fc.bias"] = np.ones(10, np.float32)
  return sd


def test_torchvision_resnet(tmp_path, tiny_cfg, tiny_ckpt):
  sd = _torchvision_state(tiny_ckpt)
  path = str(tmp_path / "resnet.pth")
  pth_writer.write_legacy_pth(path, sd)
  variables = checkpoint.load_torchvision_resnet50(path, tiny_cfg)
  assert set(variables["params"]) == {"backbone"}
  backbone = {k: v for k, v in tiny_ckpt["state_dict"].items()
              if k.startswith("backbone.")}
  check_variables(backbone, variables)
  del sd["layer3.0.conv2.weight"]
  pth_writer.write_legacy_pth(path, sd)
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"layer3\.0\.conv2\.weight"):
    checkpoint.load_torchvision_resnet50(path, tiny_cfg)


def _faster_rcnn_state(tiny_ckpt):
  """The tiny checkpoint as a COCO detector: 81 classes, no modulators."""
  sd = collections.OrderedDict(
      (k, v) for k, v in tiny_ckpt["state_dict"].items()
      if not k.startswith(("rpn_modulator", "rcnn_modulator")))
  sd["bbox_head.fc_cls.weight"] = np.ones((81, 32), np.float32)
  sd["bbox_head.fc_cls.bias"] = np.ones(81, np.float32)
  sd["bbox_head.fc_reg.weight"] = np.ones((324, 32), np.float32)
  sd["bbox_head.fc_reg.bias"] = np.ones(324, np.float32)
  return sd


def test_mmdet_faster_rcnn(tmp_path, tiny_cfg, tiny_ckpt):
  sd = _faster_rcnn_state(tiny_ckpt)
  path = str(tmp_path / "faster_rcnn.pth")
  pth_writer.write_legacy_pth(path, {"meta": {}, "state_dict": sd})
  variables, scratch = checkpoint.load_mmdet_faster_rcnn(path, tiny_cfg)
  kept = {k: v for k, v in sd.items() if not k.startswith(
      ("bbox_head.fc_cls", "bbox_head.fc_reg"))}
  check_variables(kept, variables)
  all_paths = checkpoint.expected_variable_shapes(tiny_cfg)
  want_scratch = sorted(
      "/".join(p) for p in all_paths
      if p[1] in ("rpn_modulator", "rcnn_modulator")
      or p[2] in ("fc_cls", "fc_reg"))
  assert scratch == want_scratch
  assert len(scratch) == 4 + 2 * 5 * 2 + 3 * 2
  # Outside the class-specific layers a mismatch is still an error.
  sd["neck.fpn_convs.0.conv.weight"] = np.ones((16, 16, 1, 1), np.float32)
  pth_writer.write_legacy_pth(path, {"meta": {}, "state_dict": sd})
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match=r"fpn_convs\.0\.conv\.weight"):
    checkpoint.load_mmdet_faster_rcnn(path, tiny_cfg)


def test_merge_variables():
  base = {"params": {"a": {"kernel": np.zeros((2, 3))},
                     "b": {"bias": np.zeros(3)}}}
  part = {"params": {"a": {"kernel": np.ones((2, 3))}}}
  merged = checkpoint.merge_variables(base, part)
  np.testing.assert_array_equal(merged["params"]["a"]["kernel"], 1.0)
  np.testing.assert_array_equal(merged["params"]["b"]["bias"], 0.0)
  np.testing.assert_array_equal(base["params"]["a"]["kernel"], 0.0)
  bad = {"params": {"a": {"kernel": np.ones((3, 2))}, "c": {"x": np.ones(1)}}}
  with pytest.raises(ValueError, match=r"params/a/kernel \(3, 2\).*params/c/x"):
    checkpoint.merge_variables(base, bad)


# --------------------------------------------------------------------------
# orbax and the command line


def test_save_restore_roundtrip(tmp_path, tiny_cfg):
  variables = checkpoint.load_mmdet_weights(TINY_ZIP, tiny_cfg)
  d = tmp_path / "ckpt"
  checkpoint.save_variables(d, variables, info={"format": "globaltrack"})
  restored = checkpoint.restore_variables(d)
  want = checkpoint.flatten_variables(variables)
  got = checkpoint.flatten_variables(restored)
  assert set(got) == set(want)
  for p in want:
    assert isinstance(got[p], np.ndarray) and got[p].dtype == np.float32
    np.testing.assert_array_equal(got[p], want[p], err_msg=str(p))
  assert checkpoint.restore_info(d) == {"format": "globaltrack"}
  with pytest.raises(FileExistsError, match="ckpt"):
    checkpoint.save_variables(d, variables)
  checkpoint.save_variables(d, {"params": {"x": np.ones(2, np.float32)}},
                            overwrite=True)
  np.testing.assert_array_equal(checkpoint.restore_variables(d)["params"]["x"],
                                [1.0, 1.0])
  assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp dirs.
  with pytest.raises(FileNotFoundError, match="absent"):
    checkpoint.restore_variables(tmp_path / "absent")
  (tmp_path / "plain").mkdir()
  with pytest.raises(ValueError, match="plain.*not a checkpoint"):
    checkpoint.restore_variables(tmp_path / "plain")


def test_convert_cli(tmp_path, tiny_cfg, tiny_ckpt, capsys):
  out = tmp_path / "converted"
  rc = convert.main([TINY_LEGACY, str(out), "--config", CONFIG + ":tiny"])
  assert rc == 0
  assert "wrote" in capsys.readouterr().out
  check_variables(tiny_ckpt["state_dict"], checkpoint.restore_variables(out))
  info = checkpoint.restore_info(out)
  assert info["format"] == "globaltrack"
  assert info["initialise_from_scratch"] == []

  src = str(tmp_path / "faster_rcnn.pth")
  pth_writer.write_legacy_pth(src, {"state_dict": _faster_rcnn_state(
      tiny_ckpt)})
  out2 = tmp_path / "coco_init"
  rc = convert.main([src, str(out2), "--format", "mmdet_faster_rcnn",
                     "--config", CONFIG + ":tiny"])
  assert rc == 0
  info = checkpoint.restore_info(out2)
  assert "params/bbox_head/fc_cls/kernel" in info["initialise_from_scratch"]
  restored = checkpoint.flatten_variables(checkpoint.restore_variables(out2))
  assert ("params", "rpn_modulator", "proj_out_0", "kernel") not in restored
  assert ("params", "bbox_head", "fc6", "kernel") in restored

  # Errors: a clear message naming the file, exit status 1.
  rc = convert.main([TINY_LEGACY, str(tmp_path / "x")])  # official model.
  assert rc == 1
  assert "tiny_qg_rcnn_legacy.pth" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    convert.main([TINY_LEGACY, str(out), "--format", "caffe"])


def test_numpy_scalars_in_meta(tmp_path):
  path = str(tmp_path / "meta.pth")
  meta = {"hook_msgs": {"best_score": np.float64(0.625), "it": np.int64(3)}}
  pth_writer.write_legacy_pth(path, {"meta": meta, "state_dict": {}})
  got = pth_reader.load_pth(path)["meta"]["hook_msgs"]
  assert got == {"best_score": 0.625, "it": 3}
  assert got["best_score"].dtype == np.float64
  # An object-dtype scalar would need arbitrary classes: refused.
  pth_writer.write_legacy_pth(path, {"meta": np.dtype(object)})
  with pytest.raises(pth_reader.PthFormatError, match="dtype"):
    pth_reader.load_pth(path)


def test_corrupt_storage_count(tmp_path):
  data = bytearray(pth_writer.dumps_legacy(
      {"w": np.arange(4, dtype=np.float32)}))
  f = io.BytesIO(bytes(data))
  for _ in range(5):
    for _ in pickletools.genops(f):
      pass
  pos = f.tell()  # the int64 element count of the only storage.
  assert struct.unpack("<q", data[pos:pos + 8]) == (4,)
  for count in (2**60, -1, 3):
    data[pos:pos + 8] = struct.pack("<q", count)
    path = tmp_path / "count.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(pth_reader.PthFormatError,
                       match=r"count\.pth.*(left in the file|elements)"):
      pth_reader.load_pth(str(path))
