"""Reusable PTransforms and the pure per-element functions behind them.

Modules here import apache_beam only where they define PTransforms; pure helpers (``seeding``,
``errors``, text functions) stay importable without it.
"""
