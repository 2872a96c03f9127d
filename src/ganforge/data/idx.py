"""Reader for the IDX format used by MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

An IDX file is: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32 per
dimension, then the data in C order, big-endian. Files may be gzipped; we detect that by the gzip
magic bytes rather than the extension, because people rename files.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

# IDX dtype codes -> big-endian numpy dtypes (from the format description on the MNIST page).
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == _GZIP_MAGIC:
            return gzip.decompress(raw)
        return raw
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read IDX file {path}: {exc}; delete it and fetch the dataset again") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (plain or gzipped), in native byte order and writable."""
    path = Path(path)
    raw = _read_bytes(path)
    fix = "delete it and fetch the dataset again"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); {fix}")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path} has a corrupt IDX header ({ndim} dimensions); {fix}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "corrupt (trailing bytes)"
        raise DataError(f"{path} is {what}: shape {shape} needs {expected} data bytes, found {got}; {fix}")
    array = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    # astype copies: the result owns writable memory (torch.from_numpy warns on read-only buffers)
    # and is in native byte order, which torch requires.
    return array.astype(dtype.newbyteorder("="))
