"""Keyed tokens: HMAC-SHA256 of each distinct value of a column, as hex, an integer or a pick.

HMAC has no vectorised form in Arrow, so the loop over a batch's *distinct* values (the column
is dictionary-encoded first) is the only Python per value in sanitizing; everything around it
works on whole arrays (one ``hexlify`` for all tokens, one buffer for all integers), and
:class:`DigestCache` keeps the digests of values that come back in later batches. Each rule
derives its own sub-key from the job's key (:func:`subkey`), so a hash token says nothing about
the fake name or the date offset of the same value.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import threading
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc


# --- keys and HMAC -------------------------------------------------------------------------------
def subkey(key: bytes, purpose: str) -> bytes:
    """The key a rule uses, derived from the job's key: ``HMAC(key, "etlrun/sanitize/<purpose>")``.

    Example:
        >>> subkey(b"k" * 32, "hash").hex()[:16]
        '7a5590d3e1682dca'
    """
    return hmac.digest(key, b"etlrun/sanitize/" + purpose.encode(), "sha256")


def hmac_sha256(key: bytes, values: Iterable[bytes]) -> list[bytes]:
    """HMAC-SHA256 of each value: RFC 2104 with the padded key's two hash states computed once.

    OpenSSL's one-shot ``hmac.digest`` sets up both states for every call; copying them is
    about three times faster, and this loop is where keyed rules spend their time.

    Example:
        >>> hmac_sha256(b"key", [b"abc"]) == [hmac.digest(b"key", b"abc", "sha256")]
        True
    """
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy
    out: list[bytes] = []
    append = out.append
    for value in values:
        i = inner()
        i.update(value)
        o = outer()
        o.update(i.digest())
        append(o.digest())
    return out


def as_text(column: pa.Array) -> pa.Array:
    """The canonical text of each value, so ``123`` and ``'123'`` hash alike in every table."""
    typ = column.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return column
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return column
    return column.cast(pa.string())


def distinct(column: pa.Array) -> tuple[list[bytes], pa.Array]:
    """The distinct values of ``column`` as bytes, and each row's index into them (NULL: null)."""
    encoded = pc.dictionary_encode(as_text(column))
    if isinstance(encoded, pa.ChunkedArray):  # pragma: no cover - arrays in, arrays out
        encoded = encoded.combine_chunks()
    dictionary = encoded.dictionary
    if not (pa.types.is_binary(dictionary.type) or pa.types.is_large_binary(dictionary.type)):
        dictionary = dictionary.cast(pa.binary())
    return dictionary.to_pylist(), encoded.indices


class DigestCache:
    """HMAC digests of values met in earlier batches, per key, so a value that comes back (a
    patient's name on every visit, in every chunk and table of the run) is hashed once.

    Bounded and adaptive: a key's map is emptied when it reaches ``limit`` values (~200 bytes
    each), and a key whose first ``probe`` lookups found fewer than 1 in ``worth`` values
    already known stops using the map (a column of distinct values would pay a dictionary miss
    and insert per value for nothing: measured, that doubles the cost of the hash). The map
    lives in this process only and is never written anywhere.
    """

    def __init__(self, limit: int = 50_000, probe: int = 50_000, worth: int = 10) -> None:
        self.limit, self.probe, self.worth = limit, probe, worth
        self._maps: dict[bytes, dict[bytes, bytes]] = {}
        self._seen: dict[bytes, list[int]] = {}
        """Per key: [lookups, hits] while probing."""
        self._off: set[bytes] = set()
        self._lock = threading.Lock()

    def digests(self, key: bytes, values: Sequence[bytes]) -> list[bytes]:
        if key in self._off:
            return hmac_sha256(key, values)
        with self._lock:
            known = self._maps.setdefault(key, {})
            seen = self._seen.setdefault(key, [0, 0])
        get = known.get
        found = [get(v) for v in values]
        missing = [v for v, d in zip(values, found, strict=True) if d is None]
        fresh = hmac_sha256(key, missing)
        if seen[0] < self.probe:
            seen[0] += len(values)
            seen[1] += len(values) - len(missing)
            if seen[0] >= self.probe and seen[1] * self.worth < seen[0]:
                with self._lock:
                    self._off.add(key)
                    self._maps.pop(key, None)
                computed = iter(fresh)
                return [d if d is not None else next(computed) for d in found]
        if len(known) + len(missing) > self.limit:
            known.clear()
        if len(missing) <= self.limit:
            known.update(zip(missing, fresh, strict=True))
        computed = iter(fresh)
        return [d if d is not None else next(computed) for d in found]


CACHE = DigestCache()
"""The process's digest cache, shared by the threads that run chunks."""


def digests(key: bytes, values: Sequence[bytes], cache: DigestCache | None) -> list[bytes]:
    return cache.digests(key, values) if cache is not None else hmac_sha256(key, values)


def uint64(digests: Sequence[bytes]) -> pa.Array:
    """The first 8 bytes of each digest, little-endian, as uint64 (vectorised from one buffer)."""
    data = pa.py_buffer(b"".join([d[:8] for d in digests]))
    return pa.Array.from_buffers(pa.uint64(), len(digests), [None, data])


def _int64(digests: Sequence[bytes]) -> pa.Array:
    """The first 8 bytes of each digest, little-endian, as a non-negative int64."""
    raw = uint64(digests).view(pa.int64())
    return pc.bit_wise_and(raw, pa.scalar(0x7FFF_FFFF_FFFF_FFFF, pa.int64()))


def _hex(digests: Sequence[bytes], length: int) -> pa.Array:
    """Each digest as lowercase hex cut to ``length``: one ``hexlify`` of all of them, laid out
    as a string array by offsets (no Python string per value)."""
    n = len(digests)
    text = binascii.hexlify(b"".join(digests))
    offsets = pa.array(range(0, 64 * (n + 1), 64), pa.int32()).buffers()[1]
    tokens = pa.Array.from_buffers(pa.string(), n, [None, offsets, pa.py_buffer(text)])
    return tokens if length >= 64 else pc.utf8_slice_codeunits(tokens, 0, length)


def hash_hex(
    column: pa.Array, key: bytes, length: int = 64, cache: DigestCache | None = None
) -> pa.Array:
    """Keyed HMAC-SHA256 of each value as lowercase hex, cut to ``length`` characters."""
    values, indices = distinct(column)
    return _hex(digests(key, values, cache), length).take(indices)


def hash_int(column: pa.Array, key: bytes, cache: DigestCache | None = None) -> pa.Array:
    """Keyed HMAC-SHA256 of each value as a stable non-negative 64-bit integer surrogate."""
    values, indices = distinct(column)
    return _int64(digests(key, values, cache)).take(indices)
