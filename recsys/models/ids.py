"""Ids to array positions: per-user and per-movie tables (biases, factors) are arrays indexed by position."""

from __future__ import annotations

import numpy as np
import polars as pl


def id_positions(ids: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(each row's position, the id at each position): bias and factor arrays are indexed by position.

    Positions of ids never seen simply get count 0 and are dropped from the fitted tables.
    """
    values = ids.cast(pl.Int64).to_numpy()
    low, high = int(values.min()), int(values.max())
    if low >= 0 and high < max(4 * values.size, 1_000_000):
        return values, np.arange(high + 1, dtype=np.int64)
    positions = (ids.rank("dense") - 1).cast(pl.Int64).to_numpy()
    id_at = np.empty(int(positions.max()) + 1, dtype=np.int64)
    id_at[positions] = values
    return positions, id_at
