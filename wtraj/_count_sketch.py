"""A seeded count sketch of a tensor, computed chunk by chunk, for estimated distances.

The sketch of a vector ``x`` of length ``n`` is ``S x`` with ``S`` a ``k × n``
matrix holding one random ``±1`` per column in a random row (Charikar, Chen and
Farach-Colton's count sketch). It is linear, so ``S a - S b = S (a - b)``, and
``||S x||²`` estimates ``||x||²`` without bias with relative standard deviation
at most ``sqrt(2 / k)`` for fully random hashing. The row and sign of column
``j`` come from simple tabulation hashing on ``j = q·L + r``:
``row = (T1[r] + T2[q]) mod k`` and ``sign = s1[r]·s2[q]``, so a chunk of ``L``
consecutive columns needs only one add and one multiply per element and the
tables take ``O(L + n / L)`` memory, never ``O(n)``; the ``L``-long tables are
shared by all tensors of a model.

Tensors with at most ``k`` elements are not sketched: their "sketch" is the
tensor itself in float64, so every estimate on them is exact.
"""

from __future__ import annotations

from typing import Any

# columns per chunk: the length of the first hash table and the widest float64
# temporary one sketch update allocates (2 MiB)
CHUNK = 1 << 18


class HashTables:
    """The tables shared by every tensor's sketch: row and sign of the low ``CHUNK`` columns.

    One set serves all tensors of a model (each tensor has its own sketch, so
    sharing these does not correlate anything within a sketch); the high
    tables, one entry per chunk, are drawn per tensor.
    """

    def __init__(self, width: int, seed: int, device: Any):
        import torch

        generator = torch.Generator().manual_seed(int(seed))
        self.width = int(width)
        self.generator_seed = int(seed)
        # int32 rows and float32 signs: half the bytes a sketch update reads per element
        rows = torch.randint(self.width, (CHUNK,), generator=generator)
        signs = torch.randint(2, (CHUNK,), generator=generator) * 2 - 1
        self.rows = rows.to(device=device, dtype=torch.int32)
        self.signs = signs.to(device=device, dtype=torch.float32)

    @property
    def nbytes(self) -> int:
        return self.rows.numel() * self.rows.element_size() + self.signs.numel() * 4


class CountSketch:
    """The count sketch of one tensor of ``size`` elements into ``tables.width`` buckets.

    Parameters
    ----------
    size : int
        Number of elements of the tensor (it is read flattened).
    tables : HashTables
        The shared low tables; their ``width`` is the number of buckets ``k``.
        Tensors with ``size <= k`` are kept exactly instead.
    seed : int
        Seeds this tensor's high tables; sketches made with the same ``size``,
        tables and ``seed`` can be subtracted.
    device : torch.device
        Where the sketches live.
    """

    def __init__(self, size: int, tables: HashTables, seed: int, device: Any):
        import torch

        self.size = int(size)
        self.exact = self.size <= tables.width
        self.width = self.size if self.exact else tables.width
        self.device = device
        self._tables = tables
        if self.exact:
            return
        generator = torch.Generator().manual_seed(int(seed))
        n_chunks = -(-self.size // CHUNK)
        rows_high = torch.randint(self.width, (n_chunks,), generator=generator)
        signs_high = torch.randint(2, (n_chunks,), generator=generator) * 2 - 1
        self._rows_high = rows_high.tolist()
        self._signs_high = signs_high.tolist()
        self._kernel_high = (rows_high.numpy(), signs_high.to(torch.float64).numpy())

    def empty(self) -> Any:
        """A zero float64 sketch on this sketch's device."""
        import torch

        return torch.zeros(self.width, dtype=torch.float64, device=self.device)

    def add_chunk(self, sketch: Any, values: Any, start: int) -> None:
        """Add the elements ``[start, start + len(values))`` (float64, 1-D) to ``sketch``.

        ``start`` must be a multiple of :data:`CHUNK` and ``values`` at most
        :data:`CHUNK` long: :meth:`chunks` yields exactly such ranges.
        """
        import torch

        if self.exact:
            sketch[start : start + values.numel()] += values
            return
        q = start // CHUNK
        n = values.numel()
        # bucket (T1[r] + T2[q]) mod k: add by T1 into a k-vector, then rotate it by T2[q]
        # (k elements) instead of computing n bucket indices
        partial = torch.zeros(self.width, dtype=torch.float64, device=self.device)
        partial.index_add_(0, self._tables.rows[:n], values * self._tables.signs[:n])
        shift = self._rows_high[q]
        if self._signs_high[q] < 0:
            partial.neg_()
        sketch[shift:] += partial[: self.width - shift]
        sketch[:shift] += partial[self.width - shift :]

    def kernel_tables(self) -> tuple:
        """``(exact, rows_low, signs_low, rows_high, signs_high, width)`` as NumPy arrays,
        the hash arguments of the kernels in :mod:`wtraj._monitor_kernel`."""
        import numpy as np

        if self.exact:
            empty_rows, empty_signs = np.zeros(1, np.int32), np.zeros(1, np.float32)
            return True, empty_rows, empty_signs, empty_rows, empty_signs, self.width
        tables = self._tables
        rows_high, signs_high = self._kernel_high
        if tables.rows.device.type != "cpu":
            raise ValueError("the numba kernels need the hash tables on the CPU.")
        return False, tables.rows.numpy(), tables.signs.numpy(), rows_high, signs_high, self.width

    def chunks(self) -> range:
        """Start offsets of the chunks :meth:`add_chunk` accepts."""
        return range(0, self.size, CHUNK)
