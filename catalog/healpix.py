"""All of healcat's HEALPix arithmetic: the only module that imports healpy and mocpy.

Every positioned row carries ``hpx``, the NESTED HEALPix index of its ICRS
position at order 29 (``ORDER``), which is HATS's ``_healpix_29``: the same index, computed
with healpy where hats uses cdshealpix, so the two differ only for a position exactly on a pixel
boundary (each rule picks a neighbour of its own: (45, 0) deg is healpy's base pixel 5 and
cdshealpix's 0). None of the 494,712 positions of the shipped releases is one; about 1 in 2
million random positions rounded to 1e-4 deg is (review of 2026-12-05).
Because the nested scheme is hierarchical, the order-k pixel containing a row
is ``hpx >> 2*(29-k)``, and the order-k pixel ``p`` is the contiguous range
``[p << 2*(29-k), (p+1) << 2*(29-k))`` of order-29 indices. A cone therefore
becomes a handful of integer ranges that a btree answers, followed by an exact
angular-distance recheck.

``SHARD_ORDER`` fixes the coarse pixel used as the distribution (shard) column
of every per-object table: ``shard = hpx >> SHARD_SHIFT`` (order 4, 3072 pixels).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import healpy
import numpy as np

ORDER = 29
NSIDE = 1 << ORDER
NPIX = 12 * 4**ORDER
SHARD_ORDER = 4
SHARD_SHIFT = 2 * (ORDER - SHARD_ORDER)
#: Shard of a row with no position and no position-bearing identifier.
NO_SHARD = -1
#: Gaia DR3 source_id >> 35 is the order-12 nested pixel (Gaia DR3 documentation,
#: "source_id"); shifting by 35 + 2*(12-4) gives the order-4 shard.
GAIA_SOURCE_ID_SHARD_SHIFT = 35 + 2 * (12 - SHARD_ORDER)

__all__ = [
    "ORDER",
    "NPIX",
    "SHARD_ORDER",
    "SHARD_SHIFT",
    "NO_SHARD",
    "wrap_ra_deg",
    "hpx_index",
    "shard_of",
    "gaia_shard",
    "cone_ranges",
    "box_ranges",
    "polygon_ranges",
    "merge_ranges",
    "moc_ranges",
    "moc_text_ranges",
    "mollweide_pixels",
    "xmatch_cover",
    "xmatch_probe_cover",
    "order_shift",
    "pixel_ranges",
    "adaptive_partitions",
    "dense_counts",
]


def _check_positions(ra_deg: np.ndarray, dec_deg: np.ndarray) -> None:
    """A ValueError naming the first bad value and where it is (``ra_deg[3] = nan``: a caller's millionth
    row is otherwise hard to find): a position must be finite, its Dec in [-90, 90]."""
    for name, values, bad, why in (("ra_deg", ra_deg, ~np.isfinite(ra_deg), "positions must be finite"),
                                   ("dec_deg", dec_deg, ~np.isfinite(dec_deg), "positions must be finite"),
                                   ("dec_deg", dec_deg, np.abs(dec_deg) > 90.0, "dec_deg out of [-90, 90]")):
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            where = f"{name}[{', '.join(str(j) for j in np.unravel_index(i, values.shape))}]" if values.ndim else name
            raise ValueError(f"{why}: {where} = {float(values.ravel()[i])!r}")


def wrap_ra_deg(ra_deg) -> np.ndarray:
    """Right ascension in [0, 360) deg (np.mod alone turns -1e-20 into 360.0)."""
    ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
    return np.where(ra >= 360.0, 0.0, ra)


def hpx_index(ra_deg, dec_deg) -> np.ndarray:
    """Nested order-29 HEALPix index of ICRS positions in degrees (int64 array)."""
    dec = np.asarray(dec_deg, dtype=np.float64)
    _check_positions(np.asarray(ra_deg, dtype=np.float64), dec)  # before the wrap turns infinity into NaN
    ra = wrap_ra_deg(ra_deg)
    return np.asarray(healpy.ang2pix(NSIDE, ra, dec, nest=True, lonlat=True), dtype=np.int64)


def shard_of(hpx) -> np.ndarray:
    """Order-4 pixel (the distribution column) of order-29 indices."""
    return np.asarray(hpx, dtype=np.int64) >> SHARD_SHIFT


def gaia_shard(source_id) -> np.ndarray:
    """Order-4 pixel of Gaia (E)DR3 source_ids, whose top bits are an order-12 nested pixel."""
    return np.asarray(source_id, dtype=np.int64) >> GAIA_SOURCE_ID_SHARD_SHIFT


#: healpy's query_disc loses pixels of tiny discs at high orders (its ring geometry runs out of
#: float precision), so covers stop at order 20 (0.2 arcsec pixels) and pad the radius by one
#: pixel radius; tests/test_healpix.py holds this to random points at the edge of the cone.
MAX_COVER_ORDER = 20


def _cover_order(radius_deg: float) -> int:
    """Coarsest order whose pixels are small against the radius (about radius/4 across)."""
    if radius_deg <= 0:
        return MAX_COVER_ORDER
    resolution_deg = math.degrees(math.sqrt(4 * math.pi / 12)) / radius_deg * 4
    return int(min(MAX_COVER_ORDER, max(0, math.ceil(math.log2(resolution_deg)))))


def merge_ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sorted, disjoint ``[lo, hi)`` rows from overlapping or touching ranges."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    order = np.lexsort((hi, lo))
    lo, hi = lo[order], hi[order]
    starts = np.ones(len(lo), dtype=bool)
    starts[1:] = lo[1:] > np.maximum.accumulate(hi)[:-1]
    if not len(lo):
        return np.empty((0, 2), np.int64)
    return np.column_stack([lo[starts], np.maximum.reduceat(hi, np.flatnonzero(starts))])


def cone_ranges(ra_deg: float, dec_deg: float, radius_deg: float) -> np.ndarray:
    """Half-open order-29 index ranges ``[lo, hi)`` covering a cone (a superset, merged).

    Every order-29 pixel that intersects the cone lies in a range; the caller
    rechecks the exact angular distance.
    """
    if radius_deg >= 180.0:
        return np.array([[0, NPIX]], dtype=np.int64)
    order = _cover_order(radius_deg)
    vec = healpy.ang2vec(float(wrap_ra_deg(ra_deg)), float(dec_deg), lonlat=True)
    pad_rad = healpy.max_pixrad(1 << order)
    pix = np.asarray(
        healpy.query_disc(1 << order, vec, math.radians(radius_deg) + pad_rad, inclusive=True, nest=True),
        dtype=np.int64,
    )
    shift = 2 * (ORDER - order)
    return merge_ranges(pix << shift, (pix + 1) << shift)


def box_ra_width_deg(ra_min_deg: float, ra_max_deg: float) -> float:
    """A box's extent in RA [deg], from ra_min eastwards to ra_max (360 for ra_max - ra_min >= 360), as
    healcat.box_ra_width_deg."""
    if ra_max_deg - ra_min_deg >= 360.0:
        return 360.0
    return float(np.mod(wrap_ra_deg(ra_max_deg) - wrap_ra_deg(ra_min_deg), 360.0))


def box_ranges(ra_min_deg: float, ra_max_deg: float, dec_min_deg: float, dec_max_deg: float) -> np.ndarray:
    """Ranges covering an RA/Dec box (RA from ra_min eastwards to ra_max, in [0, 360) or wrapping).

    As healcat.box_cover in SQL: the box cut into n_ra x n_dec pieces, along RA into pieces at most
    90 deg wide and into near-square pieces along its longer side (at most 64 that way), each piece
    covered by its bounding cone (the farthest point of a piece is a corner) plus 1e-9 deg.
    """
    ra0 = float(wrap_ra_deg(ra_min_deg))
    width = box_ra_width_deg(ra_min_deg, ra_max_deg)
    height = dec_max_deg - dec_min_deg
    span = width * (1.0 if dec_min_deg <= 0 <= dec_max_deg else math.cos(math.radians(min(abs(dec_min_deg),
                                                                                          abs(dec_max_deg)))))
    # the ratios before ceil: a box 1e-320 deg wide has height / span = inf, which no int takes
    n_ra = math.ceil(min(64.0, max(width / 90.0, span / height, 1.0)))
    n_dec = math.ceil(min(64.0, max(height / span if span else math.inf, 1.0)))
    pieces = []
    for i in range(n_ra):
        a, b = ra0 + width * i / n_ra, ra0 + width * (i + 1) / n_ra
        for j in range(n_dec):
            d1, d2 = dec_min_deg + height * j / n_dec, dec_min_deg + height * (j + 1) / n_dec
            centre = ((a + b) / 2.0, (d1 + d2) / 2.0)
            radius = max(angdist_deg(*centre, a, d1), angdist_deg(*centre, a, d2))
            pieces.append(cone_ranges(*centre, radius + 1e-9))
    ranges = np.concatenate(pieces)
    return merge_ranges(ranges[:, 0], ranges[:, 1])


def _tangent_frame(ra0_deg: float, dec0_deg: float) -> np.ndarray:
    """Rows: the unit vectors of the centre, east and north at (ra0, dec0), as healcat.polygon_prepare's frame."""
    ra0, dec0 = math.radians(ra0_deg), math.radians(dec0_deg)
    return np.array([[math.cos(dec0) * math.cos(ra0), math.cos(dec0) * math.sin(ra0), math.sin(dec0)],
                     [-math.sin(ra0), math.cos(ra0), 0.0],
                     [-math.sin(dec0) * math.cos(ra0), -math.sin(dec0) * math.sin(ra0), math.cos(dec0)]])


