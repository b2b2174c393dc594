"""Instructor and TA tools for the pruning assignment: reference solutions, release, grading.

Not part of what students install (``pyproject.toml`` ships only ``helpers``).

Side effect of importing this package: ``rfc3987_syntax`` is marked absent for the process
(unless something imported it already). jsonschema, which nbformat, nbclient and nbgrader
import, loads that optional package only to check the ``iri`` string formats, which no
notebook or nbgrader schema uses, and loading it builds about 35 Earley parsers: 2.6 s of
every grading run on a 2-core machine (known upstream: python-jsonschema/jsonschema#1428).
Without it jsonschema simply leaves ``iri`` formats unchecked.
"""

import sys as _sys

_sys.modules.setdefault("rfc3987_syntax", None)
