"""Training pairs: which two images and which boxes (LS §13.4).

A pair is a (query, search) couple of images with M corresponding instance
boxes. Every sampler here is a pure function of `(seed, index)`: `source[i]`
returns the same pair every time, in any process, with no hidden state (the
official `PairWrapper` reshuffles itself inside `__getitem__`; we do not).

* `ImagePairSource` (COCO, official `Image2Pair`): query and search are the
  same image; all its objects (a random 8 if more) are the instances.
* `SequencePairSource` (GOT-10k, LaSOT, official `Seq2Pair`): two valid frames
  of one sequence, one instance (M = 1).
* `MixedPairSource`: the weighted mixture (official 0.4/0.4/0.2) with a fixed
  epoch size, grouped by orientation (below).

Orientation grouping. A jitted step needs one canvas shape per global batch,
so, like mmdet's `GroupSampler`, a whole global batch holds only landscape
(W > H) or only portrait pairs: global batch `b` (indices
`[b*G, (b+1)*G)`) draws its orientation once, then every item in it draws a
dataset and an item of that orientation. A process that takes the strided
shard `[p::P]` of the stream therefore still gets homogeneous local batches.

Boxes leave this module as legacy `xyxy` (x2 = x + w - 1, inclusive) in
original image pixels, converted and bounded by the numpy-only
`gt_jax.geometry` (`gt_jax/boxes.py` holds the jnp twins, which `data/` may
not import).

Records are duck-typed (see docs/internals.md): sequences have `name`,
`frame_paths`, `boxes` (N, 4) xywh, `valid`, `meta`; images have `path`,
`height`, `width`, `boxes` (M, 4) xywh, `meta`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from gt_jax.boxes import np_boxes
from gt_jax.data.errors import DatasetLayoutError

# Official Seq2Pair frame filters (LS §13.4; neuron `Seq2Pair._filter`).
_MIN_AREA = 20.0  # area > 20
_MIN_SIDE, _MAX_SIDE = 10.0, 960.0  # 10 <= w, h <= 960
_MIN_REL, _MAX_REL = 0.01, 0.75  # w/W, h/H in [0.01, 0.75]
_MIN_ASPECT, _MAX_ASPECT = 0.2, 5.0  # w/h in [0.2, 5)
_COVER_FLOOR, _COVER_FRAC = 1.0, 0.3  # GOT-10k: cover > max(1, 0.3 max)
_MIN_IMAGE_SIDE = 32  # official Image2Pair skips images with min side < 32
_MAX_TRIES = 100  # official Seq2Pair: 100 tries for a close sorted pair

# Domains that keep the random streams of one (seed, index) independent.
_ORIENTATION_STREAM, _ITEM_STREAM = 1, 2


@dataclasses.dataclass(frozen=True, eq=False)
class PairSpec:
  """One sampled pair, before any image is decoded.

  Attributes:
    query_ref: image reference of the query (a path, or what `load_image` of
      the owning source accepts).
    search_ref: image reference of the search image.
    query_boxes: float32 (K, 4) legacy xyxy, original query pixels.
    search_boxes: float32 (K, 4) legacy xyxy, original search pixels; row j
      is the same object as row j of `query_boxes`.
    landscape: True when the query image is wider than tall (W > H).
    aug_seed: seed of the pair's augmentation draws.
  """
  query_ref: Any
  search_ref: Any
  query_boxes: np.ndarray
  search_boxes: np.ndarray
  landscape: bool
  aug_seed: int


# Former local helpers, now shared with gt_jax/preprocess.py (kept for
# importers): float64 xywh -> legacy xyxy, and bounding to [0, W-1] x [0, H-1].
xywh_to_xyxy = np_boxes.xywh_to_xyxy
clip_to_image = np_boxes.clip_boxes


# What PIL raises for a damaged or unsupported file (truncated data is an
# OSError without the file name; some broken headers raise SyntaxError).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _damaged(path: str, e: BaseException) -> DatasetLayoutError:
  # A damaged training image stops the run (never skipped: a skip would
  # change the data stream that checkpoints and the fingerprint describe).
  what = ("not an image file" if isinstance(e, Image.UnidentifiedImageError)
          else str(e) or type(e).__name__)
  return DatasetLayoutError(
      path, f"cannot decode training image ({what}); repair or remove it, "
      "then rerun (training resumes from its last checkpoint)")


def load_rgb(path: str) -> np.ndarray:
  """Decodes an image file to uint8 (H, W, 3) RGB (official: PIL).

  Raises:
    DatasetLayoutError: missing or damaged file (picklable, so it reaches
      the trainer unchanged from a grain worker), naming the file.
  """
  try:
    with Image.open(path) as im:
      return np.asarray(im.convert("RGB"))
  except _DECODE_ERRORS as e:
    raise _damaged(path, e) from None


def image_size(path: str) -> tuple[int, int]:
  """(height, width) from the file header, without decoding the pixels."""
  try:
    with Image.open(path) as im:
      w, h = im.size
  except _DECODE_ERRORS as e:
    raise _damaged(path, e) from None
  return h, w


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
  return np.random.default_rng([int(seed), stream, int(index)])


class ImagePairSource:
  """COCO-style pairs: one image seen twice with all its instances.

  Records whose min side is < 32 or that keep no box are skipped. Boxes with
  w < 1 or h < 1 are dropped, as are crowd/ignored ones when `meta` carries a
  boolean-like `iscrowd` or `ignore` array aligned with `boxes`.
  """

  def __init__(self, records: Sequence[Any], *, max_instances: int = 8,
               seed: int = 0,
               load_image: Callable[[Any], np.ndarray] = load_rgb,
               name: str = "images"):
    if max_instances < 1:
      raise ValueError(f"{name}: max_instances must be >= 1, got "
                       f"{max_instances}")
    self.name = name
    self.max_instances = int(max_instances)
    self.seed = int(seed)
    self.load_image = load_image
    self._refs, self._boxes, landscape = [], [], []
    for rec in records:
      h, w = int(rec.height), int(rec.width)
      if min(h, w) < _MIN_IMAGE_SIDE:
        continue
      boxes = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
      keep = np.isfinite(boxes).all(1)
      keep &= (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1)
      meta = getattr(rec, "meta", None) or {}
      for flag in ("iscrowd", "ignore"):
        if flag in meta:
          keep &= ~np.asarray(meta[flag], bool).reshape(-1)
      if not keep.any():
        continue
      self._refs.append(rec.path)
      xyxy = np_boxes.xywh_to_xyxy(boxes[keep])
      self._boxes.append(
          np_boxes.clip_boxes(xyxy, h, w).astype(np.float32))
      landscape.append(w > h)
    self.landscape = np.asarray(landscape, bool)

  def __len__(self) -> int:
    return len(self._refs)

  def __getitem__(self, index: int) -> PairSpec:
    return self.sample(index, _rng(self.seed, _ITEM_STREAM, index))

  def sample(self, index: int, rng: np.random.Generator) -> PairSpec:
    """The pair of item `index` with random draws from `rng`."""
    boxes = self._boxes[index]
    if len(boxes) > self.max_instances:
      # Official: a random subset of max_instances, same subset and order in
      # query and search (they are the same image here).
      boxes = boxes[rng.permutation(len(boxes))[:self.max_instances]]
    ref = self._refs[index]
    return PairSpec(ref, ref, boxes, boxes.copy(),
                    bool(self.landscape[index]),
                    int(rng.integers(0, 2**63 - 1)))


def valid_frames(boxes_xywh: np.ndarray, height: int, width: int,
                 cover: np.ndarray | None = None) -> np.ndarray:
  """Official Seq2Pair frame filter (LS §13.4).

  Args:
    boxes_xywh: (N, 4) x, y, w, h as stored (w, h equal legacy +1 sizes).
    height: frame height H.
    width: frame width W.
    cover: optional (N,) GOT-10k cover labels (0..8).

  Returns:
    bool (N,): area > 20, 10 <= w, h <= 960, w/W and h/H in [0.01, 0.75],
    w/h in [0.2, 5), and (with `cover`) cover > max(1, 0.3 * max cover).
    Non-finite boxes are invalid.
  """
  b = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
  w, h = b[:, 2], b[:, 3]
  with np.errstate(invalid="ignore", divide="ignore"):
    ok = np.isfinite(b).all(1)
    ok &= w * h > _MIN_AREA
    ok &= (w >= _MIN_SIDE) & (h >= _MIN_SIDE)
    ok &= (w <= _MAX_SIDE) & (h <= _MAX_SIDE)
    ok &= (w / width >= _MIN_REL) & (w / width <= _MAX_REL)
    ok &= (h / height >= _MIN_REL) & (h / height <= _MAX_REL)
    aspect = w / h
    ok &= (aspect >= _MIN_ASPECT) & (aspect < _MAX_ASPECT)
  if cover is not None:
    cover = np.asarray(cover, np.float64).reshape(-1)
    if cover.shape[0] != b.shape[0]:
      raise ValueError(f"cover has {cover.shape[0]} labels for "
                       f"{b.shape[0]} boxes")
    ok &= cover > max(_COVER_FLOOR, _COVER_FRAC * cover.max(initial=0.0))
  return ok


def sample_frame_pair(valid_idx: np.ndarray, max_gap: int,
                      rng: np.random.Generator) -> tuple[int, int]:
  """Official Seq2Pair frame choice among the valid frame indices (>= 2).

  Two distinct frames sorted (query first) with gap <= max_gap, up to 100
  tries; otherwise two frames with replacement, unsorted. With exactly two
  valid frames, those two.
  """
  if len(valid_idx) < 2:
    raise ValueError(f"need >= 2 valid frames, got {len(valid_idx)}")
  if len(valid_idx) == 2:
    return int(valid_idx[0]), int(valid_idx[1])
  for _ in range(_MAX_TRIES):
    a, b = np.sort(rng.choice(valid_idx, 2, replace=False))
    if b - a <= max_gap:
      return int(a), int(b)
  a, b = rng.choice(valid_idx, 2, replace=True)
  return int(a), int(b)


def _frame_hw(rec: Any) -> tuple[int, int]:
  meta = getattr(rec, "meta", None) or {}
  if isinstance(meta.get("height"), (int, np.integer)) and isinstance(
      meta.get("width"), (int, np.integer)):
    return int(meta["height"]), int(meta["width"])
  res = meta.get("resolution")  # GOT-10k meta_info.ini: (W, H)
  if isinstance(res, (tuple, list)) and len(res) == 2:
    return int(res[1]), int(res[0])
  # All frames of a sequence share one size; the header is cheap to read.
  return image_size(rec.frame_paths[0])


class SequencePairSource:
  """Video pairs (GOT-10k, LaSOT): two valid frames of one sequence, M = 1.

  Item `i` belongs to sequence `i // pairs_per_sequence` (official: 10 pairs
  per sequence per pass). Sequences with fewer than two valid frames are left
  out up front (the official sampler re-draws them). The GOT-10k cover rule
  applies when `meta` has a `cover` array.
  """

  def __init__(self, records: Sequence[Any], *, pairs_per_sequence: int = 10,
               max_frame_gap: int = 300, seed: int = 0,
               load_image: Callable[[Any], np.ndarray] = load_rgb,
               name: str = "sequences"):
    if pairs_per_sequence < 1:
      raise ValueError(f"{name}: pairs_per_sequence must be >= 1")
    self.name = name
    self.pairs_per_sequence = int(pairs_per_sequence)
    self.max_frame_gap = int(max_frame_gap)
    self.seed = int(seed)
    self.load_image = load_image
    self._paths, self._boxes, self._valid, self._hw = [], [], [], []
    for rec in records:
      boxes = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
      if len(rec.frame_paths) != len(boxes):
        raise ValueError(f"{name}: sequence {rec.name!r} has "
                         f"{len(rec.frame_paths)} frames and {len(boxes)} "
                         "boxes")
      meta = getattr(rec, "meta", None) or {}
      h, w = _frame_hw(rec)
      ok = valid_frames(boxes, h, w, meta.get("cover"))
      if hasattr(rec, "valid"):
        ok &= np.asarray(rec.valid, bool).reshape(-1)
      idx = np.flatnonzero(ok)
      if len(idx) < 2:
        continue
      # Keep only the valid frames: this object is pickled into every grain
      # worker, and LaSOT has ~2.8M frames.
      self._paths.append([rec.frame_paths[i] for i in idx])
      self._boxes.append(boxes[idx])
      self._valid.append(idx)
      self._hw.append((h, w))
    self.num_sequences = len(self._paths)
    seq_landscape = np.array([w > h for h, w in self._hw], bool)
    self.landscape = np.repeat(seq_landscape, self.pairs_per_sequence)

  def __len__(self) -> int:
    return self.num_sequences * self.pairs_per_sequence

  def __getitem__(self, index: int) -> PairSpec:
    return self.sample(index, _rng(self.seed, _ITEM_STREAM, index))

  def sample(self, index: int, rng: np.random.Generator) -> PairSpec:
    """The pair of item `index` with random draws from `rng`."""
    s = index // self.pairs_per_sequence
    frames = self._valid[s]
    qf, sf = sample_frame_pair(frames, self.max_frame_gap, rng)
    qi, si = np.searchsorted(frames, [qf, sf])
    h, w = self._hw[s]
    # Official: both boxes are bounded with the query frame's size.
    boxes = np_boxes.clip_boxes(
        np_boxes.xywh_to_xyxy(self._boxes[s][[qi, si]]), h, w)
    boxes = boxes.astype(np.float32)
    return PairSpec(self._paths[s][qi], self._paths[s][si], boxes[:1],
                    boxes[1:], bool(self.landscape[index]),
                    int(rng.integers(0, 2**63 - 1)))


class MixedPairSource:
  """Weighted mixture of pair sources, grouped by orientation per batch.

  Index `i` (any of `num_epochs * epoch_size`, rounded down to whole global
  batches) is an independent draw: the orientation of its global batch
  `i // global_batch_size`, then a source with probability proportional to
  `weight * (fraction of that source's items with this orientation)` (so each
  source keeps its weight overall), then a uniform item of that orientation.
  Every epoch is a fresh set of draws, as the official per-epoch re-draw.

  `source[i]` returns the decoded pair as a dict: `query_image`,
  `search_image` uint8 (H, W, 3), `query_boxes`, `search_boxes` float32
  (K, 4) legacy xyxy, `landscape` bool, `aug_seed` int64.
  """

  def __init__(self, sources: Mapping[str, Any], weights: Mapping[str, float],
               *, epoch_size: int, global_batch_size: int, seed: int = 0,
               num_epochs: int = 1):
    if set(sources) != set(weights):
      raise ValueError(f"sources {sorted(sources)} and weights "
                       f"{sorted(weights)} name different datasets")
    if not sources:
      raise ValueError("MixedPairSource needs at least one source")
    if global_batch_size < 1 or epoch_size < global_batch_size:
      raise ValueError(f"epoch_size ({epoch_size}) must be >= "
                       f"global_batch_size ({global_batch_size}) >= 1")
    self.names = sorted(sources)
    self.sources = [sources[n] for n in self.names]
    w = np.array([float(weights[n]) for n in self.names])
    for n, src, wi in zip(self.names, self.sources, w):
      if not wi > 0:
        raise ValueError(f"data source {n!r}: weight must be > 0, got {wi}")
      if len(src) == 0:
        raise ValueError(f"data source {n!r} has no usable pairs")
    self.weights = w / w.sum()
    self.epoch_size = int(epoch_size)
    self.global_batch_size = int(global_batch_size)
    self.seed = int(seed)
    total = int(num_epochs) * self.epoch_size
    self._len = total - total % self.global_batch_size
    # Per orientation (0 portrait, 1 landscape): item ids of each source and
    # the source probabilities given that orientation.
    self._items = [[np.flatnonzero(np.asarray(s.landscape) == bool(o))
                    for s in self.sources] for o in (0, 1)]
    joint = np.array([[wi * len(it) / len(s) for wi, it, s in zip(
        self.weights, self._items[o], self.sources)] for o in (0, 1)])
    self.p_landscape = float(joint[1].sum() / joint.sum())
    self._p_source = joint / joint.sum(1, keepdims=True).clip(1e-300)

  def __len__(self) -> int:
    return self._len

  def batch_is_landscape(self, batch_index: int) -> bool:
    """Orientation shared by every item of global batch `batch_index`."""
    rng = _rng(self.seed, _ORIENTATION_STREAM, batch_index)
    return bool(rng.random() < self.p_landscape)

  def spec(self, index: int) -> tuple[str, PairSpec]:
    """(source name, pair) of draw `index`, without decoding images."""
    if not 0 <= index < self._len:
      raise IndexError(f"pair index {index} out of range [0, {self._len})")
    o = int(self.batch_is_landscape(index // self.global_batch_size))
    rng = _rng(self.seed, _ITEM_STREAM, index)
    k = int(rng.choice(len(self.sources), p=self._p_source[o]))
    items = self._items[o][k]
    item = int(items[rng.integers(len(items))])
    return self.names[k], self.sources[k].sample(item, rng)

  def __getitem__(self, index: int) -> dict[str, Any]:
    name, p = self.spec(int(index))
    load = self.sources[self.names.index(name)].load_image
    return dict(query_image=load(p.query_ref),
                search_image=load(p.search_ref),
                query_boxes=p.query_boxes,
                search_boxes=p.search_boxes,
                landscape=np.bool_(p.landscape),
                aug_seed=np.int64(p.aug_seed))

  def describe(self) -> dict[str, Any]:
    """What the stream depends on (for the pipeline fingerprint)."""
    return dict(
        sources=[dict(name=n, weight=round(float(w), 6), items=len(s))
                 for n, w, s in zip(self.names, self.weights, self.sources)],
        epoch_size=self.epoch_size, length=self._len, seed=self.seed,
        global_batch_size=self.global_batch_size)