MIN_CELL_TAN = 0.0087269  # tan(0.5 deg): a polygon cover's cells are no smaller (each costs a cone cover)


def polygon_ranges(ra_deg, dec_deg, ra0_deg: float, dec0_deg: float) -> np.ndarray:
    """Ranges covering a spherical polygon (its vertices in order, within 89 deg of (ra0, dec0)).

    As healcat.polygon_cover in SQL: the polygon's bounding rectangle in the tangent plane at (ra0,
    dec0) cut into square cells, g along the longer side (g <= 16, fewer for many vertices, cells no
    smaller than 0.5 deg); a cell
    is kept when its centre is inside the polygon or an edge passes within its half-diagonal, and
    covered by the cone about its centre through its farthest corner plus 1e-9 deg.
    """
    frame = _tangent_frame(ra0_deg, dec0_deg)
    ra, dec = np.radians(np.asarray(ra_deg, dtype=np.float64)), np.radians(np.asarray(dec_deg, dtype=np.float64))
    centre, east, north = frame @ np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    x1, y1 = east / centre, north / centre
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    x_min, y_min, width, height = x1.min(), y1.min(), np.ptp(x1), np.ptp(y1)
    side = max(width, height) / max(1, min(16, math.floor(math.sqrt(100000.0 / len(x1))),
                                           math.floor(max(width, height) / MIN_CELL_TAN)))
    i, j = np.meshgrid(np.arange(max(1, math.ceil(width / side))), np.arange(max(1, math.ceil(height / side))))
    qx, qy = (x_min + side * (i.ravel() + 0.5))[:, None], (y_min + side * (j.ravel() + 0.5))[:, None]
    # (horizontal edges are never crossed, as in SQL; an edge of length 0 is healcat.polygon_prepare's error)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossed = ((y1 > qy) != (y2 > qy)) & (qx < x1 + (x2 - x1) * (qy - y1) / (y2 - y1))
        t = np.clip(((qx - x1) * (x2 - x1) + (qy - y1) * (y2 - y1)) / ((x2 - x1) ** 2 + (y2 - y1) ** 2), 0.0, 1.0)
    near = (qx - x1 - t * (x2 - x1)) ** 2 + (qy - y1 - t * (y2 - y1)) ** 2 <= side * side / 2
    kept = (crossed.sum(axis=1) % 2 == 1) | near.any(axis=1)
    pieces = []
    for x, y in zip(qx[kept, 0], qy[kept, 0]):
        points = np.array([[x, y], [x - side / 2, y - side / 2], [x - side / 2, y + side / 2],
                           [x + side / 2, y - side / 2], [x + side / 2, y + side / 2]])
        v = frame[0] + points[:, :1] * frame[1] + points[:, 1:] * frame[2]
        p_ra = np.degrees(np.arctan2(v[:, 1], v[:, 0]))
        p_dec = np.degrees(np.arctan2(v[:, 2], np.hypot(v[:, 0], v[:, 1])))
        radius = float(np.max(angdist_deg(p_ra[0], p_dec[0], p_ra[1:], p_dec[1:])))
        pieces.append(cone_ranges(float(p_ra[0]), float(p_dec[0]), radius + 1e-9))
    ranges = np.concatenate(pieces) if pieces else np.empty((0, 2), np.int64)
    return merge_ranges(ranges[:, 0], ranges[:, 1])


