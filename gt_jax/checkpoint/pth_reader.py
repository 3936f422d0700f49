"""Torch-free reader for PyTorch `.pth` files (`torch.save` output).

Two container layouts exist; both are read into plain Python objects in which
every tensor becomes a `numpy.ndarray` (a copy, C-contiguous):

* Legacy "raw pickle" (PyTorch < 1.6, e.g. the 1.1 that wrote the official
  GlobalTrack checkpoint, and `_use_new_zipfile_serialization=False` today):
  five consecutive pickles and raw bytes,
    1. the magic number 0x1950a86a20f9469cfc6c,
    2. the protocol version 1001,
    3. `sys_info` (`little_endian`, type sizes),
    4. the object, whose storages are persistent ids
       `('storage', StorageType, root_key, location, numel, view_metadata)`
       with `view_metadata = None | (view_key, offset, numel)`,
    5. the list of root storage keys,
  then, per key in that order, an int64 element count followed by the raw
  storage bytes.
* Zip (PyTorch >= 1.6): `<archive>/data.pkl` holds the object, whose
  persistent ids are `('storage', StorageType, key, location, numel)`, and
  `<archive>/data/<key>` the raw bytes; `<archive>/byteorder` says the byte
  order ("little" when absent).

The object pickle is read by a restricted unpickler: `find_class` resolves
only an explicit whitelist (OrderedDict, the torch tensor/parameter rebuild
functions, storage types, a few value builtins) to local numpy-based
builders, so no code from the file is ever imported or executed.

The oldest layout, a tar archive (PyTorch <= 0.1.9, still read by 1.x), is
read too: `storages` (count; per storage a `(key, location, StorageType)`
pickle, an int64 element count and the bytes; then the list of storage
views), `tensors` (count; per tensor a `(key, storage_key, TensorType)`
pickle, int32 ndim + 4 pad bytes, int64 sizes, strides and offset) and
`pickle` (the object; persistent ids are tensor/storage keys).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
import struct
import tarfile
import zipfile
from typing import Any, BinaryIO

import ml_dtypes
import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # official: torch/serialization.py.
PROTOCOL_VERSION = 1001  # official: torch/serialization.py.

# Storage class name -> numpy dtype (official: torch/storage.py names).
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
    # Zip-format checkpoints of raw untyped storages count bytes.
    "UntypedStorage": np.uint8,
    "_UntypedStorage": np.uint8,
}
# Tensor classes named by tar-layout tensor records (only their name is used).
_TENSOR_TYPES = frozenset(
    n.replace("Storage", "Tensor") for n in _STORAGE_DTYPES
    if not n.startswith(("Untyped", "_")))
# Modules a storage class may be pickled from (GPU-saved files name
# torch.cuda.FloatStorage; the location is ignored, everything loads on host).
_STORAGE_MODULES = ("torch", "torch.cuda", "torch.storage")


class PthFormatError(ValueError):
  """A `.pth` file is corrupt, truncated or uses something not whitelisted."""

  def __init__(self, path: str, reason: str):
    self.path = path
    self.reason = reason
    super().__init__(f"{path}: {reason}")


@dataclasses.dataclass(eq=False)
class _StorageType:
  """Stand-in for a `torch.*Storage` class: only its element dtype."""
  name: str
  dtype: np.dtype


@dataclasses.dataclass(eq=False)
class _Storage:
  """A storage referenced by the pickle; `data` is filled in when read."""
  key: str
  dtype: np.dtype
  numel: int
  data: np.ndarray | None = None


@dataclasses.dataclass(eq=False)
class _StorageView:
  """Legacy storage view: `numel` elements of `root` from `offset`."""
  root: _Storage
  offset: int
  numel: int


@dataclasses.dataclass(eq=False)
class _LazyTensor:
  """A tensor whose storage bytes may not have been read yet."""
  storage: _Storage | _StorageView
  offset: int
  shape: tuple[int, ...]
  stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """`torch._utils._rebuild_tensor[_v2]` (extra args: grad flag, hooks)."""
  if not isinstance(storage, (_Storage, _StorageView)):
    raise pickle.UnpicklingError(
        f"tensor storage is a {type(storage).__name__}, not a storage")
  return _LazyTensor(storage, int(storage_offset), tuple(map(int, size)),
                     tuple(map(int, stride)))


def _rebuild_parameter(data, *unused):
  """`torch._utils._rebuild_parameter[_with_state]`: a parameter's data."""
  return data


