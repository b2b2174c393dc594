"""nbgrader's check of a notebook's cell metadata, with its JSON schema compiled once.

nbgrader's ``CheckCellMetadata`` (a step of every ``autograde``, twice: after sanitizing and after
grading) validates each cell's ``nbgrader`` metadata with ``jsonschema.validate``, which first checks the
schema itself against JSON Schema's meta-schema and builds a new validator, for every cell. Recording one
executed notebook of this assignment took 0.29 CPU seconds, of which about 0.08 went there (cProfile of
:meth:`~autograder.grading.gradebook.Course.record` on the samples' executed notebooks).

:class:`CheckCellMetadataOnce` makes the same checks, in the same order, with the same exceptions and
messages (nbgrader's own validator class; only its JSON-schema step differs), but the schema is checked
and compiled once per process. :class:`~autograder.grading.gradebook.Course` uses it for its ``autograde``
calls; the course's ``nbgrader_config.py`` names nbgrader's own class, for the TA's ``nbgrader`` commands.

Example::

    nb = nbformat.read("pruning.ipynb", as_version=4)
    CompiledMetadataValidator().validate_nb(nb)   # raises jsonschema.ValidationError as nbgrader's does

Runs in the grader's process.
"""

from __future__ import annotations

import threading
import traceback

import jsonschema
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.nbgraderformat.common import BaseMetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import CheckCellMetadata

__all__ = ["CompiledMetadataValidator", "CheckCellMetadataOnce"]

_lock = threading.Lock()
_compiled: dict[int, object] = {}  # schema version -> its checked, compiled jsonschema validator


def _validator(version: int, schema: dict):
    """The compiled validator of nbgrader's metadata schema ``version`` (``schema``: its JSON), made once."""
    with _lock:
        found = _compiled.get(version)
        if found is None:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)  # what jsonschema.validate does first, on every call
            found = _compiled[version] = cls(schema)
        return found


class _SchemaOnce(BaseMetadataValidator):
    """``BaseMetadataValidator.validate_cell`` with ``jsonschema.validate(meta, schema)`` replaced by the
    same validation (the best-matching error raised, as ``jsonschema.validate`` raises it) with a validator
    compiled once."""

    def validate_cell(self, cell) -> None:
        if "nbgrader" not in cell.metadata:
            return
        schema = cell.metadata["nbgrader"].get("schema_version", 0)
        if schema < self.schema_version:
            raise SchemaTooOldError(f"Outdated schema version: {schema} (expected {self.schema_version})",
                                    schema, self.schema_version)
        if schema > self.schema_version:
            raise SchemaTooNewError(f"Schema version is too new: {schema} (expected {self.schema_version})",
                                    schema, self.schema_version)
        error = jsonschema.exceptions.best_match(
            _validator(self.schema_version, self.schema).iter_errors(cell.metadata["nbgrader"]))
        if error is not None:
            raise error


class CompiledMetadataValidator(MetadataValidator, _SchemaOnce):
    """nbgrader's current ``MetadataValidator``: its checks of grade ids, points and cell types run as they
    are; its call ``super().validate_cell`` reaches :class:`_SchemaOnce` (the class order puts it before
    ``BaseMetadataValidator``)."""


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata`` preprocessor with :class:`CompiledMetadataValidator`."""

    def preprocess(self, nb, resources):
        try:
            CompiledMetadataValidator().validate_nb(nb)
        except ValidationError:  # logged and raised as nbgrader's preprocessor does
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg) from None
        return nb, resources