def angdist_deg(ra1_deg, dec1_deg, ra2_deg, dec2_deg):
    """Great-circle distance [deg] (haversine, as healcat.angdist_deg)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1_deg, dec1_deg, ra2_deg, dec2_deg))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.minimum(1.0, np.sqrt(h))))


#: A token of an ASCII MOC (MOC 2.0's '3/1-3 5', MOC 1.0's '3/1,2'): 'order/', 'order/pix[-pix]' or 'pix[-pix]'.
_MOC_TOKEN = re.compile(r"(?:([0-9]+)/)?(?:([0-9]+)(?:-([0-9]+))?)?")


def _quoted(text: str) -> str:
    """``text`` in single quotes, its first 80 characters only (as healcat.moc_ranges quotes input)."""
    return "'" + (text if len(text) <= 80 else text[:80] + "...").replace("'", "''") + "'"


class _JsonObject(list):
    """A JSON object's (key, value) pairs in order (json's object_pairs_hook), told apart from an array."""


def moc_text_ranges(text: str) -> np.ndarray:
    """The order-29 ranges of a MOC's ASCII ('3/1-3 5 4/40', or MOC 1.0's commas) or JSON ('{"3": [1, 2]}')
    text, merged; the grammar and the errors (ValueError) are healcat.moc_ranges's."""
    text = text.strip()
    if not text:
        raise ValueError("the MOC must not be NULL or empty")
    if text.startswith("{"):
        try:
            # every (order, pixels) pair, a repeated order too (as PostgreSQL's json_each); an integer as
            # its text in a tuple, so that 1.0, 1e3 and -0 are no pixels, as they are not in SQL
            cells = json.loads(text, object_pairs_hook=_JsonObject, parse_int=lambda digits: (digits,))
        except ValueError:
            raise ValueError(f"not valid JSON: {text[:80]}") from None
        for order, pixels in cells:
            if not (re.fullmatch("[0-9]+", order) and type(pixels) is list  # an array, not an object
                    and all(type(p) is tuple and re.fullmatch("[0-9]+", p[0]) for p in pixels)):
                raise ValueError(f"a JSON MOC maps orders to lists of pixels (integers from 0); order "
                                 f"{_quoted(order)} holds something else")
        text = " ".join(f"{order}/" + " ".join(p[0] for p in pixels) for order, pixels in cells)
    los, his, order = [], [], None
    for token in re.split(r"[\s,]+", text):
        if not token:  # around the text's ends
            continue
        match = _MOC_TOKEN.fullmatch(token)
        if match is None or (match[1] is None and match[2] is None):
            raise ValueError(f"cannot read {_quoted(token)} (expected order/pix, order/pix-pix or pix)")
        if match[1] is not None:
            if len(match[1]) > 2 or int(match[1]) > ORDER:
                raise ValueError(f"order must be in 0..29, got {match[1][:80]} in {_quoted(token)}")
            order = int(match[1])
        elif order is None:
            raise ValueError(f"{_quoted(token)} comes before any order/")
        if match[2] is None:  # 'order/' with no cells
            continue
        last = match[3] or match[2]
        if len(match[2]) > 19 or len(last) > 19 or int(last) < int(match[2]) or int(last) >= 12 * 4**order:
            raise ValueError(f"cells {_quoted(token)} are not pixels of order {order} (0..{12 * 4**order - 1})")
        shift = 2 * (ORDER - order)
        los.append(int(match[2]) << shift)
        his.append((int(last) + 1) << shift)
    return merge_ranges(np.array(los, np.int64), np.array(his, np.int64))


