"""Plain-numpy references of the legacy (mmdet v1) formulas, for tests.

Written from legacy-semantics §7-§11 independently of the jnp code in
`gt_jax.boxes` and `gt_jax.ops`: scalar loops where that makes them
obviously right, float32 scalar arithmetic where the official kernels run in
float32 (so threshold comparisons land on the same side). Slow; keep inputs
small (a few hundred boxes, tens of RoIs).

Boxes are legacy corners `[x1, y1, x2, y2]` with inclusive right/bottom
edges (width = x2 - x1 + 1).
"""

from __future__ import annotations

import math

import numpy as np

F32 = np.float32


def np_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Legacy +1 IoU in float32, one row of `a` at a time.

  Args:
    a: `(N, 4)` boxes.
    b: `(M, 4)` boxes.

  Returns:
    `(N, M)` float32 IoU (NaN for two zero-area boxes, as 0/0).
  """
  a = np.asarray(a, F32).reshape(-1, 4)
  b = np.asarray(b, F32).reshape(-1, 4)
  one, zero = F32(1), F32(0)
  area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
  out = np.zeros((len(a), len(b)), F32)
  with np.errstate(invalid="ignore", divide="ignore"):
    for i in range(len(a)):
      ax1, ay1, ax2, ay2 = a[i]
      area_a = (ax2 - ax1 + one) * (ay2 - ay1 + one)
      iw = np.maximum(np.minimum(ax2, b[:, 2]) - np.maximum(ax1, b[:, 0]) + one,
                      zero)
      ih = np.maximum(np.minimum(ay2, b[:, 3]) - np.maximum(ay1, b[:, 1]) + one,
                      zero)
      inter = iw * ih
      out[i] = inter / (area_a + area_b - inter)
  return out


def np_encode(proposals: np.ndarray, gt: np.ndarray,
              stds=(1.0, 1.0, 1.0, 1.0)) -> np.ndarray:
  """bbox2delta in float64, row by row.

  Args:
    proposals: `(N, 4)` boxes.
    gt: `(N, 4)` boxes.
    stds: 4 standard deviations.

  Returns:
    `(N, 4)` float64 deltas.
  """
  proposals = np.asarray(proposals, np.float64).reshape(-1, 4)
  gt = np.asarray(gt, np.float64).reshape(-1, 4)
  out = np.zeros((len(proposals), 4))
  for i, (p, g) in enumerate(zip(proposals, gt)):
    pw, ph = p[2] - p[0] + 1, p[3] - p[1] + 1
    gw, gh = g[2] - g[0] + 1, g[3] - g[1] + 1
    pcx, pcy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
    gcx, gcy = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2
    d = [(gcx - pcx) / pw, (gcy - pcy) / ph,
         math.log(gw / pw), math.log(gh / ph)]
    out[i] = [d[k] / stds[k] for k in range(4)]
  return out


def np_decode(proposals: np.ndarray, deltas: np.ndarray,
              stds=(1.0, 1.0, 1.0, 1.0), max_shape=None,
              wh_ratio_clip: float = 16 / 1000) -> np.ndarray:
  """delta2bbox row by row, float32 like the official torch code.

  Args:
    proposals: `(N, 4)` boxes.
    deltas: `(N, 4)` deltas.
    stds: 4 standard deviations.
    max_shape: None or `(h, w)`; clamp x to [0, w-1], y to [0, h-1] after
      the corner conversion.
    wh_ratio_clip: clip ratio.

  Returns:
    `(N, 4)` float32 boxes.
  """
  proposals = np.asarray(proposals, F32).reshape(-1, 4)
  deltas = np.asarray(deltas, F32).reshape(-1, 4)
  clip = F32(abs(math.log(wh_ratio_clip)))
  half = F32(0.5)
  out = np.zeros((len(proposals), 4), F32)
  for i in range(len(proposals)):
    x1, y1, x2, y2 = proposals[i]
    dx, dy, dw, dh = (deltas[i, k] * F32(stds[k]) for k in range(4))
    dw = min(max(dw, -clip), clip)
    dh = min(max(dh, -clip), clip)
    cx, cy = (x1 + x2) * half, (y1 + y2) * half
    w, h = x2 - x1 + F32(1), y2 - y1 + F32(1)
    nw, nh = w * np.exp(dw), h * np.exp(dh)
    ncx, ncy = cx + w * dx, cy + h * dy
    box = [ncx - nw * half + half, ncy - nh * half + half,
           ncx + nw * half - half, ncy + nh * half - half]
    if max_shape is not None:
      hmax, wmax = F32(max_shape[0] - 1), F32(max_shape[1] - 1)
      lims = [wmax, hmax, wmax, hmax]
      box = [min(max(v, F32(0)), lim) for v, lim in zip(box, lims)]
    out[i] = box
  return out


def np_nms(boxes: np.ndarray, scores: np.ndarray,
           thr: float) -> list[int]:
  """Greedy legacy NMS (suppress when IoU > thr), the textbook loop.

  Boxes are visited by descending score, ties by lower index; boxes with
  score -inf (or NaN) are absent.

  Returns:
    kept indices in visit order.
  """
  boxes = np.asarray(boxes, F32).reshape(-1, 4)
  scores = np.asarray(scores, F32).reshape(-1)
  present = [i for i in range(len(scores)) if scores[i] > -np.inf]
  order = sorted(present, key=lambda i: (-float(scores[i]), i))
  thr = F32(thr)
  removed = np.zeros(len(scores), bool)
  keep = []
  for i in order:
    if removed[i]:
      continue
    keep.append(i)
    # IoU > thr (strict), as the official CUDA kernel.
    removed |= np_iou(boxes[i], boxes)[0] > thr
  return keep


def _bilinear(feat: np.ndarray, y: np.float32, x: np.float32) -> np.ndarray:
  """mmdet v1 RoIAlign bilinear sample of `(H, W, C)` at (y, x) -> `(C,)`."""
  h, w = feat.shape[:2]
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return np.zeros(feat.shape[2], np.float64)
  y = max(y, F32(0))
  x = max(x, F32(0))
  y0, x0 = int(y), int(x)
  if y0 >= h - 1:
    y0 = y1 = h - 1
    y = F32(y0)
  else:
    y1 = y0 + 1
  if x0 >= w - 1:
    x0 = x1 = w - 1
    x = F32(x0)
  else:
    x1 = x0 + 1
  ly, lx = float(y - y0), float(x - x0)
  hy, hx = 1.0 - ly, 1.0 - lx
  f = feat.astype(np.float64)
  return (hy * hx * f[y0, x0] + hy * lx * f[y0, x1] + ly * hx * f[y1, x0] +
          ly * lx * f[y1, x1])


def np_roi_align(feat: np.ndarray, rois: np.ndarray, stride: int,
                 out_size: int = 7, sample_num: int = 2) -> np.ndarray:
  """Legacy mmdet-v1 RoIAlign of one level, loop per RoI/bin/sample.

  Args:
    feat: `(H, W, C)` feature map.
    rois: `(N, 4)` legacy boxes in image pixels.
    stride: level stride (spatial scale 1 / stride).
    out_size: output bins per side.
    sample_num: samples per bin per side.

  Returns:
    `(N, out_size, out_size, C)` float64.
  """
  feat = np.asarray(feat, F32)
  rois = np.asarray(rois, F32).reshape(-1, 4)
  scale = F32(1.0 / stride)
  out = np.zeros((len(rois), out_size, out_size, feat.shape[2]))
  for n, (x1, y1, x2, y2) in enumerate(rois):
    sx, sy = x1 * scale, y1 * scale
    ex, ey = (x2 + F32(1)) * scale, (y2 + F32(1)) * scale
    rw = max(ex - sx, F32(0))  # legacy: clamp at 0, not 1
    rh = max(ey - sy, F32(0))
    bw, bh = rw / F32(out_size), rh / F32(out_size)
    for ph in range(out_size):
      for pw in range(out_size):
        acc = np.zeros(feat.shape[2])
        for iy in range(sample_num):
          y = sy + F32(ph) * bh + F32(iy + 0.5) * bh / F32(sample_num)
          for ix in range(sample_num):
            x = sx + F32(pw) * bw + F32(ix + 0.5) * bw / F32(sample_num)
            acc += _bilinear(feat, F32(y), F32(x))
        out[n, ph, pw] = acc / (sample_num * sample_num)
  return out


def np_map_levels(rois: np.ndarray, num_levels: int = 4,
                  finest_scale: float = 56) -> np.ndarray:
  """SingleRoIExtractor level: floor(log2(sqrt(area)/56 + 1e-6)) in [0, L-1].

  Returns:
    `(N,)` int level per RoI (float32 arithmetic as in torch).
  """
  rois = np.asarray(rois, F32).reshape(-1, 4)
  out = np.zeros(len(rois), np.int64)
  for i, (x1, y1, x2, y2) in enumerate(rois):
    scale = np.sqrt((x2 - x1 + F32(1)) * (y2 - y1 + F32(1)))
    lvl = np.floor(np.log2(scale / F32(finest_scale) + F32(1e-6)))
    out[i] = int(min(max(lvl, 0), num_levels - 1))
  return out


def np_multilevel_roi_align(feats, rois, strides=(4, 8, 16, 32),
                            out_size: int = 7, sample_num: int = 2,
                            finest_scale: float = 56) -> np.ndarray:
  """Each RoI pooled from its own level (np_map_levels), loop per RoI."""
  rois = np.asarray(rois, F32).reshape(-1, 4)
  levels = np_map_levels(rois, len(strides), finest_scale)
  out = np.zeros((len(rois), out_size, out_size, feats[0].shape[2]))
  for i, lvl in enumerate(levels):
    out[i] = np_roi_align(feats[lvl], rois[i:i + 1], strides[lvl], out_size,
                          sample_num)[0]
  return out


def np_anchors(stride: int, feat_h: int, feat_w: int,
               ratios=(0.5, 1.0, 2.0), scale: float = 8) -> np.ndarray:
  """Anchors of one level (one scale), loop over cells then ratios.

  Returns:
    `(feat_h * feat_w * len(ratios), 4)` float32, `(y, x, a)` order.
  """
  c = (stride - 1) / 2.0
  base = []
  for r in ratios:
    ws = stride * scale / math.sqrt(r)
    hs = stride * scale * math.sqrt(r)
    base.append([round(c - (ws - 1) / 2), round(c - (hs - 1) / 2),
                 round(c + (ws - 1) / 2), round(c + (hs - 1) / 2)])
  out = []
  for y in range(feat_h):
    for x in range(feat_w):
      for b in base:
        out.append([b[0] + x * stride, b[1] + y * stride,
                    b[2] + x * stride, b[3] + y * stride])
  return np.asarray(out, F32).reshape(-1, 4)


def np_sigmoid(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return (1.0 / (1.0 + np.exp(-x))).astype(F32)


def np_rpn_proposals(cls_logits, deltas, anchors, img_hw, nms_pre: int,
                     nms_post: int, max_num: int, nms_thr: float,
                     stds=(1.0, 1.0, 1.0, 1.0)):
  """mmdet v1 RPN `get_bboxes_single` (test cfg), level by level.

  Per level: sigmoid; more than nms_pre anchors -> top nms_pre sorted by
  score (ties: lower index), else all in anchor order; decode clamped to
  img_hw; NMS; kept boxes in ascending input order; first nms_post. Then
  concatenate (P2 first) and take the top max_num by score (stable).

  Returns:
    `(K, 4)` float32 boxes and `(K,)` float32 scores, K <= max_num.
  """
  all_boxes, all_scores = [], []
  for logit, delta, anchor in zip(cls_logits, deltas, anchors):
    score = np_sigmoid(logit)
    n = len(score)
    if n > nms_pre:
      idx = sorted(range(n), key=lambda i: (-float(score[i]), i))[:nms_pre]
    else:
      idx = list(range(n))
    idx = np.asarray(idx, np.int64)
    boxes = np_decode(np.asarray(anchor)[idx], np.asarray(delta)[idx], stds,
                      max_shape=img_hw)
    sc = score[idx]
    keep = sorted(np_nms(boxes, sc, nms_thr))[:nms_post]
    all_boxes.append(boxes[keep].reshape(-1, 4))
    all_scores.append(sc[keep])
  boxes = np.concatenate(all_boxes, 0)
  scores = np.concatenate(all_scores, 0)
  order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
  order = order[:max_num]
  return boxes[order], scores[order]


def ref_assign(ious, candidate, pos, neg, min_pos, assign_all=True):
  """mmdet v1 MaxIoUAssigner on the candidate subset, one gt, numpy."""
  labels = np.full(len(ious), -1)
  idx = [i for i in range(len(ious)) if candidate[i]]
  if not idx:
    return labels
  ov = np.asarray([ious[i] for i in idx])
  out = np.full(len(idx), -1)
  for k, v in enumerate(ov):
    if 0 <= v < neg:
      out[k] = 0
    if v >= pos:
      out[k] = 1
  best = ov.max()
  if best >= min_pos:
    if assign_all:
      out[ov == best] = 1
    else:
      out[int(np.argmax(ov))] = 1
  labels[idx] = out
  return labels
