"""TrainState, the optimizer (optax) and the pure `train_step`.

The optimizer reproduces the official mmcv/PyTorch recipe (LS §13.3):
  grads -> clip by global norm 35 (trainable params only)
        -> + weight_decay * param (torch SGD adds the decay to the gradient
           before the momentum buffer)
        -> momentum 0.9 (torch: buf = 0.9 buf + g; first step buf = g)
        -> * -lr(step)   (linear warm-up from 1/3 over 500 its, x0.1 at
           epochs 8 and 11; base lr scaled by global_batch / 8).
Frozen parameters (stem + layer1, `frozen_stages = 1`) get no update through
an `optax.multi_transform` mask and are additionally passed through unchanged
(so they stay bit-identical, even a -0.0). BatchNorm statistics
(`batch_stats`) are never differentiated nor updated: the model always uses
the running averages (official `norm_eval = True`).
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from gt_jax.training import losses
from gt_jax.training import schedule as schedule_lib

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """Everything a train step updates (plus frozen BN statistics).

  Attributes:
    step: int32 scalar, number of steps taken (skipped ones included).
    params: the `params` collection.
    batch_stats: the frozen BN statistics, passed through untouched.
    opt_state: optax state.
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree


# ---------------------------------------------------------------------------
# Learning rate, masks, optimizer.


def scaled_lr(base_lr: float, global_batch: int, base_batch: int) -> float:
  """Official linear scaling: `lr = base_lr * global_batch / base_batch`."""
  if global_batch < 1 or base_batch < 1:
    raise ValueError(f"batch sizes must be >= 1, got global_batch="
                     f"{global_batch} base_batch={base_batch}")
  return base_lr * global_batch / base_batch


def lr_schedule(peak_lr: float, warmup_steps: int, warmup_ratio: float,
                decay_steps: tuple[int, ...],
                decay_factor: float) -> optax.Schedule:
  """mmcv step policy with linear warm-up.

  `lr(i) = peak * decay_factor ** #{b in decay_steps: i >= b}` times, for
  `i < warmup_steps`, `1 - (1 - i / warmup_steps) * (1 - warmup_ratio)`
  (mmcv applies the warm-up factor to the already decayed lr).

  Args:
    peak_lr: the scaled base lr.
    warmup_steps: official 500 (0 disables).
    warmup_ratio: official 1/3.
    decay_steps: step indices at which lr is multiplied by `decay_factor`.
    decay_factor: official 0.1.
  """
  bounds = tuple(int(b) for b in decay_steps)

  def schedule(count):
    count = jnp.asarray(count, jnp.float32)
    lr = jnp.asarray(peak_lr, jnp.float32)
    for b in bounds:
      lr = jnp.where(count >= b, lr * decay_factor, lr)
    if warmup_steps > 0:
      k = 1.0 - (1.0 - count / warmup_steps) * (1.0 - warmup_ratio)
      lr = jnp.where(count < warmup_steps, lr * k, lr)
    return lr

  return schedule