def moc_ranges(moc) -> np.ndarray:
    """The exact order-29 ranges of a MOC: a ``mocpy.MOC``, a FITS file path, or ASCII or JSON text
    (:func:`moc_text_ranges`). Raises ValueError, one line, for what is not a MOC."""
    from mocpy import MOC

    if not isinstance(moc, MOC):
        text = str(moc).strip()
        if not text.startswith("{") and _is_file(text):
            try:
                moc = MOC.from_fits(text)
            except Exception as exc:  # mocpy raises ValueError, OSError or its Rust layer's errors
                raise ValueError(f"cannot read {_quoted(text)} as a MOC FITS file ({str(exc)[:200]})") from None
        elif text.lower().endswith((".fits", ".fit", ".fits.gz")):
            raise ValueError(f"{_quoted(text)}: no such file")
        else:
            return moc_text_ranges(text)
    return np.asarray(moc.to_depth29_ranges, dtype=np.int64).reshape(-1, 2)


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except OSError:  # a name too long for a path (ENAMETOOLONG): a MOC's text, not a file
        return False


def mollweide_pixels(order: int, width_px: int) -> np.ndarray:
    """For a Mollweide image ``width_px`` wide (half as high), the NESTED pixel at ``order`` each image
    pixel shows (-1 outside the sky's ellipse); row 0 is the top (north, as an image file's first row
    is), RA increases to the left, as on the sky."""
    projector = healpy.projector.MollweideProj(xsize=width_px)
    nside = 1 << order
    image = projector.projmap(np.arange(12 * nside * nside, dtype=np.float64),
                              lambda x, y, z: healpy.vec2pix(nside, x, y, z, nest=True))
    # healpy's row 0 is the bottom (y = -1, the south: it draws with origin="lower")
    return np.flipud(np.where(np.isfinite(image) & (image >= 0), image, -1).astype(np.int64))


