"""Tracking: frame -> canvas, the pure query/search steps, the Tracker, the engine.

```
preprocess.py    host: frame -> normalised, padded canvas; box conversions
search.py        pure jittable query_step / search_step (LS §5-§10)
tracker.py       Tracker: init(frame, box) / track(frame) -> TrackResult
frame_loader.py  threaded frame decoding ahead of the device
engine.py        the ONE batched engine that tracks many sequences
```
"""
