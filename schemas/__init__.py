"""Canonical message schemas and domain format checkers.

- ``schemas.formats``: checkers for unit codes, resident IDs, credit codes,
  certificate and proof numbers, division codes and business numbers, and the
  ``FORMAT_CHECKER`` that JSON Schemas use through ``"format"``.
- ``schemas.catalog``: the message schemas in ``messages/`` (JSON Schema
  2020-12), their validators and person-readable violations.
- ``schemas.divisions``: the dated GB/T 2260 division snapshot in ``data/``.
"""