def xmatch_cover(hpx, order: int) -> np.ndarray:
    """For each order-29 index, the <= 4 order-``order`` pixels (``-1`` pads) whose union holds its disk.

    The point's order-(order+1) pixel and that pixel's 8 neighbours (healpy) all lie in these
    parents, so any disk of radius <= 0.3 * nside2resol(2**(order+1)) around the point does
    (``healcat.xmatch_order`` picks the order for a radius; ``healcat.hpx_xmatch_cover`` is the
    same cover in SQL, and tests hold the two equal). Shape (n, 4), int64, the point's own parent first.
    """
    child = np.asarray(hpx, dtype=np.int64) >> (2 * (ORDER - order - 1))
    neighbours = np.asarray(healpy.get_all_neighbours(1 << (order + 1), child, nest=True), dtype=np.int64)
    block = np.vstack([child >> 2, np.where(neighbours >= 0, neighbours >> 2, -1)])  # (9, n)
    cover = np.full((4, len(child)), -1, dtype=np.int64)
    filled = np.zeros(len(child), dtype=np.int64)
    for j, parents in enumerate(block):  # each parent once, in the first free slot
        new = parents >= 0
        for earlier in block[:j]:
            new &= parents != earlier
        if (filled[new] >= 4).any():
            raise AssertionError("xmatch_cover: more than 4 parent pixels around a point")  # cannot happen in HEALPix
        cover[filled[new], np.flatnonzero(new)] = parents[new]
        filled += new
    return cover.T


