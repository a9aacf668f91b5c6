"""healcat: a HEALPix-indexed sky catalog in PostgreSQL with embedded ML services."""

from catalog.crossmatch import crossmatch, crossmatch_releases
from catalog.search import cone_search, similar, source_id_of

__all__ = ["cone_search", "crossmatch", "crossmatch_releases", "similar", "source_id_of"]
