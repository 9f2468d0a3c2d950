"""Exact moments of a discretised, clipped normal rating: what the generator's truth is computed from."""

from __future__ import annotations

import math

import numpy as np

RATING_VALUES = np.arange(1, 11) / 2.0  # the half-star grid 0.5 .. 5.0


def rating_moments(m: np.ndarray, sigma_noise: float) -> tuple[np.ndarray, np.ndarray]:
    """E[r | m] and E[r^2 | m] for r = clip(round_to_half(m + eps), 0.5, 5), eps ~ N(0, sigma_noise).

    P(r = v) is the normal probability of v's half-star bin [v - 0.25, v + 0.25), the end bins
    absorbing the tails. numpy has no erf and math.erf per rating is far too slow for 32M ratings,
    so both moments and their exact derivatives are tabulated with math.erf on a grid of m (step
    sigma_noise / 500) and evaluated by cubic Hermite interpolation, whose error (~h^4) is about
    1e-13 (tests check 1e-10 against math.erf). Beyond 12 sigma outside [0.75, 4.75] the moments
    are constant to double precision, so m is clamped to the table.
    """
    low, step, values, slopes = _moment_table(float(sigma_noise))
    # The grid is uniform, so the cell is found by arithmetic instead of a binary search.
    position = np.clip((np.asarray(m, dtype=np.float64) - low) / step, 0.0, values.shape[1] - 1.0)
    cell = np.minimum(position.astype(np.int64), values.shape[1] - 2)
    t = position - cell
    t2, t3 = t * t, t * t * t
    # Cubic Hermite basis on [0, 1]; slopes are per unit of m, hence the factor `step`.
    h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, 3 * t2 - 2 * t3, t3 - t2
    first, second = (
        h00 * values[k, cell]
        + h10 * step * slopes[k, cell]
        + h01 * values[k, cell + 1]
        + h11 * step * slopes[k, cell + 1]
        for k in (0, 1)
    )
    return first, second





_MOMENT_TABLES: dict[float, tuple[float, float, np.ndarray, np.ndarray]] = {}


def _moment_table(sigma_noise: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(first m, step, [E[r|m], E[r^2|m]], their derivatives in m) on a uniform grid, cached per sigma."""
    if sigma_noise not in _MOMENT_TABLES:
        low, high = 0.75 - 12 * sigma_noise, 4.75 + 12 * sigma_noise
        cells = int(math.ceil((high - low) / (sigma_noise / 500)))
        step = (high - low) / cells
        grid = low + np.arange(cells + 1) * step
        # Standardised bin edges between the half-star values; the outer bins reach +-infinity.
        z = ((RATING_VALUES[:-1] + 0.25)[None, :] - grid[:, None]) / sigma_noise
        erf = np.frompyfunc(math.erf, 1, 1)
        cdf = 0.5 * (1.0 + erf(z / math.sqrt(2.0)).astype(np.float64))
        pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        zeros, ones = np.zeros((grid.size, 1)), np.ones((grid.size, 1))
        probabilities = np.diff(np.hstack([zeros, cdf, ones]), axis=1)
        # d/dm Phi((edge - m) / sigma) = -phi(z) / sigma, so dP(bin)/dm = (phi(lower) - phi(upper)) / sigma.
        padded_pdf = np.hstack([zeros, pdf, zeros])
        probability_slopes = (padded_pdf[:, :-1] - padded_pdf[:, 1:]) / sigma_noise
        powers = np.stack([RATING_VALUES, RATING_VALUES**2], axis=1)  # (10, 2)
        _MOMENT_TABLES[sigma_noise] = (
            low,
            step,
            (probabilities @ powers).T.copy(),
            (probability_slopes @ powers).T.copy(),
        )
    return _MOMENT_TABLES[sigma_noise]