def xmatch_probe_cover(hpx, order: int, probe_order: int) -> np.ndarray:
    """The distinct order-``probe_order`` parents of :func:`xmatch_cover` (``-1`` pads), as
    ``healcat.hpx_xmatch_probe_cover``: they hold the same disk in fewer, coarser pixels (one for
    most points). Shape (n, 4), int64, the point's own parent first."""
    cover = xmatch_cover(hpx, order)
    parents = np.where(cover >= 0, cover >> (2 * (order - probe_order)), -1)
    for j in range(1, 4):  # a parent already in an earlier slot becomes -1
        parents[:, j] = np.where((parents[:, :j] == parents[:, j:j + 1]).any(axis=1), -1, parents[:, j])
    return parents


# --- HATS partitioning (catalog/hats_export.py) ------------------------------------------------------


def order_shift(order: int) -> int:
    """The bits between an order-``order`` nested pixel and the order-29 indices inside it:
    ``hpx >> order_shift(k)`` is the order-k pixel holding hpx (HATS's ``_healpix_29``)."""
    if not 0 <= order <= ORDER:
        raise ValueError(f"order must be in 0..{ORDER}, got {order}")
    return 2 * (ORDER - order)


def pixel_ranges(orders, pixels) -> np.ndarray:
    """The order-29 ranges ``[lo, hi)`` of nested pixels, each at its own order. Shape (n, 2), int64."""
    shift = 2 * (ORDER - np.asarray(orders, dtype=np.int64))
    pixels = np.asarray(pixels, dtype=np.int64)
    return np.column_stack([pixels << shift, (pixels + 1) << shift]).reshape(-1, 2)


def adaptive_partitions(pixels, counts, order: int, max_count: int) -> np.ndarray:
    """hats-import's adaptive partitioning of row counts per order-``order`` pixel (sparse: the
    occupied pixels and their counts): each pixel goes to its coarsest ancestor (order 0 up) that
    holds at most ``max_count`` rows, as hats.pixel_math.generate_alignment with lowest order 0 and
    no sibling dropping (tests/test_hats_export.py holds the two equal).

    Returns rows (order, pixel, count), one per partition, in nested order (by first order-29 index).
    ValueError, naming it, if one pixel at ``order`` alone holds more than ``max_count``.
    """
    pixels, inverse = np.unique(np.asarray(pixels, dtype=np.int64), return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=np.asarray(counts, dtype=np.int64), minlength=len(pixels))
    counts = counts.astype(np.int64)
    if not len(pixels):
        return np.empty((0, 3), dtype=np.int64)
    if counts.max() > max_count:
        i = int(np.argmax(counts))
        raise ValueError(f"the order-{order} pixel {pixels[i]} alone holds {counts[i]} rows, more than {max_count}")
    assigned = np.full(len(pixels), -1, dtype=np.int64)
    for k in range(order + 1):  # sorted pixels: each ancestor's descendants are one run
        parents = pixels >> (2 * (order - k))
        starts = np.flatnonzero(np.r_[True, parents[1:] != parents[:-1]])
        totals = np.repeat(np.add.reduceat(counts, starts), np.diff(np.r_[starts, len(pixels)]))
        assigned[(assigned < 0) & (totals <= max_count)] = k
    parents = pixels >> (2 * (order - assigned))
    starts = np.flatnonzero(np.r_[True, (assigned[1:] != assigned[:-1]) | (parents[1:] != parents[:-1])])
    return np.column_stack([assigned[starts], parents[starts], np.add.reduceat(counts, starts)])


def dense_counts(pixels, counts, order: int, to_order: int) -> np.ndarray:
    """Counts per pixel at ``to_order`` (<= ``order``, every pixel: a HEALPix map, as HATS's
    point_map.fits) from sparse counts per order-``order`` pixel."""
    dense = np.zeros(12 * 4**to_order, dtype=np.int64)
    np.add.at(dense, np.asarray(pixels, dtype=np.int64) >> (2 * (order - to_order)), np.asarray(counts, dtype=np.int64))
    return dense
