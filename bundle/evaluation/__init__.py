"""Scoring prediction folders against labels, the classical baselines and method comparisons.

- ``metrics``: the paper's per-scan metrics; ``statistics``: group summaries, correlation, Bland-Altman;
- ``evaluate``: one prediction folder against a split (metrics.csv, summary.json, plots); ``plots``: its figures;
- ``baselines``: the classical two-phase scar methods; ``comparison``: the paper's Tables IV and V across methods.
"""
