"""``healcat skymap``: a Mollweide PNG of source counts per HEALPix pixel (the sky density map).

The image is drawn pixel for pixel (matplotlib's imsave, no axes): each image pixel shows the count
of the HEALPix pixel under it on a log colour scale, empty sky is light grey, outside the sky white;
north is up and RA grows to the left, as on the sky. ``counts_image`` is what the PNG shows, as numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from catalog import healpix
from catalog.errors import HealcatError
from catalog.search.region import checked

#: Finest order drawn (12 * 4**10 pixels, about 0.06 deg, finer than a 1200 px wide image shows).
MAX_ORDER = 10
EMPTY_RGBA = (0.85, 0.85, 0.85, 1.0)
OUTSIDE_RGBA = (1.0, 1.0, 1.0, 1.0)


def counts_image(density: Table, order: int, width_px: int) -> np.ndarray:
    """Counts per image pixel (float; NaN outside the sky) from a (pix, n) density table."""
    order = int(checked("skymap", "order", order, 0, MAX_ORDER))
    width_px = int(checked("skymap", "width_px", width_px, 16, 8000))
    counts = np.zeros(12 * 4**order, dtype=np.float64)
    np.add.at(counts, np.asarray(density["pix"], dtype=np.int64), np.asarray(density["n"], dtype=np.float64))
    pixels = healpix.mollweide_pixels(order, width_px)
    return np.where(pixels >= 0, counts[np.maximum(pixels, 0)], np.nan)


def check_png_name(path: str | Path) -> None:
    """A HealcatError unless ``path`` ends in .png: the map is a PNG, and PNG bytes under another
    suffix (.jpg, .pdf) are a file its viewers misread."""
    if Path(path).suffix.lower() != ".png":
        raise HealcatError(f"skymap: {str(path)!r} is not a .png name: the map is written as PNG only; "
                           "name the file NAME.png")


def write_skymap(density: Table, order: int, path: str | Path, width_px: int = 1200) -> np.ndarray:
    """Write the PNG (``width_px`` x ``width_px // 2``; ``path`` must end in .png) and return the counts
    image it shows."""
    check_png_name(path)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    image = counts_image(density, order, width_px)
    filled = image[np.isfinite(image) & (image > 0)]
    norm = LogNorm(vmin=1, vmax=max(2.0, float(filled.max()) if len(filled) else 2.0))
    rgba = colormaps["viridis"](norm(np.where(image > 0, image, 1.0)))
    rgba[np.isfinite(image) & (image == 0)] = EMPTY_RGBA
    rgba[~np.isfinite(image)] = OUTSIDE_RGBA
    import matplotlib.pyplot as plt

    plt.imsave(Path(path), rgba, format="png")
    return image
