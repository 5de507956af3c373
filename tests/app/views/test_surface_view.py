"""The heatmap's values: what a huge or infinite loss turns into on screen."""

import warnings

import numpy as np

from app.views.surface_view import display_values


def test_values_beyond_float32_show_as_the_top_colour_not_a_hole():
    """exp(1000*x) reaches 1e300: cast to the image's float32 it became inf (drawn as a hole,
    with an overflow warning); it must stay finite, and an undefined point stays NaN."""
    z = np.array([[0.0, 1.0, 1e300], [-1e300, np.inf, np.nan]])
    shown, lo, hi = display_values(z, "linear")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overflow warning of the cast
        image = shown.astype(np.float32)
    assert np.isfinite(image[0]).all() and image[0, 2] > image[0, 1]
    assert np.isfinite(image[1, 0]) and image[1, 0] < 0
    assert np.isnan(image[1, 1:]).all()  # inf and nan: not defined, drawn as such
    assert np.isfinite([lo, hi]).all() and hi > lo
