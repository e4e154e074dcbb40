"""The stationary bootstrap's resampling positions (Politis and Romano, 1994), shared by the verdict's
paired bootstrap (``core/evaluation/bootstrap.py``) and the resampled planted-signal fixtures
(``core/inputs/synthetic_legs.py``)."""

from __future__ import annotations

import numpy as np

from allocator_pipeline.core.common.errors import InputDataError


def stationary_indices(n: int, resamples: int, block_length: float, rng: np.random.Generator) -> np.ndarray:
    """Session positions of ``resamples`` stationary-bootstrap resamples of ``n`` sessions.

    Returns an ``(resamples, n)`` int64 array: row ``b`` is the positions of resample ``b``. Block
    starts are uniform on ``0 .. n - 1``; a new block starts after each position with probability
    ``1 / block_length`` (the first position always starts one); within a block positions advance
    by one, modulo ``n``.

    >>> rng = np.random.default_rng(0)
    >>> idx = stationary_indices(10, 3, 4.0, rng)
    >>> idx.shape, bool(((idx >= 0) & (idx < 10)).all())
    ((3, 10), True)
    >>> one = stationary_indices(6, 1, 1e12, rng)[0]  # a single block: consecutive, wrapping at the end
    >>> bool((np.diff(one) % 6 == 1).all())
    True
    """
    if n < 1 or resamples < 1:
        raise InputDataError(f"a bootstrap needs n >= 1 sessions and resamples >= 1 (got {n}, {resamples})")
    if block_length < 1:
        raise InputDataError("block_length must be >= 1 session", value=block_length)
    starts = rng.integers(0, n, size=(resamples, n))
    new = rng.random((resamples, n)) < 1.0 / float(block_length)
    new[:, 0] = True
    t = np.arange(n)
    # position of the latest block start at or before t, per row
    last_start = np.maximum.accumulate(np.where(new, t[None, :], 0), axis=1)
    first_pos = np.take_along_axis(starts, last_start, axis=1)
    return (first_pos + (t[None, :] - last_start)) % n
