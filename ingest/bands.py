"""The photometric bands a catalogue mapping may name.

A band's name is a key: the photo-z model reads ``sdss_u`` ... ``sdss_z``, a HATS export names columns
after it, and a new release's photometry is compared with the previous one's by it. A typo in a
mapping (``sdss_rr``, ``sdds_r``, ``SDSS_r``) made a new band without a word, which no model or query
asking for ``sdss_r`` found. So a band must be written in lower case, and be one of:

- a survey's filter this module knows (:data:`FILTERS`, :data:`PATTERNS`), or such a band
  ``_dered`` (de-reddened);
- a band an earlier release of the catalog loaded (its mapping, kept in ``release.mapping``);
- a band the mapping declares new: ``[photometry] new_bands = ["mysurvey_x"]``.

(A band an earlier release loaded stands as it was written, whatever its case.)

Near-miss matching alone cannot tell a typo from a real band (``hsc_g`` and ``hsc_i`` are one letter
apart); the names close to an unknown one are offered as suggestions.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from catalog.errors import MappingError

#: Surveys' filters, as ``<survey>_<filter>``: optical and infrared imaging surveys, Gaia, time-domain
#: surveys, and the photometric systems catalogues quote.
FILTERS = {
    "sdss": "u g r i z", "hsc": "g r i z y", "ps1": "g r i z y", "des": "g r i z y", "decam": "u g r i z y",
    "ls10": "g r i z", "ls9": "g r z", "megacam": "u g r i z", "kids": "u g r i", "skymapper": "u v g r i z",
    "lsst": "u g r i z y", "ztf": "g r i", "atlas": "c o", "euclid": "vis y j h", "galex": "fuv nuv",
    "gaia": "g bp rp", "gaia_dr1": "g", "twomass": "j h ks", "ukidss": "z y j h k", "vista": "z y j h ks",
    "viking": "z y j h ks", "wise": "w1 w2 w3 w4", "unwise": "w1 w2", "irac": "ch1 ch2 ch3 ch4",
    "johnson": "u b v r i", "cousins": "r i", "kepler": "kp", "tess": "t", "eros": "b r",
    # CANDELS GOODS-S and the EAZY HDF-N catalogue's ground-based filters
    "candels_ctio": "u", "candels_vimos": "u", "candels_isaac": "ks", "candels_hawki": "ks",
    "candels_irac": "ch1 ch2 ch3 ch4", "kpno_irim": "j h k",
}
#: Space telescopes' filters, by instrument or not: ``hst_f814w``, ``hst_acs_f814w``, ``jwst_nircam_f444w``,
#: ``candels_wfc3_f160w``.
PATTERNS = (re.compile(r"(hst|jwst|candels)(_[a-z0-9]+)?_f[0-9]{3,4}[a-z]{1,2}"),)
KNOWN = frozenset(f"{survey}_{band}" for survey, bands in FILTERS.items() for band in bands.split())
#: What a band's name may be written with.
NAME = re.compile(r"[a-z][a-z0-9_]*")
DEREDDENED = "_dered"


def known(name: str) -> bool:
    """Whether ``name`` is a survey's filter this module knows (or one de-reddened)."""
    base = name.removesuffix(DEREDDENED)
    return base in KNOWN or any(p.fullmatch(base) for p in PATTERNS)


def check_name(name: str, where: str) -> None:
    """A band's name is lower case: letters, digits and '_', starting with a letter."""
    if not NAME.fullmatch(name):
        hint = f" (did you mean {name.lower()}?)" if NAME.fullmatch(name.lower()) else ""
        raise MappingError(f"{where}: band {name!r}: a band's name is lower case letters, digits and '_', "
                           f"starting with a letter{hint}")


def check_new(bands: Iterable[str], declared: Iterable[str], loaded: Iterable[str], where: str) -> None:
    """Refuse the first of a mapping's ``bands`` that no earlier release (``loaded``: a catalog's own names
    stand, whatever their case), no survey filter known here and no ``[photometry] new_bands`` entry
    (``declared``) names, or that is not written in lower case, suggesting the close ones."""
    loaded, declared = set(loaded), set(declared)
    for name in sorted(bands):
        if name in loaded:
            continue
        check_name(name, f"{where}: [photometry] bands")
        if known(name) or name in declared:
            continue
        close = difflib.get_close_matches(name, sorted(KNOWN | loaded), n=3, cutoff=0.75)
        maybe = f"a typo of {' or '.join(close)}? " if close else ""
        raise MappingError(f"{where}: band {name} is new: no survey filter healcat knows and no release of this "
                           f"catalog has it ({maybe}if it is a new band, list it in [photometry] new_bands = "
                           f"[\"{name}\"])")
