"""Torch-free writers of legacy (PyTorch < 1.6) `.pth` files, for tests.

It writes what `torch.save(obj, f, _use_new_zipfile_serialization=False)`
writes: the magic number, protocol version and `sys_info` pickles, the object
pickle (protocol 2) whose storages are persistent ids
`('storage', torch.<T>Storage, key, 'cpu', numel, view_metadata)`, the list of
root storage keys, then per key an int64 element count and the raw
little-endian bytes. `tests/fixtures/make_pth_fixtures.py` checks with real
PyTorch that `torch.load` reads the output back exactly.

`write_tar_pth` writes the older tar layout (PyTorch <= 0.1.9).

Numpy arrays in `obj` are saved as contiguous tensors with their own storage;
`Tensor` / `Storage` give control over strides, offsets, shared storages and
(PyTorch 1.1) storage views.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pickle
import struct
from typing import Any, BinaryIO

import ml_dtypes
import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
# What PyTorch writes on little-endian Linux.
SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}

_KEY_BASE = 94000000000000  # looks like the pointer keys torch writes.
_TAR_TENSOR_KEYS = 10**6  # tar layout: tensor keys after the storage keys.
_STORAGE_NAMES = {
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(ml_dtypes.bfloat16): "BFloat16Storage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


@dataclasses.dataclass(eq=False)
class Storage:
  """A 1-D storage; `view_of=(root, offset)` makes it a PyTorch 1.1 view."""
  data: np.ndarray
  view_of: tuple["Storage", int] | None = None


@dataclasses.dataclass(eq=False)
class Tensor:
  """A tensor over `storage` (element offset and strides)."""
  storage: Storage
  offset: int
  shape: tuple[int, ...]
  stride: tuple[int, ...]


class _Global:
  """Pickled as the GLOBAL opcode `module.name` (no import needed)."""

  def __init__(self, module: str, name: str):
    self.module, self.name = module, name

  def __call__(self, *args):  # pickle requires reduce functions callable.
    raise TypeError("placeholder")


_GLOBALS: dict[tuple[str, str], _Global] = {}


def _global(module: str, name: str) -> _Global:
  """One object per name, so the pickle memo reuses it like torch's does."""
  return _GLOBALS.setdefault((module, name), _Global(module, name))


def _as_tensor(a: np.ndarray) -> Tensor:
  a = np.array(a, order="C")  # (ascontiguousarray would make 0-d 1-d.)
  strides = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
  return Tensor(Storage(a.reshape(-1)), 0, a.shape, strides)


class _TensorReduce:
  """Reduces like `torch.Tensor.__reduce_ex__` (rebuild_tensor_v2)."""

  def __init__(self, t: Tensor):
    self.t = t

  def __reduce_ex__(self, protocol):
    t = self.t
    return (_global("torch._utils", "_rebuild_tensor_v2"),
            (t.storage, int(t.offset), tuple(map(int, t.shape)),
             tuple(map(int, t.stride)), False, collections.OrderedDict()))


