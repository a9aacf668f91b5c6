"""healcat: a HEALPix-indexed sky catalog in PostgreSQL with embedded ML services."""

from catalog.crossmatch import crossmatch, crossmatch_releases
from catalog.objects import light_curve, predictions, spectra
from catalog.search import (box_search, cone_search, ellipse_search, moc_search, nearest, polygon_search, similar,
                            sky_density, source_id_of)

__all__ = ["box_search", "cone_search", "crossmatch", "crossmatch_releases", "ellipse_search", "light_curve",
           "moc_search", "nearest", "polygon_search", "predictions", "similar", "sky_density", "source_id_of", "spectra"]
