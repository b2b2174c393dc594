"""The process entry point of ``python -m autograder``: process-wide settings live here, and only here.

``rfc3987_syntax`` is marked absent for this process (unless something imported it already).
jsonschema, which nbformat, nbclient and nbgrader import, loads that optional package only to
check the ``iri`` string formats, which no notebook or nbgrader schema uses, and loading it
builds about 35 Earley parsers: 2.6 s of every grading run on a 2-core machine (known upstream:
python-jsonschema/jsonschema#1428). Without it jsonschema simply leaves ``iri`` formats unchecked.
Student kernels never inherit it: they run :mod:`autograder.runner.zygote` or a fresh ipykernel.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)

from autograder.cli import main  # noqa: E402 - after the process-wide setting above

raise SystemExit(main())
