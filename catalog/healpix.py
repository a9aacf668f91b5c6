"""All of healcat's HEALPix arithmetic: the only module that imports healpy.

Every positioned row carries ``hpx``, the NESTED HEALPix index of its ICRS
position at order 29 (``ORDER``), which is exactly HATS's ``_healpix_29``.
Because the nested scheme is hierarchical, the order-k pixel containing a row
is ``hpx >> 2*(29-k)``, and the order-k pixel ``p`` is the contiguous range
``[p << 2*(29-k), (p+1) << 2*(29-k))`` of order-29 indices. A cone therefore
becomes a handful of integer ranges that a btree answers, followed by an exact
angular-distance recheck.

``SHARD_ORDER`` fixes the coarse pixel used as the distribution (shard) column
of every per-object table: ``shard = hpx >> SHARD_SHIFT`` (order 4, 3072 pixels).
"""

from __future__ import annotations

import math

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
    "shards_of_ranges",
    "xmatch_cover",
]


def _check_positions(ra_deg: np.ndarray, dec_deg: np.ndarray) -> None:
    if not (np.all(np.isfinite(ra_deg)) and np.all(np.isfinite(dec_deg))):
        raise ValueError("positions must be finite")
    if np.any(np.abs(dec_deg) > 90.0):
        raise ValueError(f"dec_deg out of [-90, 90]: {dec_deg[np.abs(dec_deg) > 90][0]!r}")


def wrap_ra_deg(ra_deg) -> np.ndarray:
    """Right ascension in [0, 360) deg (np.mod alone turns -1e-20 into 360.0)."""
    ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
    return np.where(ra >= 360.0, 0.0, ra)


def hpx_index(ra_deg, dec_deg) -> np.ndarray:
    """Nested order-29 HEALPix index of ICRS positions in degrees (int64 array)."""
    ra = wrap_ra_deg(ra_deg)
    dec = np.asarray(dec_deg, dtype=np.float64)
    _check_positions(ra, dec)
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


def _merge(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    starts = np.ones(len(lo), dtype=bool)
    starts[1:] = lo[1:] > hi[:-1]
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
    return _merge(pix << shift, (pix + 1) << shift)


def shards_of_ranges(ranges: np.ndarray) -> list[int]:
    """Distinct order-4 shards touched by order-29 ranges (for ``shard = ANY(...)`` pruning)."""
    shards: set[int] = set()
    for lo, hi in np.asarray(ranges, dtype=np.int64):
        shards.update(range(int(lo) >> SHARD_SHIFT, ((int(hi) - 1) >> SHARD_SHIFT) + 1))
    return sorted(shards)


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