def schedule_from_config(cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """The lr schedule of a full config (`gt_jax.training.schedule` rules)."""
  s = schedule_lib.resolve_schedule(cfg)
  return lr_schedule(s.peak_lr, s.warmup_steps, s.warmup_ratio,
                     s.decay_steps, s.decay_factor)


def _path_names(path) -> list[str]:
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def is_frozen(names: list[str], frozen_stages: int) -> bool:
  """Whether a `params` path belongs to stem + layer1..layer{frozen_stages}.

  Official `frozen_stages = 1`: `backbone/conv1`, `backbone/bn1` and every
  `backbone/layer1_*` block (LS §3). `frozen_stages = 0` freezes the stem
  only; -1 freezes nothing.
  """
  if frozen_stages < 0 or len(names) < 2 or names[0] != "backbone":
    return False
  if names[1] in ("conv1", "bn1"):
    return True
  for stage in range(1, frozen_stages + 1):
    if names[1].startswith(f"layer{stage}_"):
      return True
  return False


def trainable_mask(params: PyTree, frozen_stages: int) -> PyTree:
  """Pytree of bools like `params`: True = trained."""
  return jax.tree_util.tree_map_with_path(
      lambda p, _: not is_frozen(_path_names(p), frozen_stages), params)


def make_optimizer(schedule: optax.Schedule, mask: PyTree, momentum: float,
                   weight_decay: float, clip_norm: float, name: str = "sgd",
                   adam_betas: tuple[float, float] = (0.9, 0.999),
                   adam_eps: float = 1e-8) -> optax.GradientTransformation:
  """The optimizer with gradient clipping, frozen leaves masked.

  Args:
    schedule: lr as a function of the optimizer step.
    mask: `trainable_mask(params, ...)`.
    momentum, weight_decay, clip_norm: official 0.9, 1e-4, 35.
    name: "sgd" (official: torch.optim.SGD, L2 decay added to the gradient,
      heavy-ball momentum) or "adamw" (Adam on the clipped gradient with
      decoupled weight decay, lr x (adam direction + decay x param); not
      official; tried for the CPU demo's from-scratch training, README).
    adam_betas, adam_eps: Adam's moment decays and epsilon ("adamw" only).
  """
  if name == "sgd":
    direction = [optax.add_decayed_weights(weight_decay),
                 optax.trace(decay=momentum, nesterov=False)]
  elif name == "adamw":
    direction = [optax.scale_by_adam(b1=adam_betas[0], b2=adam_betas[1],
                                     eps=adam_eps),
                 optax.add_decayed_weights(weight_decay)]
  else:
    raise ValueError(f"optim.name must be 'sgd' or 'adamw', got {name!r}")
  trainable = optax.chain(optax.clip_by_global_norm(clip_norm), *direction,
                          optax.scale_by_learning_rate(schedule))
  labels = jax.tree.map(lambda m: "train" if m else "frozen", mask)
  return optax.multi_transform(
      {"train": trainable, "frozen": optax.set_to_zero()}, labels)


def optimizer_from_config(cfg: ml_collections.ConfigDict,
                          params: PyTree) -> optax.GradientTransformation:
  o = cfg.optim
  return make_optimizer(schedule_from_config(cfg),
                        trainable_mask(params, o.frozen_stages), o.momentum,
                        o.weight_decay, o.grad_clip_norm,
                        name=o.get("name", "sgd"),
                        adam_betas=tuple(o.get("adam_betas", (0.9, 0.999))),
                        adam_eps=o.get("adam_eps", 1e-8))


def loss_config_from(cfg: ml_collections.ConfigDict) -> losses.LossConfig:
  """Turns `cfg.train` + anchor fields of `cfg.model` into a LossConfig."""
  t, m = cfg.train, cfg.model
  names = {f.name for f in losses.LossConfig.__dataclass_fields__.values()}
  kw = {k: (tuple(v) if isinstance(v, (list, tuple)) else v)
        for k, v in t.items() if k in names}
  kw.update(anchor_strides=tuple(m.anchor_strides),
            anchor_scales=tuple(m.anchor_scales),
            anchor_ratios=tuple(m.anchor_ratios),
            rpn_target_stds=tuple(m.rpn_target_stds),
            rcnn_target_stds=tuple(m.rcnn_target_stds))
  return losses.LossConfig(**kw)


def init_state(variables: dict[str, PyTree],
               optimizer: optax.GradientTransformation) -> TrainState:
  """TrainState at step 0 from model variables (`params`, `batch_stats`)."""
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}),
                    opt_state=optimizer.init(params))


# ---------------------------------------------------------------------------
# The step.


def _norm(tree: PyTree) -> jax.Array:
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32)))
                      for x in leaves))


def _select(mask: PyTree, tree: PyTree) -> list[jax.Array]:
  return [x for m, x in zip(jax.tree.leaves(mask), jax.tree.leaves(tree))
          if m]


def _set_counts(opt_state: PyTree, value: jax.Array) -> PyTree:
  """Sets every optax `count` field (the schedule's step) to `value`."""
  def fix(node):
    if hasattr(node, "_fields") and "count" in node._fields:
      return node._replace(count=jnp.asarray(value, node.count.dtype))
    return node
  is_count_state = lambda n: hasattr(n, "_fields") and "count" in n._fields
  return jax.tree.map(fix, opt_state, is_leaf=is_count_state)


def sharded_loss_and_grads(
    model: Any, loss_cfg: losses.LossConfig, mask: PyTree,
    mesh: jax.sharding.Mesh, axis: str
) -> Callable[[PyTree, PyTree, dict[str, jax.Array], jax.Array],
              tuple[jax.Array, dict[str, jax.Array], PyTree]]:
  """`(params, batch_stats, batch, keys) -> (loss, metrics, grads)`, data
  parallel by hand (`jax.shard_map` over `axis`).

  Each device runs `losses.pair_losses` on its own pairs (its slice of the
  batch and of the `(B,)` pair keys), divides its sums by the global number
  of valid pairs and differentiates that; one `psum` of the loss, metrics
  and trainable gradients follows. The result is `batch_loss`'s masked mean
  and its gradient (summed in another order), but the compiled step has no
  other collective: left to the SPMD partitioner, the batch-sharded step
  moved feature maps between devices (the query/search concatenation),
  all-gathered proposal scores for top-k and all-reduced every 3x3 filter
  gradient inside its tap loop, and on XLA's CPU backend such a collective
  inside a loop could interleave differently on two processes and hang
  them (docs/performance.md). Frozen leaves get zero gradients.
  """
  mask_leaves = [bool(m) for m in jax.tree.leaves(mask)]

  def local(params, batch_stats, batch, keys):
    def loss_fn(p):
      variables = {"params": p, "batch_stats": batch_stats}
      per_pair, valid = losses.pair_losses(model, variables, batch, keys,
                                           loss_cfg)
      # This device's share of the global masked mean (valid pairs counted
      # over all devices; the count carries no gradient).
      count = jax.lax.psum(jnp.sum(valid.astype(jnp.float32)), axis)
      sums = losses.masked_mean(per_pair, valid, count)
      return sum(sums[k] for k in losses.LOSS_TERMS), sums

    (loss, sums), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    treedef = jax.tree.structure(grads)
    leaves = jax.tree.leaves(grads)
    trained = jax.lax.psum([g for g, m in zip(leaves, mask_leaves) if m],
                           axis)
    it = iter(trained)
    grads = jax.tree.unflatten(treedef, [
        next(it) if m else jnp.zeros_like(g)
        for g, m in zip(leaves, mask_leaves)])
    loss, sums = jax.lax.psum((loss, sums), axis)
    return loss, dict(sums, loss=loss), grads

  # check_vma=False: the model's loops (NMS, sampling, tap loops) carry
  # values that mix replicated and per-device inputs, which the varying-axes
  # checker rejects without pvary annotations throughout the model. The
  # outputs are replicated because every one of them is psum-ed above.
  return jax.shard_map(local, mesh=mesh,
                       in_specs=(P(), P(), P(axis), P(axis)),
                       out_specs=(P(), P(), P()), check_vma=False)


