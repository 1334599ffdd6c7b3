"""docs/registration-system.md works as written: its second vendor's block, put in
place of the shipped ``legacy`` block and nothing else changed, passes ``hub
check`` against that vendor's WSDL, and carries an application, a callback and
a reconciliation through the shipped routes to a loopback server that speaks
that vendor's SOAP (tests/connectors/djxt.py)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
import requests

from bdchub.core import config
from bdchub.core.errors import ConfigError
from tests.connectors.djxt import WSDL, Djxt
from tests.demo.conftest import Flows

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "registration-system.md"


def vendor_block() -> str:
    """The page's ``legacy:`` block, as written."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    [block] = [b for b in blocks if b.startswith("legacy:\n")]
    return block


def with_vendor(block: str) -> str:
    """config.yaml with its ``connectors.legacy`` block replaced by ``block``."""
    lines = (ROOT / "config.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = lines.index("  legacy:\n")
    end = next(i for i in range(start + 1, len(lines)) if re.match(r"  \S", lines[i]))
    indented = "".join("  " + line if line.strip() else line
                       for line in block.splitlines(keepends=True))
    return "".join(lines[:start]) + indented + "".join(lines[end:])


def write(folder: Path, text: str) -> Path:
    (folder / "wsdl").mkdir(exist_ok=True)
    shutil.copy(WSDL, folder / "wsdl" / "djxt.wsdl")
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_page_swaps_only_the_legacy_block():
    shipped = (ROOT / "config.yaml").read_text(encoding="utf-8")
    swapped = with_vendor(vendor_block())
    assert swapped != shipped
    assert "CreateCase" in swapped and "SubmitApplication" not in swapped
    # The routes, pollers, reconciler and callback endpoint are the shipped ones.
    assert swapped.split("\nroutes:\n", 1)[1] == shipped.split("\nroutes:\n", 1)[1]


def test_the_pages_block_passes_hub_check_against_the_vendors_wsdl(tmp_path):
    path = write(tmp_path, with_vendor(vendor_block()))
    report = config.check(path, {})
    assert ("legacy", "soap") in report.connectors


def test_hub_check_holds_the_pages_block_to_the_wsdl(tmp_path):
    """The check above is against the WSDL: a typo in the block would have failed it."""
    text = with_vendor(vendor_block().replace("operation: GetCaseStatus",
                                              "operation: GetCaseStatu"))
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.check(path, {})
    [problem] = info.value.problems
    assert "connectors.legacy.operations.query_progress.operation" in problem
    assert "(did you mean 'GetCaseStatus'?)" in problem


@pytest.fixture
def djxt():
    system = Djxt().start()
    yield system
    system.stop()


def test_an_application_callback_and_reconciliation_go_through_the_second_vendor(
        clean_sandbox, djxt, tmp_path):
    from bdchub.app.reconciler import Reconciler
    from bdchub.app.service import HubService
    from bdchub.demo import samples as samples_mod
    from bdchub.demo.environment import free_port, sandbox_environ
    from bdchub.web.signing import signed_headers

    sb = clean_sandbox
    (tmp_path / "data").mkdir()
    environ = sandbox_environ(sb, inbound_port=free_port(), data_dir=tmp_path / "data",
                              HUB_LEGACY_WSDL=djxt.url + "?wsdl")
    cfg = config.load(write(tmp_path, with_vendor(vendor_block())), environ=environ)
    # The shipped config against the sandbox: its clients sign with the demo secrets.
    service = HubService.from_config(cfg, tick_interval=0.1, demo_secrets=True)
    service.start()
    hub = service.hub
    try:
        client = cfg["inbound"]["clients"]["legacy"]
        djxt.callback = (service.url + "/api/v1/inbound/legacy/stage-changes",
                         client["app_key"], client["app_secret"])
        samples = samples_mod.build(sb.data, tag=uuid.uuid4().hex[:4].upper())
        body = copy.deepcopy(samples["transfer"])
        for material in body["materials"]:
            material["tax_related"] = False  # straight to the registration system
        no = body["business_no"]
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        window = cfg["inbound"]["clients"]["county_window"]
        answer = requests.post(service.url + "/api/v1/applications", data=raw, timeout=30,
                               headers={"Content-Type": "application/json; charset=utf-8",
                                        **signed_headers(window["app_key"], window["app_secret"],
                                                         "POST", "/api/v1/applications", raw)})
        assert answer.status_code == 202, answer.text

        # The application reaches the vendor in the vendor's words.
        [created] = Flows.wait(lambda: djxt.calls("CreateCase"), what="CreateCase")
        sent = created["body"]
        assert sent["CaseNo"] == no and sent["UnitNo"] == body["unit_codes"][0]
        assert sent["RegType"] == body["registration_type"]
        holders = sent["Holder"] if isinstance(sent["Holder"], list) else [sent["Holder"]]
        assert [h["CertNo"] for h in holders] == [a["id_number"] for a in body["applicants"]]
        assert created["key"]  # the idempotency key, in the vendor's RequestId header

        def stage() -> str:
            return str((hub.store.progress(hub.tenant, no) or {}).get("stage") or "")

        # Its callback, in its own field names, moves the case and notifies the window.
        Flows.wait(lambda: stage() == "application", what="progress application")
        djxt.change(no, "SL")
        Flows.wait(lambda: stage() == "acceptance", what="progress acceptance by callback")
        Flows.wait(lambda: [r for r in sb.received("window_county") if r["path"] == "/notices"
                            and r["body"].get("business_no") == no
                            and r["body"].get("notice_type") == "acceptance.notified"],
                   what="acceptance notice")

        # A callback it never sent is found by the reconciler asking GetCaseStatus.
        djxt.change(no, "SH", push=False)
        reconciler = Reconciler(cfg["reconcile"], store=hub.store, connectors=hub.connectors,
                                publish=hub.publish, clock=lambda: time.time() + 10 ** 7)
        reconciler.run_once()
        Flows.wait(lambda: stage() == "review", what="progress review by reconciliation")
        assert djxt.calls("GetCaseStatus")
        # Only this application's: the shared session sandbox's court holds the
        # orders other tests added, which the court poller of this hub pulls too.
        mine = [d for d in hub.dlq_list() if d["business_no"] == no]
        assert mine == [], [d["last_error"] for d in mine]
    finally:
        service.stop(timeout=5.0)
