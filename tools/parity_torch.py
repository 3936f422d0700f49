"""End-to-end parity of gt_jax's Tracker with an independent PyTorch reference.

The reference below is written from shared/reference/legacy-semantics.md
(cited LS §n) in PyTorch, NCHW, the way the official mmdetection-v1 code
computes: ResNet-50 (pytorch style, frozen BN) -> FPN -> RPN modulator ->
RPN head -> per-level top-1000 / delta2bbox / legacy NMS 0.7 -> top-1000 ->
legacy RoIAlign -> RCNN modulator -> shared-FC box head -> softmax -> decode
-> / s -> class NMS 0.5 -> argmax. It imports nothing from gt_jax; gt_jax is
used only for the objects under test (load_config, load_mmdet_weights,
Tracker).

The driver writes a random checkpoint with the 374 official keys (legacy
PyTorch-1.1 file layout), builds five short clips from real photos
(landscape 480x640, portrait 640x480, odd 359x501, a box partly outside the
frame, a ~6 px box), runs both trackers and prints one row per frame. Acceptance (per frame): IoU(top-1 boxes) >= 0.99
and |score difference| <= 1e-3. Exit status 1 if any frame fails.

  /tmp/torchenv/bin/python tools/parity_torch.py --selftest   # reference only
  /tmp/torchenv/bin/python tools/parity_torch.py              # official size
  /tmp/torchenv/bin/python tools/parity_torch.py --short-side 400  # quicker

torch must never be a dependency of gt_jax: run this with a separate venv
(see tools/README.md).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
import sys
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

MEAN = (123.675, 116.28, 103.53)  # official: img_norm_cfg mean (LS §2).
STD = (58.395, 57.12, 57.375)  # official: img_norm_cfg std (LS §2).
STAGES = (3, 4, 6, 3)  # official: ResNet-50 blocks per stage (LS §3).
STRIDES = (4, 8, 16, 32, 64)  # official: anchor strides P2..P6 (LS §7).
RATIOS = (0.5, 1.0, 2.0)  # official: anchor ratios h/w (LS §7).
ANCHOR_SCALE = 8  # official: anchor_scales [8] (LS §7).
RCNN_STDS = (0.1, 0.1, 0.2, 0.2)  # official: bbox_head target_stds (LS §10).
WH_CLIP = abs(math.log(16 / 1000))  # official: wh_ratio_clip 16/1000 (LS §11).
IOU_MIN, SCORE_TOL = 0.99, 1e-3  # the acceptance criteria.

# ----------------------------------------------------------------------------
# Reference: box math, NMS, anchors, RoIAlign (LS §7, §8, §11)
# ----------------------------------------------------------------------------


def delta2bbox(rois, deltas, stds, max_hw):
  """Legacy delta2bbox, means 0 (LS §11). rois/deltas (N, 4) -> (N, 4)."""
  d = deltas * torch.tensor(stds, dtype=torch.float32)
  dx, dy, dw, dh = d.unbind(-1)
  dw, dh = dw.clamp(-WH_CLIP, WH_CLIP), dh.clamp(-WH_CLIP, WH_CLIP)
  px, py = (rois[:, 0] + rois[:, 2]) * 0.5, (rois[:, 1] + rois[:, 3]) * 0.5
  pw, ph = rois[:, 2] - rois[:, 0] + 1.0, rois[:, 3] - rois[:, 1] + 1.0
  gw, gh = pw * dw.exp(), ph * dh.exp()
  gx, gy = px + pw * dx, py + ph * dy
  x1, y1 = gx - gw * 0.5 + 0.5, gy - gh * 0.5 + 0.5
  x2, y2 = gx + gw * 0.5 - 0.5, gy + gh * 0.5 - 0.5
  h, w = max_hw
  return torch.stack([x1.clamp(0, w - 1), y1.clamp(0, h - 1),
                      x2.clamp(0, w - 1), y2.clamp(0, h - 1)], -1)


def iou_matrix(a, b):
  """Legacy +1 IoU (LS §11), float32. a (N, 4), b (M, 4) -> (N, M)."""
  lt = torch.maximum(a[:, None, :2], b[None, :, :2])
  rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
  wh = (rb - lt + 1).clamp(min=0)
  inter = wh[..., 0] * wh[..., 1]
  area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
  area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
  return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms(boxes, scores, thr):
  """Greedy legacy NMS (IoU > thr suppresses). -> kept indices, ascending.

  Visit order: descending score, ties by lower index (stable sort).
  """
  if boxes.shape[0] == 0:
    return torch.zeros(0, dtype=torch.long)
  order = torch.sort(scores, descending=True, stable=True).indices
  over = (iou_matrix(boxes[order], boxes[order]) > thr).numpy()
  removed = np.zeros(len(order), bool)
  keep = []
  for i in range(len(order)):
    if removed[i]:
      continue
    keep.append(i)
    removed |= over[i]
  return torch.sort(order[keep]).values


def base_anchors(stride):
  """(3, 4) base anchors of one level, ratios 0.5, 1, 2 (LS §7)."""
  c = (stride - 1) / 2
  rows = []
  for r in RATIOS:
    ws = stride * ANCHOR_SCALE / math.sqrt(r)
    hs = stride * ANCHOR_SCALE * math.sqrt(r)
    rows.append([c - (ws - 1) / 2, c - (hs - 1) / 2,
                 c + (ws - 1) / 2, c + (hs - 1) / 2])
  return torch.tensor(np.round(np.array(rows)), dtype=torch.float32)


def grid_anchors(stride, feat_h, feat_w):
  """(feat_h * feat_w * 3, 4), flat index (y * W + x) * 3 + a (LS §7)."""
  ys, xs = torch.meshgrid(torch.arange(feat_h) * stride,
                          torch.arange(feat_w) * stride, indexing="ij")
  shifts = torch.stack([xs, ys, xs, ys], -1).reshape(-1, 1, 4).float()
  return (shifts + base_anchors(stride)[None]).reshape(-1, 4)


def _bilinear(feat, y, x):
  """Legacy mmdet-v1 bilinear sample (LS §8). feat (C, H, W); y, x (...)."""
  c, h, w = feat.shape
  outside = (y < -1) | (y > h) | (x < -1) | (x > w)
  y, x = y.clamp(min=0), x.clamp(min=0)
  yl, xl = y.floor().long(), x.floor().long()
  ytop, xtop = yl >= h - 1, xl >= w - 1
  yl, xl = torch.where(ytop, h - 1, yl), torch.where(xtop, w - 1, xl)
  yh, xh = torch.where(ytop, h - 1, yl + 1), torch.where(xtop, w - 1, xl + 1)
  y, x = torch.where(ytop, yl.float(), y), torch.where(xtop, xl.float(), x)
  ly, lx = y - yl, x - xl
  hy, hx = 1 - ly, 1 - lx
  flat = feat.reshape(c, h * w)
  v = (hy * hx * flat[:, yl * w + xl] + hy * lx * flat[:, yl * w + xh] +
       ly * hx * flat[:, yh * w + xl] + ly * lx * flat[:, yh * w + xh])
  return torch.where(outside, torch.zeros(()), v)


def roi_align(feat, rois, stride, out=7, sample_num=2):
  """Legacy RoIAlign of one level (LS §8). feat (C, H, W), rois (N, 4).

  Returns (N, C, out, out). End coordinate +1, size clamped at 0, samples
  at `start + p * bin + (i + .5) * bin / n`, sum / n^2 (zeros included).
  """
  if rois.shape[0] == 0:
    return feat.new_zeros((0, feat.shape[0], out, out))
  res = []
  for r in rois.split(200):
    sc = 1.0 / stride
    sx, sy = r[:, 0] * sc, r[:, 1] * sc
    ex, ey = (r[:, 2] + 1) * sc, (r[:, 3] + 1) * sc
    bw, bh = (ex - sx).clamp(min=0) / out, (ey - sy).clamp(min=0) / out
    p = torch.arange(out, dtype=torch.float32)[None, :, None]
    i = (torch.arange(sample_num, dtype=torch.float32) + 0.5)[None, None, :]
    bh, bw = bh[:, None, None], bw[:, None, None]
    ys = sy[:, None, None] + p * bh + i * bh / sample_num
    xs = sx[:, None, None] + p * bw + i * bw / sample_num
    k, n = out * sample_num, r.shape[0]
    yy = ys.reshape(n, k, 1).expand(n, k, k)
    xx = xs.reshape(n, 1, k).expand(n, k, k)
    v = _bilinear(feat, yy, xx).reshape(-1, n, out, sample_num, out, sample_num)
    res.append((v.sum((3, 5)) / (sample_num * sample_num)).permute(1, 0, 2, 3))
  return torch.cat(res)


def roi_levels(rois):
  """SingleRoIExtractor level of each RoI, 0..3 (LS §8). (N, 4) -> (N,)."""
  scale = torch.sqrt((rois[:, 2] - rois[:, 0] + 1) *
                     (rois[:, 3] - rois[:, 1] + 1))
  return torch.floor(torch.log2(scale / 56 + 1e-6)).clamp(0, 3).long()


def multilevel_roi_align(feats, rois):
  """RoI features (N, C, 7, 7), each RoI from its one level of P2..P5."""
  lvl = roi_levels(rois)
  out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], 7, 7))
  for k in range(4):
    idx = torch.nonzero(lvl == k)[:, 0]
    if len(idx):
      out[idx] = roi_align(feats[k][0], rois[idx], STRIDES[k])
  return out


# ----------------------------------------------------------------------------
# Reference: network (LS §3-§7, §10), weights from the official state dict
# ----------------------------------------------------------------------------


def _bn(x, sd, name):
  return F.batch_norm(x, sd[name + ".running_mean"], sd[name + ".running_var"],
                      sd[name + ".weight"], sd[name + ".bias"], False, 0.0,
                      1e-5)


def resnet50(sd, x):
  """Pytorch-style ResNet-50, stride on the 3x3 (LS §3). -> [C2..C5]."""
  x = F.relu(_bn(F.conv2d(x, sd["backbone.conv1.weight"], stride=2,
                          padding=3), sd, "backbone.bn1"))
  x = F.max_pool2d(x, 3, 2, 1)
  outs = []
  for layer, blocks in enumerate(STAGES, 1):
    for b in range(blocks):
      pre = f"backbone.layer{layer}.{b}"
      stride = 2 if (b == 0 and layer > 1) else 1
      y = F.relu(_bn(F.conv2d(x, sd[pre + ".conv1.weight"]), sd, pre + ".bn1"))
      y = F.relu(_bn(F.conv2d(y, sd[pre + ".conv2.weight"], stride=stride,
                              padding=1), sd, pre + ".bn2"))
      y = _bn(F.conv2d(y, sd[pre + ".conv3.weight"]), sd, pre + ".bn3")
      if b == 0:
        x = _bn(F.conv2d(x, sd[pre + ".downsample.0.weight"], stride=stride),
                sd, pre + ".downsample.1")
      x = F.relu(y + x)
    outs.append(x)
  return outs


def fpn(sd, cs):
  """FPN (LS §4): laterals, nearest x2 top-down, 3x3 outs, P6 = P5[::2,::2]."""
  lat = [F.conv2d(c, sd[f"neck.lateral_convs.{i}.conv.weight"],
                  sd[f"neck.lateral_convs.{i}.conv.bias"])
         for i, c in enumerate(cs)]
  for i in (3, 2, 1):
    up = lat[i].repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    h, w = lat[i - 1].shape[2:]
    lat[i - 1] = lat[i - 1] + up[:, :, :h, :w]
  outs = [F.conv2d(l, sd[f"neck.fpn_convs.{i}.conv.weight"],
                   sd[f"neck.fpn_convs.{i}.conv.bias"], padding=1)
          for i, l in enumerate(lat)]
  return outs + [outs[3][:, :, ::2, ::2]]


def rpn_level(sd, p, z, k):
  """Modulated RPN head on level k (LS §6-§7). -> cls (N_k,), reg (N_k, 4)."""
  v = F.conv2d(z, sd[f"rpn_modulator.proj_modulator.{k}.weight"],
               sd[f"rpn_modulator.proj_modulator.{k}.bias"])  # (1, C, 1, 1)
  r = F.conv2d(p * v, sd[f"rpn_modulator.proj_out.{k}.weight"],
               sd[f"rpn_modulator.proj_out.{k}.bias"])
  t = F.relu(F.conv2d(r, sd["rpn_head.rpn_conv.weight"],
                      sd["rpn_head.rpn_conv.bias"], padding=1))
  cls = F.conv2d(t, sd["rpn_head.rpn_cls.weight"], sd["rpn_head.rpn_cls.bias"])
  reg = F.conv2d(t, sd["rpn_head.rpn_reg.weight"], sd["rpn_head.rpn_reg.bias"])
  return (cls.permute(0, 2, 3, 1).reshape(-1),
          reg.permute(0, 2, 3, 1).reshape(-1, 4))


def proposals(sd, feats, z, img_hw, nms_pre=1000, nms_post=1000, max_num=1000,
              thr=0.7):
  """Test-time RPN proposals (LS §9). -> boxes (P, 4), scores (P,)."""
  boxes, scores = [], []
  for k, p in enumerate(feats):
    cls, reg = rpn_level(sd, p, z, k)
    anchors = grid_anchors(STRIDES[k], p.shape[2], p.shape[3])
    s = cls.sigmoid()
    if s.numel() > nms_pre:
      order = torch.sort(s, descending=True, stable=True).indices[:nms_pre]
      s, reg, anchors = s[order], reg[order], anchors[order]
    b = delta2bbox(anchors, reg, (1.0, 1.0, 1.0, 1.0), img_hw)
    keep = nms(b, s, thr)[:nms_post]
    boxes.append(b[keep])
    scores.append(s[keep])
  boxes, scores = torch.cat(boxes), torch.cat(scores)
  order = torch.sort(scores, descending=True, stable=True).indices[:max_num]
  return boxes[order], scores[order]


def rcnn(sd, feats, rois, z):
  """QG-RCNN (LS §10.1-§10.3). -> class-1 probs (N,), target deltas (N, 4)."""
  x = multilevel_roi_align(feats[:4], rois)
  x = F.conv2d(x, sd["rcnn_modulator.proj_x.weight"],
               sd["rcnn_modulator.proj_x.bias"], padding=1)
  zz = F.conv2d(z, sd["rcnn_modulator.proj_z.weight"],
                sd["rcnn_modulator.proj_z.bias"], padding=1)
  x = F.conv2d(x * zz, sd["rcnn_modulator.proj_out.weight"],
               sd["rcnn_modulator.proj_out.bias"])
  h = x.reshape(x.shape[0], -1)  # NCHW flatten: c * 49 + h * 7 + w.
  h = F.relu(F.linear(h, sd["bbox_head.shared_fcs.0.weight"],
                      sd["bbox_head.shared_fcs.0.bias"]))
  h = F.relu(F.linear(h, sd["bbox_head.shared_fcs.1.weight"],
                      sd["bbox_head.shared_fcs.1.bias"]))
  cls = F.linear(h, sd["bbox_head.fc_cls.weight"], sd["bbox_head.fc_cls.bias"])
  reg = F.linear(h, sd["bbox_head.fc_reg.weight"], sd["bbox_head.fc_reg.bias"])
  return F.softmax(cls, -1)[:, 1], reg[:, 4:8]


def preprocess(img, scale=(1333, 800)):
  """LS §2: -> (NCHW tensor, s, (H', W'), (Hp, Wp))."""
  h, w = img.shape[:2]
  s = min(max(scale) / max(h, w), min(scale) / min(h, w))
  nh, nw = int(h * s + 0.5), int(w * s + 0.5)
  im = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
  # float32 image, float64 mean/std, stored float32 (LS §2.3).
  im = ((im.astype(np.float32) - np.array(MEAN)) /
        np.array(STD)).astype(np.float32)
  hp, wp = -(-nh // 32) * 32, -(-nw // 32) * 32
  canvas = np.zeros((hp, wp, 3), np.float32)
  canvas[:nh, :nw] = im
  return torch.from_numpy(canvas).permute(2, 0, 1)[None], s, (nh, nw), (hp, wp)


class RefTracker:
  """The official GlobalTrack tracking loop, in torch (LS §1-§10)."""

  def __init__(self, sd, scale=(1333, 800)):
    self.sd, self.scale = sd, scale

  @torch.no_grad()
  def init(self, img, box_xyxy):
    """img uint8 (H, W, 3) RGB; box legacy xyxy (4,) in original pixels."""
    x, s, _, (hp, wp) = preprocess(img, self.scale)
    b = np.asarray(box_xyxy, np.float32) * np.float32(s)  # LS §2.6.
    b[0::2] = np.clip(b[0::2], 0, wp - 1)
    b[1::2] = np.clip(b[1::2], 0, hp - 1)
    b[2], b[3] = max(b[2], b[0]), max(b[3], b[1])
    feats = fpn(self.sd, resnet50(self.sd, x))
    self.z = multilevel_roi_align(feats[:4], torch.from_numpy(b)[None])

  @torch.no_grad()
  def update(self, img):
    """-> dict(box legacy xyxy original pixels, score, index, ...)."""
    x, s, img_hw, _ = preprocess(img, self.scale)
    feats = fpn(self.sd, resnet50(self.sd, x))
    props, pscores = proposals(self.sd, feats, self.z, img_hw)
    prob, deltas = rcnn(self.sd, feats, props, self.z)
    boxes = delta2bbox(props, deltas, RCNN_STDS, img_hw) / s  # rescale=True.
    # multiclass_nms: class 1, score > 0, NMS 0.5 on the rescaled boxes;
    # then the tracker's numpy argmax over the survivors (LS §10.5-§10.6).
    cand = torch.nonzero(prob > 0)[:, 0]
    surv = cand[nms(boxes[cand], prob[cand], 0.5)]
    i = int(surv[int(np.argmax(prob[surv].numpy()))])
    srt = torch.sort(prob, descending=True).values
    return dict(box=boxes[i].numpy().astype(np.float64), score=float(prob[i]),
                index=i, plain_argmax=int(np.argmax(prob.numpy())),
                gap=float(srt[0] - srt[1]) if len(srt) > 1 else float("inf"),
                proposals=props.numpy(), proposal_scores=pscores.numpy(),
                rcnn_scores=prob.numpy())


# ----------------------------------------------------------------------------
# Random checkpoint in the official key layout (LS §12, Appendix A)
# ----------------------------------------------------------------------------


def official_keys():
  """[(key, shape)] in official registration order; () = num_batches_tracked."""
  keys = []

  def conv(name, o, i, k, bias=False):
    keys.append((name + ".weight", (o, i, k, k)))
    if bias:
      keys.append((name + ".bias", (o,)))

  def linear(name, o, i):
    keys.extend([(name + ".weight", (o, i)), (name + ".bias", (o,))])

  def bn(name, c):
    for f in ("weight", "bias", "running_mean", "running_var"):
      keys.append((f"{name}.{f}", (c,)))
    keys.append((name + ".num_batches_tracked", ()))

  conv("backbone.conv1", 64, 3, 7)
  bn("backbone.bn1", 64)
  cin = 64
  for layer, blocks in enumerate(STAGES, 1):
    p = 64 * 2 ** (layer - 1)
    for b in range(blocks):
      pre = f"backbone.layer{layer}.{b}"
      for j, (o, i, k) in enumerate(((p, cin, 1), (p, p, 3), (4 * p, p, 1)), 1):
        conv(f"{pre}.conv{j}", o, i, k)
        bn(f"{pre}.bn{j}", o)
      if b == 0:
        conv(pre + ".downsample.0", 4 * p, cin, 1)
        bn(pre + ".downsample.1", 4 * p)
      cin = 4 * p
  for i, c in enumerate((256, 512, 1024, 2048)):
    conv(f"neck.lateral_convs.{i}.conv", 256, c, 1, True)
  for i in range(4):
    conv(f"neck.fpn_convs.{i}.conv", 256, 256, 3, True)
  conv("rpn_head.rpn_conv", 256, 256, 3, True)
  conv("rpn_head.rpn_cls", 3, 256, 1, True)
  conv("rpn_head.rpn_reg", 12, 256, 1, True)
  linear("bbox_head.fc_cls", 2, 1024)
  linear("bbox_head.fc_reg", 8, 1024)
  linear("bbox_head.shared_fcs.0", 1024, 256 * 7 * 7)
  linear("bbox_head.shared_fcs.1", 1024, 1024)
  for k in range(5):
    conv(f"rpn_modulator.proj_modulator.{k}", 256, 256, 7, True)
  for k in range(5):
    conv(f"rpn_modulator.proj_out.{k}", 256, 256, 1, True)
  conv("rcnn_modulator.proj_z", 256, 256, 3, True)
  conv("rcnn_modulator.proj_x", 256, 256, 3, True)
  conv("rcnn_modulator.proj_out", 256, 256, 1, True)
  return keys


# Weight std per key pattern; chosen so the random model's activations stay
# O(1) through the 16 blocks and the RPN / RCNN scores spread over (0, 1)
# (non-degenerate top-1s). Unlisted weights: He-normal sqrt(2 / fan_in).
_STD_RULES = (
    (r"backbone\..*conv3\.weight", lambda fan: 0.5 * math.sqrt(2 / fan)),
    (r"neck\.lateral_convs\..*\.weight", lambda fan: 0.1 * math.sqrt(1 / fan)),
    (r"neck\.fpn_convs\..*\.weight", lambda fan: math.sqrt(1 / fan)),
    (r"rpn_modulator\.proj_modulator\..*weight", lambda fan: 0.01),
    (r"rpn_modulator\.proj_out\..*weight", lambda fan: math.sqrt(1 / fan)),
    (r"rpn_head\.rpn_conv\.weight", lambda fan: math.sqrt(2 / fan)),
    (r"rpn_head\.rpn_cls\.weight", lambda fan: 0.05),
    (r"rpn_head\.rpn_reg\.weight", lambda fan: 0.01),
    (r"rcnn_modulator\..*weight", lambda fan: math.sqrt(1 / fan)),
    (r"bbox_head\.shared_fcs\..*weight", lambda fan: math.sqrt(2 / fan)),
    (r"bbox_head\.fc_cls\.weight", lambda fan: 0.01),
    (r"bbox_head\.fc_reg\.weight", lambda fan: 0.01),
)
_STD_OVERRIDES: dict[str, float] = {}  # filled by --std KEY_REGEX=VALUE


def random_state_dict(seed):
  """OrderedDict of all 374 official keys, random but well-scaled."""
  g = torch.Generator().manual_seed(seed)
  sd = collections.OrderedDict()
  for key, shape in official_keys():
    if shape == ():
      sd[key] = torch.tensor(0, dtype=torch.int64)
    elif ".bn" in key or ".downsample.1." in key:  # frozen BN (LS §3).
      if key.endswith(".running_var"):
        sd[key] = torch.empty(shape).uniform_(0.5, 2.0, generator=g)
      elif key.endswith(".weight"):
        sd[key] = torch.empty(shape).uniform_(0.5, 1.5, generator=g)
      else:  # bias, running_mean.
        sd[key] = torch.empty(shape).normal_(0.0, 0.1, generator=g)
    elif key.endswith(".bias"):
      sd[key] = torch.empty(shape).normal_(0.0, 0.01, generator=g)
    else:
      fan = int(np.prod(shape[1:]))
      std = math.sqrt(2 / fan)
      for pattern, rule in _STD_RULES:
        if re.fullmatch(pattern, key):
          std = rule(fan)
          break
      for pattern, value in _STD_OVERRIDES.items():
        if re.fullmatch(pattern, key):
          std = value
      sd[key] = torch.empty(shape).normal_(0.0, std, generator=g)
  return sd


def write_checkpoint(path, sd):
  """torch.save in the legacy (PyTorch 1.1, non-zip) layout, mmcv-style."""
  meta = {"mmdet_version": "1.0rc0+parity", "mmcv_version": "0.2.14",
          "config": "# random weights for tools/parity_torch.py",
          "CLASSES": ("object",), "epoch": 12, "iter": 90000}
  torch.save({"meta": meta, "state_dict": sd}, path,
             _use_new_zipfile_serialization=False)


# ----------------------------------------------------------------------------
# Self-test of the reference on hand-computed cases
# ----------------------------------------------------------------------------

# LS §7 table: base anchors per stride, ratios 0.5, 1, 2.
_ANCHOR_TABLE = {
    4: [[-21, -9, 24, 12], [-14, -14, 17, 17], [-9, -21, 12, 24]],
    8: [[-41, -19, 48, 26], [-28, -28, 35, 35], [-19, -41, 26, 48]],
    16: [[-83, -37, 98, 52], [-56, -56, 71, 71], [-37, -83, 52, 98]],
    32: [[-165, -75, 196, 106], [-112, -112, 143, 143], [-75, -165, 106, 196]],
    64: [[-330, -149, 393, 212], [-224, -224, 287, 287],
         [-149, -330, 212, 393]],
}
# LS §12 parameter counts per group (excluding BN running statistics).
_GROUP_PARAMS = {"backbone": 23508032, "neck": 3344384, "rpn_head": 593935,
                 "bbox_head": 13905930, "rpn_modulator": 16386560,
                 "rcnn_modulator": 1245952}


def _check(name, ok, detail=""):
  print(f"  [{'ok' if ok else 'FAIL'}] {name} {detail}")
  return bool(ok)


def selftest(spec_path):
  """Checks the reference against hand-computed values; -> all passed."""
  t = lambda v: torch.tensor(v, dtype=torch.float32)
  ok = []
  for s, rows in _ANCHOR_TABLE.items():
    ok.append(_check(f"anchors stride {s}",
                     torch.equal(base_anchors(s), t(rows))))
  a = grid_anchors(8, 2, 3)
  ok.append(_check("anchor grid order (y, x, a)",
                   torch.equal(a[(1 * 3 + 2) * 3 + 1],
                               t([-28 + 16, -28 + 8, 35 + 16, 35 + 8]))))
  # RoIAlign on f[y, x] = 10 y + x (5x5, stride 1): bilinear is exact for a
  # linear map, so an in-range bin is f(bin centre); y > H or x > W -> 0.
  f = (10 * torch.arange(5.)[:, None] + torch.arange(5.)[None])[None]
  r = roi_align(f, t([[0, 0, 6, 6]]), 1)[0, 0]  # bins of 1 px, 2x2 samples.
  exp = torch.zeros(7, 7)
  for ph in range(7):
    for pw in range(7):
      # y samples ph + .25, ph + .75: >= H - 1 = 4 -> clamped to 4; > 5 -> 0.
      ys = [min(ph + d, 4.0) if ph + d <= 5 else None for d in (0.25, 0.75)]
      xs = [min(pw + d, 4.0) if pw + d <= 5 else None for d in (0.25, 0.75)]
      exp[ph, pw] = sum(10 * y + x for y in ys for x in xs
                        if y is not None and x is not None) / 4
  ok.append(_check("roi_align grid incl. out-of-range zeros",
                   torch.allclose(r, exp, atol=1e-5), f"{r[4, :3].tolist()}"))
  ok.append(_check("roi_align hand values", abs(r[0, 0] - 5.5) < 1e-6 and
                   abs(r[4, 0] - 40.5) < 1e-6 and r[5, 0] == 0 and
                   abs(r[4, 4] - 44.0) < 1e-6))
  # x in (-1, 0) clamps to column 0; x < -1 is zero.
  r = roi_align(f, t([[-3, 0, 3, 6]]), 1)[0, 0]
  ok.append(_check("roi_align x in (-1, 0) -> col 0, x < -1 -> 0",
                   abs(r[0, 2] - 5.0) < 1e-6 and r[0, 0] == 0 and r[0, 1] == 0
                   and abs(r[1, 3] - 15.5) < 1e-6, f"{r[0, :4].tolist()}"))
  # A sub-pixel RoI (rw = 0.25 < 1, torchvision would enlarge it): samples
  # stay inside, so every bin is f at its centre sy + (p + .5) bh.
  r = roi_align(f, t([[1.2, 2.0, 1.2, 2.0]]), 4)[0, 0]
  sx, bw = 0.3, 0.25 / 7
  sy, bh = 0.5, 0.25 / 7
  exp = torch.tensor([[10 * (sy + (i + .5) * bh) + sx + (j + .5) * bw
                       for j in range(7)] for i in range(7)])
  ok.append(_check("roi_align sub-pixel RoI (size clamp at 0, +1 end)",
                   torch.allclose(r, exp, atol=1e-5)))
  lv = roi_levels(t([[0, 0, 110, 110], [0, 0, 111, 111], [0, 0, 223, 223],
                     [0, 0, 447, 447], [0, 0, 2000, 2000], [5, 5, 5, 5]]))
  ok.append(_check("roi level mapping 111/112/224/448/2001/1 px",
                   lv.tolist() == [0, 1, 2, 3, 3, 0], f"{lv.tolist()}"))
  # NMS: exact duplicates with tied scores keep the lower index; IoU exactly
  # 0.7 is kept (strict >), 0.71 suppressed; 1-px boxes have area 1.
  b = t([[0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 6], [0, 0, 70, 0],
         [100, 100, 100, 100], [101, 100, 101, 100], [100, 100, 100, 100]])
  s = t([0.9, 0.9, 0.8, 0.5, 0.4, 0.4, 0.3])
  keep = nms(b, s, 0.7).tolist()
  ok.append(_check("nms ties / IoU == thr kept / +1 areas",
                   keep == [0, 2, 3, 4, 5], f"{keep}"))
  b2 = t([[0, 0, 9, 9], [0, 0, 9, 6], [0, 0, 9, 7]])
  keep = nms(b2, t([0.5, 0.9, 0.7]), 0.7).tolist()  # IoU(2, 1) = 70/80.
  ok.append(_check("nms visit order by score, output ascending",
                   keep == [0, 1], f"{keep}"))
  # Anchor [0, 0, 15, 15]: centre 7.5, +1 size 16; exp(4.1352) = 1000 / 16.
  d = delta2bbox(t([[0, 0, 15, 15]] * 4),
                 t([[0, 0, 0, 0], [0.5, -0.25, 0, 0], [0, 0, 10, -10],
                    [60, -60, 0, 0]]), (1.0, 1.0, 1.0, 1.0), (600, 800))
  exp = t([[0, 0, 15, 15], [8, 0, 23, 11],
           [0, 7.5 - 0.128 + 0.5, 7.5 + 500 - 0.5, 7.5 + 0.128 - 0.5],
           [799, 0, 799, 0]])
  ok.append(_check("delta2bbox hand values (+1, wh clip 16/1000, clamp)",
                   torch.allclose(d, exp, atol=1e-3), f"{d.tolist()}"))
  for hw, exp_hw in (((480, 640), (800, 1067)), ((640, 480), (1067, 800)),
                     ((720, 1280), (750, 1333)), ((359, 501), (800, 1116))):
    _, sc, got, pad = preprocess(np.zeros((*hw, 3), np.uint8))
    ok.append(_check(f"rescale {hw} -> {exp_hw}", got == exp_hw and
                     pad == (-(-got[0] // 32) * 32, -(-got[1] // 32) * 32),
                     f"s={sc:.6f} pad={pad}"))
  keys = official_keys()
  ok.append(_check("374 official keys", len(keys) == 374, f"{len(keys)}"))
  counts = collections.Counter()
  for k, shape in keys:
    if "running" not in k and shape != ():
      counts[k.split(".")[0]] += int(np.prod(shape))
  ok.append(_check("parameter counts per group (LS §12)",
                   dict(counts) == _GROUP_PARAMS, f"{dict(counts)}"))
  if os.path.exists(spec_path):
    text = open(spec_path).read().split("## Appendix A")[1]
    listed = []
    for m in re.finditer(r"^(\S+\.\S+)\s+(\(([\d, ]+)\)|scalar int64)$", text,
                         re.M):
      shape = () if m.group(3) is None else tuple(
          int(v) for v in m.group(3).split(","))
      listed.append((m.group(1), shape))
    ok.append(_check("keys, order and shapes == LS Appendix A",
                     listed == keys, f"({len(listed)} listed)"))
  return all(ok)


# ----------------------------------------------------------------------------
# Driver: clips, both trackers, table
# ----------------------------------------------------------------------------

# name, photo, frame (H, W), object box in photo pixels (x1, y1, x2, y2).
CLIPS = (
    ("landscape", "chelsea", (480, 640), (135, 85, 210, 150)),  # left eye.
    ("portrait", "astronaut", (640, 480), (165, 60, 285, 200)),  # face.
    ("odd", "coffee", (359, 501), (170, 15, 410, 290)),  # cup.
    # Box partly outside the frame (right and bottom): bounded to the padded
    # canvas, not the image (LS §2.6).
    ("edge", "chelsea", (480, 640), (380, 230, 460, 340)),
    # A ~6 px box: finest RoI level, RoI smaller than a P2 cell.
    ("tiny", "astronaut", (640, 480), (230, 135, 234, 139)),
)


def make_clip(photo, frame_hw, box, n):
  """n + 1 frames of `photo` scaled to cover frame_hw + a margin, the window
  moving 3 px right / 2 px down per frame. -> frames, init box xywh."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  img = getattr(skimage.data, photo)()
  h, w = frame_hw
  f = max((h + 2 * n + 8) / img.shape[0], (w + 3 * n + 8) / img.shape[1])
  big = cv2.resize(img, (int(math.ceil(img.shape[1] * f)),
                         int(math.ceil(img.shape[0] * f))),
                   interpolation=cv2.INTER_AREA)
  frames = [np.ascontiguousarray(big[2 * t:2 * t + h, 3 * t:3 * t + w])
            for t in range(n + 1)]
  x1, y1, x2, y2 = (v * f for v in box)
  # Fractional on purpose: the box goes through float32 corners and * s.
  return frames, (round(x1, 2), round(y1, 2), round(x2 - x1, 2),
                  round(y2 - y1, 2))


