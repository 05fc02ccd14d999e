"""BLAKE2b and BLAKE2s in pure Python: CPython's `_blake2` for a one-file
program whose static libpython lacks CPython's own (Debian's 3.14 and
later leave out its HACL* code, see hooks/onefile.py).

The same interface as the built-in module (RFC 7693 and the BLAKE2 paper's
parameter block: keys, salt, personalization and tree hashing), so hashlib
and its callers see no difference but speed: about a megabyte a second.
"""

from __future__ import annotations

import binascii

__all__ = ["blake2b", "blake2s"]

_SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)
_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip


class _Blake2:
    # Set by each variant: word size in bits, rounds, rotations, sizes.
    _BITS: int
    _ROUNDS: int
    _ROTATIONS: tuple[int, int, int, int]
    _IV: tuple[int, ...]
    SALT_SIZE: int
    PERSON_SIZE: int
    MAX_KEY_SIZE: int
    MAX_DIGEST_SIZE: int
    name: str

    def __init__(
        self,
        data: object = b"",
        *,
        digest_size: int | None = None,
        key: bytes = b"",
        salt: bytes = b"",
        person: bytes = b"",
        fanout: int = 1,
        depth: int = 1,
        leaf_size: int = 0,
        node_offset: int = 0,
        node_depth: int = 0,
        inner_size: int = 0,
        last_node: bool = False,
        usedforsecurity: bool = True,
        string: object = None,
    ) -> None:
        if string is not None:
            if data != b"":
                raise TypeError(
                    "'data' and 'string' are mutually exclusive and support for 'string' "
                    "keyword parameter is slated for removal in a future version."
                )
            data = string
        if digest_size is None:
            digest_size = self.MAX_DIGEST_SIZE
        key, salt, person = (bytes(memoryview(value)) for value in (key, salt, person))
        word = self._BITS // 8
        if not 1 <= digest_size <= self.MAX_DIGEST_SIZE:
            raise ValueError(
                f"digest_size for {type(self).__name__.capitalize()} must be between 1 and "
                f"{self.MAX_DIGEST_SIZE} bytes, here it is {digest_size}"
            )
        for what, value, most in (("key", key, self.MAX_KEY_SIZE), ("salt", salt, self.SALT_SIZE),
                                  ("person", person, self.PERSON_SIZE)):  # fmt: skip
            if len(value) > most:
                raise ValueError(f"maximum {what} length is {most} bytes")
        if not 0 <= fanout <= 255:
            raise ValueError("fanout must be between 0 and 255")
        if not 1 <= depth <= 255:
            raise ValueError("depth must be between 1 and 255")
        if not 0 <= leaf_size < 1 << 32:
            raise OverflowError("leaf_size is too large")
        if not 0 <= node_offset < 1 << (64 if word == 8 else 48):
            raise OverflowError("node_offset is too large")
        if not 0 <= node_depth <= 255:
            raise ValueError("node_depth must be between 0 and 255")
        if not 0 <= inner_size <= self.MAX_DIGEST_SIZE:
            raise ValueError(f"inner_size must be between 0 and is {self.MAX_DIGEST_SIZE}")
        # The parameter block, XORed into the initial state word by word.
        block = bytes((digest_size, len(key), fanout, depth)) + leaf_size.to_bytes(4, "little")
        if word == 8:
            block += node_offset.to_bytes(8, "little") + bytes((node_depth, inner_size))
            block += bytes(14)
        else:
            block += node_offset.to_bytes(6, "little") + bytes((node_depth, inner_size))
        block += salt.ljust(self.SALT_SIZE, b"\0") + person.ljust(self.PERSON_SIZE, b"\0")
        self._h = [
            iv ^ int.from_bytes(block[i * word : (i + 1) * word], "little")
            for i, iv in enumerate(self._IV)
        ]
        self._buffer = b""
        self._counter = 0
        self._last_node = bool(last_node)
        self.digest_size = digest_size
        if key:
            self._buffer = key.ljust(self.block_size, b"\0")
        self.update(data)

    @property
    def block_size(self) -> int:
        return 16 * self._BITS // 8

    def update(self, data: object, /) -> None:
        if isinstance(data, str):
            raise TypeError("Strings must be encoded before hashing")
        data = bytes(memoryview(data))
        size = self.block_size
        buffer = self._buffer + data
        # Keep the last block, full or not: it is compressed with the final flag.
        whole = max(0, (len(buffer) - 1) // size)
        for i in range(whole):
            self._counter += size
            self._compress(buffer[i * size : (i + 1) * size], False)
        self._buffer = buffer[whole * size :]

    def copy(self) -> _Blake2:
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._h = list(self._h)
        return other

    def digest(self) -> bytes:
        final = self.copy()
        final._counter += len(final._buffer)
        final._compress(final._buffer.ljust(self.block_size, b"\0"), True)
        word = self._BITS // 8
        out = b"".join(h.to_bytes(word, "little") for h in final._h)
        return out[: self.digest_size]

    def hexdigest(self) -> str:
        return binascii.hexlify(self.digest()).decode("ascii")

    def _compress(self, block: bytes, last: bool) -> None:
        bits = self._BITS
        mask = (1 << bits) - 1
        word = bits // 8
        r1, r2, r3, r4 = self._ROTATIONS
        m = [int.from_bytes(block[i * word : (i + 1) * word], "little") for i in range(16)]
        v = self._h + list(self._IV)
        v[12] ^= self._counter & mask
        v[13] ^= (self._counter >> bits) & mask
        if last:
            v[14] ^= mask
            if self._last_node:
                v[15] ^= mask

        def g(a: int, b: int, c: int, d: int, x: int, y: int) -> None:
            va, vb, vc, vd = v[a], v[b], v[c], v[d]
            va = (va + vb + x) & mask
            vd ^= va
            vd = ((vd >> r1) | (vd << (bits - r1))) & mask
            vc = (vc + vd) & mask
            vb ^= vc
            vb = ((vb >> r2) | (vb << (bits - r2))) & mask
            va = (va + vb + y) & mask
            vd ^= va
            vd = ((vd >> r3) | (vd << (bits - r3))) & mask
            vc = (vc + vd) & mask
            vb ^= vc
            vb = ((vb >> r4) | (vb << (bits - r4))) & mask
            v[a], v[b], v[c], v[d] = va, vb, vc, vd

        for round_ in range(self._ROUNDS):
            s = _SIGMA[round_ % 10]
            g(0, 4, 8, 12, m[s[0]], m[s[1]])
            g(1, 5, 9, 13, m[s[2]], m[s[3]])
            g(2, 6, 10, 14, m[s[4]], m[s[5]])
            g(3, 7, 11, 15, m[s[6]], m[s[7]])
            g(0, 5, 10, 15, m[s[8]], m[s[9]])
            g(1, 6, 11, 12, m[s[10]], m[s[11]])
            g(2, 7, 8, 13, m[s[12]], m[s[13]])
            g(3, 4, 9, 14, m[s[14]], m[s[15]])
        self._h = [h ^ v[i] ^ v[i + 8] for i, h in enumerate(self._h)]


class blake2b(_Blake2):  # named as in CPython's _blake2
    """BLAKE2b: 64-bit words, digests of up to 64 bytes."""

    _BITS, _ROUNDS, _ROTATIONS, _IV = 64, 12, (32, 24, 16, 63), _IV
    SALT_SIZE, PERSON_SIZE, MAX_KEY_SIZE, MAX_DIGEST_SIZE = 16, 16, 64, 64
    name = "blake2b"


class blake2s(_Blake2):  # named as in CPython's _blake2
    """BLAKE2s: 32-bit words, digests of up to 32 bytes."""

    _BITS, _ROUNDS, _ROTATIONS = 32, 10, (16, 12, 8, 7)
    _IV = tuple(iv >> 32 for iv in _IV)
    SALT_SIZE, PERSON_SIZE, MAX_KEY_SIZE, MAX_DIGEST_SIZE = 8, 8, 32, 32
    name = "blake2s"


BLAKE2B_SALT_SIZE, BLAKE2B_PERSON_SIZE = blake2b.SALT_SIZE, blake2b.PERSON_SIZE
BLAKE2B_MAX_KEY_SIZE, BLAKE2B_MAX_DIGEST_SIZE = blake2b.MAX_KEY_SIZE, blake2b.MAX_DIGEST_SIZE
BLAKE2S_SALT_SIZE, BLAKE2S_PERSON_SIZE = blake2s.SALT_SIZE, blake2s.PERSON_SIZE
BLAKE2S_MAX_KEY_SIZE, BLAKE2S_MAX_DIGEST_SIZE = blake2s.MAX_KEY_SIZE, blake2s.MAX_DIGEST_SIZE
_GIL_MINSIZE = 2048