def _codecs_encode(text, encoding="utf-8", *unused):
  """`_codecs.encode`, which protocol-2 pickles use to store `bytes`."""
  if encoding not in ("latin1", "latin-1"):
    raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
  return text.encode("latin1")


def _numpy_dtype(spec, align=False, copy=True):
  """`numpy.dtype` for plain numeric specs ('f8', 'i4', ...) only."""
  dtype = np.dtype(str(spec), bool(align), bool(copy))
  if dtype.hasobject or dtype.names is not None:
    raise pickle.UnpicklingError(f"refusing numpy dtype {spec!r}")
  return dtype


def _numpy_scalar(dtype, data=None):
  """`numpy.core.multiarray.scalar`: a numpy scalar from its raw bytes.

  Newer mmcv stores such scalars in 'meta' (e.g. hook_msgs best scores).
  """
  if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
    raise pickle.UnpicklingError("unsupported numpy scalar pickle")
  return np.frombuffer(data, dtype)[0]


_WHITELIST = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
    ("torch", "device"): str,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}
# Value-type builtins that may appear in 'meta' (never callables with
# side effects such as eval/getattr/__import__).
for _name, _fn in (("set", set), ("frozenset", frozenset), ("slice", slice),
                   ("complex", complex), ("bytearray", bytearray),
                   ("tuple", tuple), ("list", list), ("dict", dict)):
  _WHITELIST[("builtins", _name)] = _fn
  _WHITELIST[("__builtin__", _name)] = _fn
