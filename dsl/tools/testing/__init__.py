"""Policy tests: TOML files of cases kept beside the policies, and the functions that run them.

A policy author tests a policy without writing Python. Beside ``earn_miles.policy``
sits ``earn_miles.test.toml``::

    [[case]]
    name = "a short own flight earns the 500-mile minimum"
    customer = { member_since = 2020-05-01 }

    [case.event]
    time = 2026-03-01T09:30:00Z

    [case.event.flight]
    origin = "BOS"
    destination = "LGA"
    fare = "89.00"

    [case.expect]
    awards = { miles = 500 }

A case's ``customer`` and ``event`` are the ``Customer`` and ``Event`` messages of the
gRPC API in their mapping form, exactly what grpcurl sends (read by
:class:`~dsl.input.request.MappingDecoder`; TOML's own dates and times are welcome), so a
request copied from a log or from grpcurl becomes a case as it is. Attribute values may also
be written plainly (``nights = 4``), typed by the schema (:mod:`dsl.tools.plainvalues`).

Everything here is a pure function of its arguments: :func:`load_case_file` reads
and checks one file against a schema, :func:`run_case` evaluates one case against a
:class:`PolicySet`, :func:`run_directory` does both for a whole directory and
returns a :class:`Report`. Mistakes in a test file (an unknown field, a float where
an exact decimal is expected, a tier the schema does not declare) become
:class:`~dsl.errors.Diagnostic` values positioned in the test file and naming the
case, exactly like policy diagnostics; nothing here prints or exits.

The format is described in ``docs/language.md`` ("Policy tests").

The package, one job a module: :mod:`~dsl.tools.testing.cases` (what a file holds and what a
run found), :mod:`~dsl.tools.testing.loader` (TOML text to cases),
:mod:`~dsl.tools.testing.runner` (evaluate and compare), :mod:`~dsl.tools.testing.show`
(values as test files write them).
"""

from dsl.tools.testing.cases import (
    TEST_FILE_SUFFIX,
    Case,
    CaseResult,
    Expectation,
    ExpectedBenefit,
    Mismatch,
    Report,
)
from dsl.tools.testing.loader import find_test_files, load_case_file
from dsl.tools.testing.runner import compare, run_case, run_directory

__all__ = [
    "TEST_FILE_SUFFIX",
    "Case",
    "CaseResult",
    "Expectation",
    "ExpectedBenefit",
    "Mismatch",
    "Report",
    "compare",
    "find_test_files",
    "load_case_file",
    "run_case",
    "run_directory",
]
