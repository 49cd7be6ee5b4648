"""Lengths in the units metadata uses (OME-Zarr's UDUNITS names, N5's short ones) as nanometres."""

from __future__ import annotations

NM_PER_UNIT = {
    "angstrom": 0.1,
    "picometer": 1e-3,
    "pm": 1e-3,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "nm": 1.0,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "micron": 1e3,
    "um": 1e3,
    "µm": 1e3,
    "μm": 1e3,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "mm": 1e6,
    "centimeter": 1e7,
    "centimetre": 1e7,
    "cm": 1e7,
    "meter": 1e9,
    "metre": 1e9,
    "m": 1e9,
}


def nm_per(unit) -> float | None:
    """Nanometres in one ``unit``; None for a unit that is no length (or none given)."""
    if not isinstance(unit, str):
        return None
    return NM_PER_UNIT.get(unit.strip().lower().replace("meters", "meter").replace("metres", "metre"))