class _Pickler(pickle._Pickler):  # pylint: disable=protected-access
  """Protocol-2 pickler with torch storages as persistent ids."""

  def __init__(self, f: BinaryIO):
    super().__init__(f, protocol=2)
    self.roots: dict[int, tuple[str, Storage]] = {}
    self.views: dict[int, int] = {}

  def _key(self, s: Storage) -> str:
    # torch uses str(storage._cdata): a fresh string object per reference,
    # so the pickle memo never shares keys; likewise here.
    if id(s) not in self.roots:
      self.roots[id(s)] = (len(self.roots), s)
    return str(_KEY_BASE + self.roots[id(s)][0])

  def persistent_id(self, obj):
    if not isinstance(obj, Storage):
      return None
    root, offset = (obj, 0) if obj.view_of is None else obj.view_of
    if root.view_of is not None:
      raise ValueError("a view of a view")
    cls = _global("torch", _STORAGE_NAMES[root.data.dtype])
    view = None
    if obj.view_of is not None:
      n = self.views.setdefault(id(obj), len(self.views))
      view = (str(_KEY_BASE // 2 + n), int(offset), int(obj.data.size))
    return ("storage", cls, self._key(root), "cpu", int(root.data.size), view)

  def save(self, obj, save_persistent_id=True):
    if isinstance(obj, _Global):
      memo = self.memo.get(id(obj))
      if memo is not None:
        self.write(self.get(memo[0]))
      else:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)
      return
    if isinstance(obj, np.ndarray):
      obj = _as_tensor(obj)
    if isinstance(obj, Tensor):
      obj = _TensorReduce(obj)
    super().save(obj, save_persistent_id)


def dumps_legacy(obj: Any, sys_info: dict | None = None) -> bytes:
  """The bytes of a legacy `torch.save(obj)`."""
  f = io.BytesIO()
  for header in (MAGIC_NUMBER, PROTOCOL_VERSION, sys_info or SYS_INFO):
    pickle.dump(header, f, protocol=2)
  pickler = _Pickler(f)
  pickler.dump(obj)
  keys = [str(_KEY_BASE + n) for n, _ in pickler.roots.values()]
  pickle.dump(keys, f, protocol=2)
  for _, storage in pickler.roots.values():
    data = storage.data
    f.write(struct.pack("<q", data.size))
    f.write(np.ascontiguousarray(data, data.dtype.newbyteorder("<"))
            .tobytes())
  return f.getvalue()


class _TarPickler(pickle.Pickler):
  """The tar layout's object pickle: tensors are persistent ids (keys)."""

  def __init__(self, f: BinaryIO):
    super().__init__(f, protocol=2)
    self.tensors: list[Tensor] = []

  def persistent_id(self, obj):
    if isinstance(obj, np.ndarray):
      obj = _as_tensor(obj)
    if isinstance(obj, Tensor):
      self.tensors.append(obj)
      return str(_TAR_TENSOR_KEYS + len(self.tensors) - 1)
    return None


def _tar_add(tar, name: str, data: bytes) -> None:
  import tarfile  # pylint: disable=g-import-not-at-top
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def write_tar_pth(path: str, obj: Any) -> None:
  """Writes the tar layout that PyTorch <= 0.1.9 saved (and 1.x reads).

  Members (as torch/serialization.py `_legacy_load` reads them): `sys_info`;
  `storages`: a count, per storage a `(key, 'cpu', torch.<T>Storage)`
  pickle, an int64 element count and the bytes, then `[]` (no views);
  `tensors`: a count, per tensor a `(key, storage_key, torch.<T>Tensor)`
  pickle, int32 ndim, 4 pad bytes, int64 sizes, strides and offset;
  `pickle`: the object with tensors as persistent ids.
  """
  import tarfile  # pylint: disable=g-import-not-at-top
  f = io.BytesIO()
  pickler = _TarPickler(f)
  pickler.dump(obj)
  storages: dict[int, tuple[int, Storage]] = {}
  for t in pickler.tensors:
    if t.storage.view_of is not None:
      raise ValueError("storage views are not supported by write_tar_pth")
    storages.setdefault(id(t.storage), (len(storages), t.storage))
  s = io.BytesIO()
  pickle.dump(len(storages), s, protocol=2)
  for key, st in storages.values():
    name = _STORAGE_NAMES[st.data.dtype]
    _Pickler(s).dump((key, "cpu", _global("torch", name)))
    s.write(struct.pack("<q", st.data.size))
    s.write(np.ascontiguousarray(st.data, st.data.dtype.newbyteorder("<"))
            .tobytes())
  pickle.dump([], s, protocol=2)
  t_io = io.BytesIO()
  pickle.dump(len(pickler.tensors), t_io, protocol=2)
  for i, t in enumerate(pickler.tensors):
    key = storages[id(t.storage)][0]
    tname = _STORAGE_NAMES[t.storage.data.dtype].replace("Storage", "Tensor")
    _Pickler(t_io).dump((_TAR_TENSOR_KEYS + i, key, _global("torch", tname)))
    t_io.write(struct.pack("<i", len(t.shape)) + b"\x00" * 4)
    t_io.write(struct.pack(f"<{2 * len(t.shape) + 1}q", *t.shape, *t.stride,
                           t.offset))
  with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
    _tar_add(tar, "sys_info", pickle.dumps(SYS_INFO, protocol=2))
    _tar_add(tar, "pickle", f.getvalue())
    _tar_add(tar, "tensors", t_io.getvalue())
    _tar_add(tar, "storages", s.getvalue())


def write_legacy_pth(path: str, obj: Any) -> None:
  """Writes `obj` like `torch.save(..., _use_new_zipfile_serialization=0)`."""
  with open(path, "wb") as f:
    f.write(dumps_legacy(obj))