del _name, _fn


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickler resolving only whitelisted globals; storages via `pids`."""

  def __init__(self, file: BinaryIO, storages: dict[str, _Storage],
               zip_format: bool, tar_objects: dict[int, Any] | None = None):
    super().__init__(file)
    self._storages = storages
    self._views: dict[str, _StorageView] = {}
    self._zip_format = zip_format
    self._tar_objects = tar_objects

  def find_class(self, module: str, name: str) -> Any:
    if module in _STORAGE_MODULES and name in _STORAGE_DTYPES:
      return _StorageType(name, np.dtype(_STORAGE_DTYPES[name]))
    if module in ("torch", "torch.cuda") and name in _TENSOR_TYPES:
      return name
    fn = _WHITELIST.get((module, name))
    if fn is None:
      raise pickle.UnpicklingError(
          f"refusing to load global {module}.{name} (not whitelisted)")
    return fn

  def persistent_load(self, pid: Any) -> Any:
    if self._tar_objects is not None:  # tar layout: a tensor/storage key.
      if isinstance(pid, (int, str, bytes)) and int(pid) in self._tar_objects:
        return self._tar_objects[int(pid)]
      raise pickle.UnpicklingError(f"unknown tar persistent id {pid!r}")
    if not isinstance(pid, tuple) or not pid:
      raise pickle.UnpicklingError(f"bad persistent id {pid!r}")
    kind = pid[0].decode("ascii") if isinstance(pid[0], bytes) else pid[0]
    if kind != "storage":
      raise pickle.UnpicklingError(f"unsupported persistent id kind {kind!r}")
    expected = 5 if self._zip_format else 6
    if len(pid) != expected:
      raise pickle.UnpicklingError(
          f"storage persistent id has {len(pid)} fields, expected {expected}")
    storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
    if not isinstance(storage_type, _StorageType):
      raise pickle.UnpicklingError(f"bad storage type {storage_type!r}")
    root = self._storages.get(key)
    if root is None:
      root = _Storage(key, storage_type.dtype, numel)
      self._storages[key] = root
    elif root.numel != numel or root.dtype != storage_type.dtype:
      raise pickle.UnpicklingError(f"storage {key} declared twice differently")
    view_metadata = None if self._zip_format else pid[5]
    if view_metadata is None:
      return root
    view_key, offset, view_numel = view_metadata
    view_key = str(view_key)
    if view_key not in self._views:
      if offset < 0 or offset + view_numel > root.numel:
        raise pickle.UnpicklingError(
            f"storage view {view_key} [{offset}, +{view_numel}) outside "
            f"storage {key} of {root.numel} elements")
      self._views[view_key] = _StorageView(root, int(offset), int(view_numel))
    return self._views[view_key]


def _materialise(t: _LazyTensor) -> np.ndarray:
  """Copies the strided window of a tensor out of its storage."""
  view_of = t.storage if isinstance(t.storage, _StorageView) else None
  root = view_of.root if view_of else t.storage
  if root.data is None:
    raise pickle.UnpicklingError(f"storage {root.key} has no data")
  flat = root.data
  if view_of:
    flat = flat[view_of.offset:view_of.offset + view_of.numel]
  if len(t.shape) != len(t.stride):
    raise pickle.UnpicklingError(
        f"tensor shape {t.shape} and stride {t.stride} differ in rank")
  if any(s < 0 for s in t.shape) or any(s < 0 for s in t.stride):
    raise pickle.UnpicklingError(f"negative shape/stride {t.shape}/{t.stride}")
  if 0 in t.shape:
    return np.zeros(t.shape, flat.dtype.newbyteorder("="))
  last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
  if t.offset < 0 or last >= flat.size:
    raise pickle.UnpicklingError(
        f"tensor (offset {t.offset}, shape {t.shape}, stride {t.stride}) "
        f"reads past its storage of {flat.size} elements")
  item = flat.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
      flat[t.offset:], shape=t.shape, strides=[s * item for s in t.stride],
      writeable=False)
  return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")


def _resolve(obj: Any) -> Any:
  """Replaces every `_LazyTensor` inside containers by a numpy array."""
  if isinstance(obj, _LazyTensor):
    return _materialise(obj)
  if isinstance(obj, dict):
    for k, v in obj.items():
      obj[k] = _resolve(v)
    return obj
  if isinstance(obj, list):
    obj[:] = [_resolve(v) for v in obj]
    return obj
  if isinstance(obj, tuple):
    return type(obj)(_resolve(v) for v in obj)
  if isinstance(obj, (_Storage, _StorageView)):  # a bare storage: 1-D.
    numel = obj.numel
    return _materialise(_LazyTensor(obj, 0, (numel,), (1,)))
  return obj


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
  """Reads n bytes; a size beyond the end (corrupt count) fails early."""
  pos = f.tell()
  end = f.seek(0, io.SEEK_END)
  f.seek(pos)
  if n < 0 or n > end - pos:
    raise EOFError(f"{what} needs {n} bytes, {end - pos} left in the file")
  return f.read(n)


def _load_legacy(f: BinaryIO) -> Any:
  """Reads the raw-pickle layout (see the module docstring)."""
  if _RestrictedUnpickler(f, {}, zip_format=False).load() != MAGIC_NUMBER:
    raise pickle.UnpicklingError("invalid magic number")
  protocol = _RestrictedUnpickler(f, {}, zip_format=False).load()
  if protocol != PROTOCOL_VERSION:
    raise pickle.UnpicklingError(f"unsupported protocol version {protocol!r}")
  sys_info = _RestrictedUnpickler(f, {}, zip_format=False).load()
  order = "<" if (not isinstance(sys_info, dict)
                  or sys_info.get("little_endian", True)) else ">"
  storages: dict[str, _Storage] = {}
  result = _RestrictedUnpickler(f, storages, zip_format=False).load()
  keys = _RestrictedUnpickler(f, {}, zip_format=False).load()
  if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
    raise pickle.UnpicklingError(
        "storage key list does not match the storages of the object")
  for key in map(str, keys):
    st = storages[key]
    (numel,) = struct.unpack(order + "q", _read_exact(f, 8, f"storage {key}"))
    if numel != st.numel:
      raise pickle.UnpicklingError(
          f"storage {key} has {numel} elements, the object says {st.numel}")
    raw = _read_exact(f, numel * st.dtype.itemsize, f"storage {key}")
    st.data = np.frombuffer(raw, st.dtype.newbyteorder(order))
  return _resolve(result)


def _load_zip(zf: zipfile.ZipFile) -> Any:
  """Reads the zip layout (see the module docstring)."""
  pkl = [n for n in zf.namelist()
         if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(pkl) != 1:
    raise pickle.UnpicklingError(
        f"expected one <archive>/data.pkl, found {len(pkl)}")
  prefix = pkl[0][:-len("data.pkl")]
  names = set(zf.namelist())
  order = "<"
  if prefix + "byteorder" in names:
    byteorder = zf.read(prefix + "byteorder")
    if byteorder not in (b"little", b"big"):
      raise pickle.UnpicklingError(f"unknown byteorder {byteorder!r}")
    order = "<" if byteorder == b"little" else ">"
  storages: dict[str, _Storage] = {}
  result = _RestrictedUnpickler(
      io.BytesIO(zf.read(pkl[0])), storages, zip_format=True).load()
  for key, st in storages.items():
    name = f"{prefix}data/{key}"
    if name not in names:
      raise pickle.UnpicklingError(f"missing storage record {name}")
    raw = zf.read(name)
    if len(raw) != st.numel * st.dtype.itemsize:
      raise pickle.UnpicklingError(
          f"storage record {name} has {len(raw)} bytes, expected "
          f"{st.numel * st.dtype.itemsize}")
    st.data = np.frombuffer(raw, st.dtype.newbyteorder(order))
  return _resolve(result)


def _load_tar(tar: tarfile.TarFile) -> Any:
  """Reads the tar layout (see the module docstring); little-endian."""

  def member(name: str) -> io.BytesIO:
    try:
      return io.BytesIO(tar.extractfile(name).read())
    except KeyError:
      raise pickle.UnpicklingError(f"tar archive has no {name!r}") from None

  def unpickle(f: BinaryIO) -> Any:
    return _RestrictedUnpickler(f, {}, zip_format=False).load()

  objects: dict[int, Any] = {}
  f = member("storages")
  for _ in range(int(unpickle(f))):
    key, _, storage_type = unpickle(f)
    if not isinstance(storage_type, _StorageType):
      raise pickle.UnpicklingError(f"bad storage type {storage_type!r}")
    (numel,) = struct.unpack("<q", _read_exact(f, 8, f"storage {key}"))
    st = _Storage(str(key), storage_type.dtype, numel)
    raw = _read_exact(f, numel * st.dtype.itemsize, f"storage {key}")
    st.data = np.frombuffer(raw, st.dtype.newbyteorder("<"))
    objects[int(key)] = st
  for target, root, offset, numel in unpickle(f):
    objects[int(target)] = _StorageView(objects[int(root)], int(offset),
                                        int(numel))
  f = member("tensors")
  for _ in range(int(unpickle(f))):
    key, storage_key, _ = unpickle(f)
    (ndim,) = struct.unpack("<i", _read_exact(f, 4, f"tensor {key}"))
    rest = _read_exact(f, 4 + 16 * ndim + 8, f"tensor {key}")
    values = struct.unpack(f"<{2 * ndim + 1}q", rest[4:])
    objects[int(key)] = _LazyTensor(objects[int(storage_key)], values[-1],
                                    values[:ndim], values[ndim:2 * ndim])
  result = _RestrictedUnpickler(member("pickle"), {}, zip_format=False,
                                tar_objects=objects).load()
  return _resolve(result)


def load_pth(path: str | os.PathLike[str]) -> Any:
  """Loads a `torch.save` file without torch.

  Args:
    path: a `.pth` file in the legacy raw-pickle, zip or tar layout.

  Returns:
    The saved object; dicts, lists and tuples are kept, tensors and
    parameters (and bare storages, as 1-D arrays; untyped ones as uint8)
    become C-contiguous numpy arrays of the stored dtype
    (bfloat16 as `ml_dtypes.bfloat16`), with shapes, strides and storage
    offsets honoured.

  Raises:
    FileNotFoundError: `path` does not exist.
    PthFormatError: the file is corrupt or truncated, or references a
      global outside the whitelist.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"checkpoint not found: {path!r}")
  try:
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as zf:
        return _load_zip(zf)
    if tarfile.is_tarfile(path):
      with tarfile.open(path, "r:") as tar:
        return _load_tar(tar)
    with open(path, "rb") as f:
      result = _load_legacy(f)
      if f.read(1):
        raise pickle.UnpicklingError("unexpected bytes after the last storage")
      return result
  except PthFormatError:
    raise
  except (pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile,
          zipfile.LargeZipFile, tarfile.TarError, ValueError, TypeError,
          KeyError, IndexError, AttributeError, UnicodeDecodeError,
          OverflowError, MemoryError, RecursionError) as e:
    raise PthFormatError(
        path, f"not a readable PyTorch checkpoint "
        f"({type(e).__name__}: {e})") from e
