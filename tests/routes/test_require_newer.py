"""``require_newer``: a change whose number at its source is not above the one the
case's stage came from is old (a late copy, or overtaken) and ends the run."""

from __future__ import annotations

from types import SimpleNamespace

import jmespath
import pytest

from bdchub.core.errors import RecoverableError, StoreError
from bdchub.routes.steps.base import Stop
from bdchub.routes.steps.domain.require_newer import KIND


class Store:
    def __init__(self, row=None, fails=False):
        self.row, self.fails = row, fails

    def progress(self, tenant, business_no):
        if self.fails:
            raise StoreError("the store is down")
        return self.row


def run(number, row=None, *, fails=False, business_no="B-1"):
    engine = SimpleNamespace(store=Store(row, fails))
    step = SimpleNamespace(compiled={"expr": jmespath.compile("sequence")})
    message = SimpleNamespace(tenant="320684", business_no=business_no,
                              data=lambda: {"sequence": number})
    return KIND.run(engine, step, message)


def test_a_newer_change_goes_on():
    assert run(1003, {"stage_seq": 1002}) == "1003"
    assert run("1003", {"stage_seq": 1002}) == "1003"


@pytest.mark.parametrize("number", [1001, 1002])
def test_an_older_or_the_same_change_ends_the_run(number):
    with pytest.raises(Stop) as stopped:
        run(number, {"stage_seq": 1002})
    assert stopped.value.outcome == "older_change"


def test_without_a_number_on_either_side_the_change_goes_on():
    assert run(None, {"stage_seq": 1002}) == ""
    assert run(1001, {"stage_seq": None}) == "1001"
    assert run(1001, None) == "1001"
    assert run(1001, {"stage_seq": 5}, business_no="") == ""


def test_a_store_that_does_not_answer_makes_the_message_wait():
    with pytest.raises(RecoverableError):
        run(1001, fails=True)