def legacy_iou(a, b):
  """+1 IoU of two xyxy boxes (LS §11), float64."""
  iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
  ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
  inter = max(iw, 0) * max(ih, 0)
  area = lambda c: (c[2] - c[0] + 1) * (c[3] - c[1] + 1)
  return inter / (area(a) + area(b) - inter)


def compare_frame(ref, res, out, scale):
  """One table row (dict) from the reference and gt_jax's outputs."""
  x, y, w, h = np.asarray(res.box, np.float64)
  jbox = np.array([x, y, x + w - 1, y + h - 1])
  row = dict(iou=legacy_iou(ref["box"], jbox),
             dscore=abs(ref["score"] - res.score), ref_score=ref["score"],
             jax_score=res.score, gap=ref["gap"], ref_idx=ref["index"],
             ref_box=ref["box"], jax_box=jbox)
  row["dbox"] = float(np.abs(ref["box"] - jbox).max())
  row["ok"] = row["iou"] >= IOU_MIN and row["dscore"] <= SCORE_TOL
  row["n_ref"] = len(ref["proposals"])
  if out is not None and "proposal_valid" in out:
    valid = np.asarray(out["proposal_valid"])[0]
    props = np.asarray(out["proposals"])[0][valid]
    row["n_jax"] = int(valid.sum())
    row["jax_idx"] = int(np.asarray(out["index"])[0]) if "index" in out else -1
    n = min(len(props), row["n_ref"])
    if n:
      rp = ref["proposals"]
      same = np.abs(props[:n] - rp[:n]).max(-1) <= 1e-2
      row["first_diff"] = int(np.argmin(same)) if not same.all() else n
      # Set view: rows may swap at near-tied RPN scores, so pair every ref
      # proposal with its closest gt_jax proposal.
      dist = np.abs(rp[:, None, :] - props[None, :, :]).max(-1)
      j = dist.argmin(1)
      paired = dist[np.arange(len(rp)), j] <= 1e-2
      row["matched"] = int(paired.sum())
      if paired.any():
        js = np.asarray(out["proposal_scores"])[0][valid]
        row["dpscore"] = float(
            np.abs(js[j] - ref["proposal_scores"])[paired].max())
        if "rcnn_scores" in out:
          jr = np.asarray(out["rcnn_scores"])[0][valid]
          row["drcnn"] = float(
              np.abs(jr[j] - ref["rcnn_scores"])[paired].max())
  return row


