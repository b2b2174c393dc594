"""Instructor and TA tools for the pruning assignment: reference solutions, release, grading.

Not part of what students install (``pyproject.toml`` ships only ``helpers``).
"""
