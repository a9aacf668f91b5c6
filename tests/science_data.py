"""Loaders for the science models' training files (numpy + csv + astropy), used by their tests.

Each returns plain numpy arrays with units in the key names. Rows the papers exclude are
filtered here with the reason counted; a malformed cell raises naming file, row and column.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ingest.mapping import data_dir

NULLS = {"", "NULL", "nan", "NaN"}


def _float(path: Path, row: int, column: str, text: str) -> float:
    if text.strip() in NULLS:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: row {row}, column {column!r}: not a number: {text!r}") from None


def chronoflow() -> dict[str, np.ndarray]:
    """ChronoFlow rotators after the paper's cuts (cmd/dered/phot_exclude == 0, RUWE < 1.4).

    Keys: ``gaia_dr3_id``, ``cluster``, ``population`` (subgroup: one age each), ``bprp0_mag``,
    ``prot_day``, ``log_age`` (log10 yr), ``n_excluded`` (rows cut, by the paper's flags).
    """
    path = data_dir() / "chronoflow_prot" / "prot_catalogue.csv"
    cols: dict[str, list] = {k: [] for k in ("gaia_dr3_id", "cluster", "population", "bprp0_mag",
                                              "prot_day", "log_age")}
    n_excluded = 0
    with path.open(newline="") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            ruwe = _float(path, i, "dr3_ruwe", r["dr3_ruwe"])
            if (r["cmd_exclude"], r["dered_exclude"], r["phot_exclude"]) != ("0", "0", "0") or not ruwe < 1.4:
                n_excluded += 1
                continue
            cols["gaia_dr3_id"].append(int(r["GaiaDR3_ID"]))
            cols["cluster"].append(r["cluster"])
            cols["population"].append(r["subgroup"])
            cols["bprp0_mag"].append(_float(path, i, "BPRP_0", r["BPRP_0"]))
            cols["prot_day"].append(_float(path, i, "Prot", r["Prot"]))
            cols["log_age"].append(np.log10(_float(path, i, "fiducial_age_Myr", r["fiducial_age_Myr"]) * 1e6))
    out = {k: np.array(v) for k, v in cols.items()}
    out["n_excluded"] = np.array(n_excluded)
    return out


CANDELS = "candels_goodss_sedfit_comparison"
CANDELS_BANDS = ("CTIO_U", "VIMOS_U", "ACS_F435W", "ACS_F606W", "ACS_F775W", "ACS_F814W", "ACS_F850LP",
                 "WFC3_F098M", "WFC3_F105W", "WFC3_F125W", "WFC3_F160W", "ISAAC_KS", "HAWKI_KS",
                 "IRAC_CH1", "IRAC_CH2", "IRAC_CH3", "IRAC_CH4")


def _whitespace_table(path: Path, comment: str = "#") -> tuple[list[str], np.ndarray]:
    """Header names (the last ``#`` line before the data) and a float array of the rows."""
    names: list[str] = []
    rows: list[list[float]] = []
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(comment):
            names = line.lstrip(comment).replace(",", " ").split()
        elif line.strip():
            cells = line.replace(",", " ").split()
            if len(cells) != len(names):
                raise ValueError(f"{path}: row {i}: {len(cells)} cells for {len(names)} header columns")
            rows.append([_float(path, i, names[j], c) for j, c in enumerate(cells)])
    return names, np.array(rows)


def _code_masses() -> dict[str, dict[int, float]]:
    """Each SED-fitting code's median stellar mass per CANDELS ID, log10(M/Msun), z1 and z3 samples.

    Left out: SpeedyMC (rows numbered 1..N, not CANDELS IDs), the headerless CIGALE z1 table,
    LePhare (the 23-object pilot sample) and the unlabelled mass_sfr_distribution_comparison.txt.
    """
    from astropy.io import fits

    out_dir = data_dir() / CANDELS / "code_outputs"
    codes: dict[str, dict[int, float]] = {}

    def add(code: str, ids, masses) -> None:
        table = codes.setdefault(code, {})
        for i, m in zip(np.asarray(ids).astype(float).astype(int).tolist(), np.asarray(masses, float).tolist()):
            if np.isfinite(m) and 6.0 < m < 13.0:  # log10 Msun; codes flag failed fits with sentinels
                table[i] = m

    for sample in ("z1", "z3"):
        for code, fname, col in (("bagpipes", f"bagpipes_11_3_19_{sample}_noir.cat", "stellar_mass_50"),
                                 ("prospector", f"prospector_output_{sample}.dat", "logmass"),
                                 ("sed3fit", f"RIVERSIDE_{sample}_SED3FIT_RESULTS_8_2.dat", "Mstar50"),
                                 ("interrogator_bpass", f"INTERROGATOR_{sample}_output.dat", "BPASS_log10M*_50"),
                                 ("interrogator_pegase", f"INTERROGATOR_{sample}_output.dat", "PEGASE_log10M*_50")):
            names, arr = _whitespace_table(out_dir / fname)
            add(code, arr[:, 0], arr[:, names.index(col)])
        beagle = fits.getdata(out_dir / f"BEAGLE_summary_catalogue_{sample}.fits", "GALAXY PROPERTIES")
        add("beagle", beagle["ID"], np.log10(beagle["M_star_median"]))
        magphys = fits.getdata(out_dir / ("MAGPHYS_output.fits" if sample == "z1" else "MAGPHYS_output_z3.fits"), 1)
        add("magphys", magphys["ID_0"], magphys["Mstar50_0"])
    eazy = fits.getdata(out_dir / "CANDELS_GDSS_workshop_z1.eazypy.zout.fits", 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        add("eazypy", eazy["id"], np.log10(eazy["mass"]))
    names, arr = _whitespace_table(out_dir / "cigale_27feb_results_z3.dat")
    add("cigale", arr[:, 0], arr[:, names.index("logMstar")])
    return codes


def candels() -> dict[str, np.ndarray]:
    """CANDELS GOODS-S z~1 and z~3 workshop galaxies with photometry and the codes' masses.

    Keys: ``candels_id``, ``z``, ``mag_ab`` ``[N, 17]`` (NaN where the catalogue flags no data:
    98.9x magnitudes or -99 errors), ``mag_err`` ``[N, 17]``, ``code_log_mass`` ``[N, C]``
    (log10 Msun, NaN where a code has no fit), ``codes`` (names), ``bands``.
    """
    rows_id, rows_z, mags, errs = [], [], [], []
    for sample in ("z1", "z3"):
        path = data_dir() / CANDELS / "catalogs" / f"CANDELS_GDSS_workshop_{sample}.dat"
        names, arr = _whitespace_table(path)
        rows_id.append(arr[:, names.index("ID")].astype(int))
        rows_z.append(arr[:, names.index("zz")])
        m = np.stack([arr[:, names.index(b)] for b in CANDELS_BANDS], axis=1)
        e = np.stack([arr[:, names.index("e" + b)] for b in CANDELS_BANDS], axis=1)
        missing = (m > 90) | (e < 0)
        mags.append(np.where(missing, np.nan, m))
        errs.append(np.where(missing, np.nan, e))
    ids = np.concatenate(rows_id)
    codes = _code_masses()
    names = sorted(codes)
    table = np.array([[codes[c].get(i, np.nan) for c in names] for i in ids.tolist()])
    return dict(candels_id=ids, z=np.concatenate(rows_z), mag_ab=np.concatenate(mags),
                mag_err=np.concatenate(errs), code_log_mass=table, codes=np.array(names),
                bands=np.array(CANDELS_BANDS))
