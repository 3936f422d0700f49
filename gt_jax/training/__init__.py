"""Training: targets and losses, the train step and optimizer, sharding, the loop.

```
losses.py    targets + RPN/RCNN losses for ONE query; cross-query = vmap +
             masked mean over the M instances of a pair
step.py      TrainState, schedule, optimizer with the frozen mask, the pure
             train_step(state, batch, rng) -> (state, metrics)
sharding.py  the only module naming mesh axes; multi-host hand-off
loop.py      train(cfg, workdir): resume, checkpoints, metrics, export
```
"""
