"""Workloads that ship with the core for measuring and testing the platform itself (no model work).

Like every workload they are found only through the ``sweeps.workloads`` entry points, and they
import nothing from ``sweeps``: the core never imports them by name.
"""
