"""Reading a study: a sweep's trials as tables, fronts, heatmaps and a report, from storage alone."""

from sweeps.study.study import Study, load

__all__ = ["Study", "load"]
