"""``match_name``: is the name given in the application the one a register holds?
(guide §四(一)3: an organisation applicant's name is checked against its
business-licence record, not only the licence's existence and status.)

::

    - match_name:
        name: "(applicants[?id_type=='8'] || obligors[?id_type=='8'])[0].name"
        registered: checks.licence.company_name
        into: checks.licence_name        # {match, given, registered}
        record: licence_name             # kept as a verification record

The two names are compared after Unicode NFKC (full-width brackets, letters
and digits become their plain forms) with white space removed and case
folded, so "某某（海门）有限公司" matches "某某(海门)有限公司"; anything else
that differs is a mismatch. A name missing on either side is a mismatch
too: nothing was verified. The step only records the outcome at ``into``;
the route decides what a mismatch means (the shipped config refuses the
application, as it does a failed identity check).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from bdchub.core.store import dumps

from ...body import with_path
from ...language import EXPR
from ..base import Compiling, StepKind


def comparable(name: Any) -> str:
    """``name`` as two spellings of one name compare equal; "" for no name."""
    if not isinstance(name, str):
        return ""
    return "".join(unicodedata.normalize("NFKC", name).split()).casefold()


class MatchName(StepKind):
    name = "match_name"
    schema = {
        "type": "object", "additionalProperties": False,
        "required": ["name", "registered", "into"],
        "properties": {
            "name": {**EXPR, "description": "the name the application gives"},
            "registered": {**EXPR, "description": "the name the register holds"},
            "into": {"type": "string", "minLength": 1,
                     "description": "dotted body path of {match, given, registered}"},
            "record": {"type": "string", "minLength": 1,
                       "description": "store the outcome as a verification record of this kind"},
        },
    }

    def compile(self, spec: Any, ctx: Compiling) -> dict[str, Any]:
        return {"name": ctx.expr(spec["name"], "name"),
                "registered": ctx.expr(spec["registered"], "registered"),
                "into": spec["into"], "record": spec.get("record")}

    def run(self, engine, step, run) -> str:  # noqa: ANN001 - see StepKind.run
        c = step.compiled
        data = run.data()
        given, registered = c["name"].search(data), c["registered"].search(data)
        left = comparable(given)
        match = bool(left) and left == comparable(registered)
        outcome = {"match": match, "given": given, "registered": registered}
        run.body = with_path(run.body, c["into"], outcome)
        if c["record"]:
            run.records.append({"kind": c["record"], "connector": "hub",
                                "operation": self.name, "result": dumps(outcome)})
        return "match" if match else "mismatch"


KIND = MatchName()