def make_train_step(
    model: Any, loss_cfg: losses.LossConfig,
    optimizer: optax.GradientTransformation, mask: PyTree,
    schedule: optax.Schedule, mesh: jax.sharding.Mesh | None = None,
    axis: str | None = None
) -> Callable[[TrainState, dict[str, jax.Array], jax.Array],
              tuple[TrainState, dict[str, jax.Array]]]:
  """Returns the pure `train_step(state, batch, rng) -> (state, metrics)`.

  Args:
    model: the `QGRCNN` (its `dtype` is the compute dtype; params stay f32).
    loss_cfg: static loss settings.
    optimizer: from `make_optimizer` with the same `mask`.
    mask: trainable mask (static Python bools).
    schedule: the optimizer's lr schedule (for logging).
    mesh, axis: with a mesh, the loss and gradients are computed data
      parallel by hand over its axis `axis` (default: its first;
      `sharded_loss_and_grads`; the batch must be split over it); None: one
      `jax.value_and_grad` of `losses.batch_loss`, partitioned by XLA if the
      inputs are sharded.

  The step folds `state.step` into `rng`. A non-finite loss, gradient norm
  or updated parameter leaves params and optimizer state unchanged (`skipped = 1` in the
  metrics); the step counter still advances so the next batch is new, and
  so does the optimizer's schedule count (it always equals `state.step`), so
  skipped steps do not shift the lr schedule.
  """
  mask_leaves = [bool(m) for m in jax.tree.leaves(mask)]
  by_hand = (None if mesh is None else sharded_loss_and_grads(
      model, loss_cfg, mask, mesh, axis or mesh.axis_names[0]))

  def train_step(state: TrainState, batch: dict[str, jax.Array],
                 rng: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    key = jax.random.fold_in(rng, state.step)

    if by_hand is not None:
      loss, metrics, grads = by_hand(state.params, state.batch_stats, batch,
                                     losses.pair_keys(key, batch))
    else:
      def loss_fn(params):
        variables = {"params": params, "batch_stats": state.batch_stats}
        return losses.batch_loss(model, variables, batch, key, loss_cfg)

      (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
          state.params)
    updates, new_opt = optimizer.update(grads, state.opt_state, state.params)
    treedef = jax.tree.structure(state.params)
    new_params = jax.tree.unflatten(treedef, [
        p + u.astype(p.dtype) if m else p
        for p, u, m in zip(jax.tree.leaves(state.params),
                           jax.tree.leaves(updates), mask_leaves)
    ])
    grad_norm = _norm(_select(mask, grads))
    # A finite gradient times a huge lr can still overflow the parameters.
    ok = (jnp.isfinite(loss) & jnp.isfinite(grad_norm)
          & jnp.isfinite(_norm(_select(mask, new_params))))
    keep = lambda new, old: jax.tree.map(
        lambda a, b: jnp.where(ok, a, b), new, old)
    new_opt = keep(new_opt, state.opt_state)
    # The schedule follows the step, skipped steps included.
    new_opt = _set_counts(new_opt, state.step + 1)
    new_state = state.replace(step=state.step + 1,
                              params=keep(new_params, state.params),
                              opt_state=new_opt)
    # The lr that was applied: every optax count equals state.step before
    # the update (_set_counts), so the schedule at state.step.
    metrics = dict(metrics)
    metrics.update(
        grad_norm=grad_norm,
        param_norm=_norm(_select(mask, new_state.params)),
        update_norm=_norm(_select(mask, updates)),
        lr=schedule(state.step),
        skipped=(~ok).astype(jnp.float32))
    return new_state, metrics

  return train_step


def host_float_metrics(metrics: dict[str, Any]) -> dict[str, float]:
  """Device metrics -> Python floats (one transfer)."""
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


def count_params(tree: PyTree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
