"""The compiled loop under the point-in-time features (`recsys.features.point_in_time`).

Apart so that numba (0.7 s to import) is loaded only by processes that build features: the API
and Dagster's code servers import `point_in_time` for its feature definitions alone. The machine
code is compiled on first use and cached beside this file (numba falls back to a user-wide cache
directory where that is read-only), so later processes load it, in 0.3 to 0.4 s.
"""

import numba


@numba.njit(inline="always")
def _add(sums, counts, k, rating, flags, row, sign):
    """Add (sign 1) or take out (-1) a rating in row k of a state: overall and per flag it has."""
    sums[k, 0] += sign * rating
    counts[k, 0] += sign
    for g in range(flags.shape[1]):
        if flags[row, g]:
            sums[k, g + 1] += sign * rating
            counts[k, g + 1] += sign


@numba.njit(cache=True, nogil=True)
def walk(
    order, periods, blocks, keys, ratings, flags, sums, counts, no_mean, out_means, out_counts,
    delta_of_key, delta_keys, delta_blocks, delta_sums, delta_counts,
):  # fmt: skip
    """The walk of `point_in_time._walk_range` over its stream's rows: rated ones first (row <
    rated), then the carried, which are first taken out of the state. `order` is by (block,
    timestamp); each run of equal `periods` along it first reads its rated rows' counts and means
    into out_*, then adds its ratings to the state and, for rated rows, to their (block, key)'s
    delta row (opened at the key's first rating of the block). Returns the number of delta rows.

    Compiled (numba), because a scan in time order touches each key's state row once per rating,
    where the vectorized form needed a sort by (key, timestamp) and two random gathers per
    column: 40 columns at 5M ratings."""
    rows, (width, rated) = len(order), out_means.shape
    for row in range(rated, rows):
        _add(sums, counts, keys[row], ratings[row], flags, row, -1)
    deltas = 0
    first = 0
    while first < rows:
        last = first + 1
        while last < rows and periods[order[last]] == periods[order[first]]:
            last += 1
        for position in range(first, last):
            row = order[position]
            if row < rated:
                k = keys[row]
                for c in range(width):
                    count = counts[k, c]
                    out_counts[c, row] = count
                    out_means[c, row] = sums[k, c] / count if count > 0 else no_mean
        for position in range(first, last):
            row = order[position]
            k = keys[row]
            _add(sums, counts, k, ratings[row], flags, row, 1)
            if row < rated:
                d = delta_of_key[k]
                if d < 0 or delta_blocks[d] != blocks[row]:
                    d = deltas
                    deltas += 1
                    delta_of_key[k], delta_keys[d], delta_blocks[d] = d, k, blocks[row]
                _add(delta_sums, delta_counts, d, ratings[row], flags, row, 1)
        first = last
    return deltas
