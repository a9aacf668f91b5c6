"""Searches from Python, each returning an astropy Table with units."""

from catalog.search.box import Box, box_search
from catalog.search.cone import Cone, cone_search, nearest, source_id_of
from catalog.search.density import density_of, sky_density
from catalog.search.ellipse import Ellipse, ellipse_search
from catalog.search.moc import Moc, moc_search
from catalog.search.polygon import Polygon, polygon_search
from catalog.search.similar import similar

__all__ = [
    "Box", "Cone", "Ellipse", "Moc", "Polygon",
    "box_search", "cone_search", "density_of", "ellipse_search", "moc_search", "nearest", "polygon_search",
    "similar", "sky_density", "source_id_of",
]
