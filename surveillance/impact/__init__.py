"""Market impact of a metaorder on paired forks of a real book (``surveillance impact``):
``measure_impact`` -> ``ImpactReport`` (``.as_dict()``), the fits in ``fit``, the HTML report in
``report``."""

from surveillance.impact.measure import (
    LADDER,
    STRATEGIES,
    ImpactError,
    ImpactReport,
    ImpactRun,
    SizeLaw,
    Strategy,
    VolumeScale,
    impact_of_request,
    measure_impact,
)

__all__ = [
    "LADDER",
    "STRATEGIES",
    "ImpactError",
    "ImpactReport",
    "ImpactRun",
    "SizeLaw",
    "Strategy",
    "VolumeScale",
    "impact_of_request",
    "measure_impact",
]
