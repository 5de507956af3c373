import numpy as np
import pytest

from core.train.smoothing import debiased_ema


def test_debiased_ema():
    x = np.array([4.0, 2.0, np.nan, 8.0])
    np.testing.assert_allclose(debiased_ema(x, 0.0), [4.0, 2.0, 2.0, 8.0])
    s = debiased_ema(x, 0.5)
    assert s[0] == 4.0  # debiased: no pull towards zero at the start
    assert s[1] == pytest.approx((0.5 * 0.5 * 4 + 0.5 * 2) / (1 - 0.25))
    assert s[2] == s[1]  # nan skipped
    constant = debiased_ema(np.full(50, 3.0), 0.9)
    np.testing.assert_allclose(constant, 3.0)
    with pytest.raises(ValueError, match="smoothing"):
        debiased_ema(x, 1.0)


def test_running_form_equals_the_whole_curve():
    from core.train.smoothing import DebiasedEMA

    rng = np.random.default_rng(0)
    x = rng.exponential(size=1000)
    x[[5, 400]] = [np.nan, np.inf]
    ema = DebiasedEMA(0.9)
    parts = [ema.extend(x[a:b]) for a, b in ((0, 1), (1, 333), (333, 334), (334, 1000))]
    np.testing.assert_allclose(np.concatenate(parts), debiased_ema(x, 0.9), rtol=1e-15)
