"""Searches from Python, each returning an astropy Table with units."""

from catalog.search.cone import Cone, cone_search, source_id_of
from catalog.search.similar import similar

__all__ = ["Cone", "cone_search", "similar", "source_id_of"]