def _fmt(v, f="{:.2e}"):
  return "-" if v is None else f.format(v)


def print_table(rows):
  """Prints one row per frame.

  Columns: IoU, max |box coordinate difference| (px) and |dscore| of the
  top-1; ref/jax scores; gap12 = the reference's top-1 minus top-2 RCNN
  score (a flip needs a drift this big); proposal counts, top-1 proposal
  indices; 'same' = leading rows identical (<= 0.01 px) in the same order,
  'paired' = ref proposals that have a gt_jax proposal within 0.01 px;
  max |d| of RPN and RCNN scores over the pairs.
  """
  hdr = (f"{'clip':10} {'t':>2} {'IoU':>8} {'|dbox|':>8} {'|dscore|':>9} "
         f"{'ref':>7} {'jax':>7} {'gap12':>8} {'#prop r/j':>10} "
         f"{'top1 r/j':>10} {'same':>5} {'paired':>6} {'|dpsc|':>9} "
         f"{'|drcnn|':>9}  status")
  print(hdr)
  print("-" * len(hdr))
  for r in rows:
    print(f"{r['clip']:10} {r['t']:>2} {r['iou']:8.5f} {r['dbox']:8.1e} "
          f"{r['dscore']:9.2e} "
          f"{r['ref_score']:7.4f} {r['jax_score']:7.4f} {r['gap']:8.2e} "
          f"{str(r['n_ref']) + '/' + str(r.get('n_jax', '-')):>10} "
          f"{str(r['ref_idx']) + '/' + str(r.get('jax_idx', '-')):>10} "
          f"{r.get('first_diff', '-'):>5} {r.get('matched', '-'):>6} "
          f"{_fmt(r.get('dpscore')):>9} {_fmt(r.get('drcnn')):>9}  "
          f"{'ok' if r['ok'] else 'FAIL'}")


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--selftest", action="store_true",
                  help="only check the reference on hand-computed cases")
  ap.add_argument("--checkpoint", default="/tmp/gt_parity_random.pth")
  ap.add_argument("--reuse", action="store_true",
                  help="reuse --checkpoint if it exists (same seed assumed)")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--frames", type=int, default=3, help="tracked frames/clip")
  ap.add_argument("--clips", default="landscape,portrait,odd,edge,tiny")
  ap.add_argument("--config", default="configs/globaltrack_r50_fpn.py")
  ap.add_argument("--short-side", type=int, default=0,
                  help="override the (1333, 800) test scale (both sides), "
                  "e.g. 400 -> (667, 400), for a quicker run")
  ap.add_argument("--canvas-multiple", type=int, default=0,
                  help="override cfg.test.canvas_multiple of gt_jax (the "
                  "official padding is 32; coarser canvases are not "
                  "bit-faithful, this measures by how much)")
  ap.add_argument("--spec", default=os.path.join(
      os.path.dirname(__file__), "..", "..", "shared", "reference",
      "legacy-semantics.md"))
  args = ap.parse_args(argv)
  torch.manual_seed(args.seed)

  print("reference self-test:")
  if not selftest(args.spec):
    print("reference self-test FAILED")
    return 2
  if args.selftest:
    return 0

  sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
  # pylint: disable=g-import-not-at-top
  from gt_jax.checkpoint import load_mmdet_weights
  from gt_jax.config import load_config
  from gt_jax.tracking.tracker import Tracker
  # pylint: enable=g-import-not-at-top

  if not (args.reuse and os.path.exists(args.checkpoint)):
    t0 = time.time()
    write_checkpoint(args.checkpoint, random_state_dict(args.seed))
    mib = os.path.getsize(args.checkpoint) / 2**20
    print(f"wrote {args.checkpoint} ({mib:.0f} MiB, seed {args.seed}) in "
          f"{time.time() - t0:.1f}s")
  # The reference reads the file back through torch, gt_jax through its own
  # torch-free reader: both see exactly the bytes on disk.
  sd = torch.load(args.checkpoint, map_location="cpu",
                  weights_only=True)["state_dict"]
  sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
  cfg = load_config(args.config)
  if args.short_side:
    cfg.preprocess.scale = (round(args.short_side * 1333 / 800),
                            args.short_side)
  if args.canvas_multiple:
    cfg.test.canvas_multiple = args.canvas_multiple
  scale = tuple(int(v) for v in cfg.preprocess.scale)
  t0 = time.time()
  tracker = Tracker(cfg, load_mmdet_weights(args.checkpoint))
  print(f"gt_jax variables loaded in {time.time() - t0:.1f}s; scale {scale},"
        f" canvas multiple {cfg.test.canvas_multiple}")
  ref = RefTracker(sd, scale)

  rows = []
  wanted = args.clips.split(",")
  for name, photo, hw, obj in CLIPS:
    if name not in wanted:
      continue
    frames, box = make_clip(photo, hw, obj, args.frames)
    x, y, w, h = box
    ref.init(frames[0], np.array([x, y, x + w - 1, y + h - 1], np.float32))
    tracker.init(frames[0], box)
    print(f"clip {name}: {hw[0]}x{hw[1]} from {photo}, init box xywh {box}")
    for t in range(1, len(frames)):
      t0 = time.time()
      r = ref.update(frames[t])
      t1 = time.time()
      res = tracker.track(frames[t])
      t2 = time.time()
      row = compare_frame(r, res, getattr(tracker, "last_output", None), scale)
      row.update(clip=name, t=t)
      rows.append(row)
      print(f"  t={t} torch {t1 - t0:.1f}s jax {t2 - t1:.1f}s  ref box "
            f"{np.round(row['ref_box'], 2).tolist()} jax box "
            f"{np.round(row['jax_box'], 2).tolist()}"
            + ("" if r["index"] == r["plain_argmax"] else
               "  (class NMS changed the top-1!)"), flush=True)
  print()
  print_table(rows)
  bad = [r for r in rows if not r["ok"]]
  print(f"\n{len(rows) - len(bad)}/{len(rows)} frames pass (IoU >= {IOU_MIN}, "
        f"|dscore| <= {SCORE_TOL})")
  return 1 if bad else 0


if __name__ == "__main__":
  sys.exit(main())
