"""Exact (Garwood) confidence intervals for a Poisson rate, without scipy.

A count of ``k`` events over an exposure ``T`` (hours of footage, say) has the exact two-sided
interval ``[chi2.ppf(a/2, 2k) / 2T, chi2.ppf(1 - a/2, 2k + 2) / 2T]``. Half a chi-square quantile
with ``2k`` degrees of freedom is the quantile of a Gamma(k, 1) variable, and the Gamma CDF is
the regularised lower incomplete gamma function ``P(k, x)``, which for whole ``k`` equals the
chance that a Poisson(x) variable is at least ``k``. scipy is not a dependency, so ``P`` is
computed here with the textbook series / continued fraction (Numerical Recipes, ``gammp``) and
inverted by bisection; the results agree with scipy to about 1e-10.
"""

from __future__ import annotations

import math

from resaction.errors import ConfigError

_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 100_000


def gamma_p(a: float, x: float) -> float:
    """The regularised lower incomplete gamma function ``P(a, x)`` for ``a > 0``, ``x >= 0``.

    A series where it converges fast (``x < a + 1``), a continued fraction elsewhere, as usual.
    """
    if a <= 0:
        raise ConfigError(f"gamma shape must be above 0, got {a}")
    if x < 0:
        raise ConfigError(f"gamma argument must be at least 0, got {x}")
    if x == 0:
        return 0.0
    if math.isinf(x):
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        return min(1.0, _series(a, x) * math.exp(log_front))
    return max(0.0, 1.0 - _continued_fraction(a, x) * math.exp(log_front))


def _series(a: float, x: float) -> float:
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_TERMS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total


def _continued_fraction(a: float, x: float) -> float:
    """Modified Lentz evaluation of the continued fraction for ``Q(a, x)`` (without its front)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            break
    return h


def gamma_ppf(q: float, a: float) -> float:
    """The ``q`` quantile of a Gamma(``a``, scale 1) variable, found by bisection on ``P(a, x)``."""
    if not 0 <= q < 1:
        raise ConfigError(f"quantile must lie in [0, 1), got {q}")
    if q == 0:
        return 0.0
    low, high = 0.0, max(1.0, a)
    while gamma_p(a, high) < q:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if gamma_p(a, middle) < q:
            low = middle
        else:
            high = middle
        if high - low <= 1e-14 * high:
            break
    return 0.5 * (low + high)


def chi2_ppf(q: float, df: float) -> float:
    """The ``q`` quantile of a chi-square variable with ``df`` degrees of freedom (``df=0``: 0)."""
    if df < 0:
        raise ConfigError(f"chi-square degrees of freedom must be at least 0, got {df}")
    return 0.0 if df == 0 else 2.0 * gamma_ppf(q, df / 2.0)


def poisson_interval(
    count: int, exposure: float = 1.0, confidence: float = 0.95
) -> tuple[float, float]:
    """The exact (Garwood) two-sided interval for the rate of ``count`` events over ``exposure``.

    ``count=0`` gives a lower bound of 0 and an upper bound of ``-ln(alpha/2) / exposure``
    (3.689 for 95%): seeing nothing in an hour does not prove the rate is zero.
    """
    if count < 0 or int(count) != count:
        raise ConfigError(f"event count must be a whole number at least 0, got {count}")
    if not exposure > 0 or math.isinf(exposure):
        raise ConfigError(f"exposure must be a finite number above 0, got {exposure}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    lower = chi2_ppf(alpha / 2, 2 * count) / 2.0
    upper = chi2_ppf(1 - alpha / 2, 2 * count + 2) / 2.0
    return lower / exposure, upper / exposure
