"""E-certificate verification and download (flow i, guide §二(一)6) through the real
engine, against the sandbox's integrated platform.

Each test takes an application through to its certificate (flow a, the
registration system's stages, flow e's e-licence at the platform), then asks the
hub, as a one-window platform would, to verify the e-certificate and to download
its file. The hub relays to the platform and passes a file on only when it
hashes to the SHA-256 the platform's verification gave for it.
"""

from __future__ import annotations

import copy
import hashlib
import io
import zipfile
from typing import Any

import requests

VERIFY = "/api/v1/e-certificates/verify"
DOWNLOAD = "/api/v1/e-certificates/download"


def _certified(flows) -> dict[str, Any]:
    """A transfer taken through to its e-certificate; the licence as the platform keeps it."""
    body = copy.deepcopy(flows.samples["transfer"])
    for m in body["materials"]:
        m["tax_related"] = False
    no = body["business_no"]
    flows.submit("county_window", body)
    gov = flows.sb.endpoint("gov")

    def issued() -> dict[str, Any] | None:
        with gov.lock:
            return next((dict(r) for r in gov.licences.values() if r["business_no"] == no), None)

    licence = flows.wait(issued, timeout=30, what="the e-licence of the case")
    with gov.lock:
        licence["files"] = {f["format"]: dict(f)
                            for f in gov.licence_files[licence["license_id"]]["meta"]}
    return licence


def _post(flows, client: str, path: str, body: dict[str, Any]) -> requests.Response:
    return flows.post(client, path, body)


def _rejections(flows, path: str) -> list[dict[str, Any]]:
    return [r["fields"] for r in flows.hub.audit_log().records()
            if r["event"] == "inbound.rejected" and r["fields"].get("endpoint") == path]


def test_the_submitter_verifies_and_downloads_the_e_certificate_checked_by_its_hash(flows):
    licence = _certified(flows)
    no = licence["business_no"]

    by_number = _post(flows, "county_window", VERIFY, {"licence_number": licence["license_no"]})
    assert by_number.status_code == 200, by_number.text
    answer = by_number.json()
    assert (answer["valid"], answer["business_no"], answer["licence_number"]) == (
        True, no, licence["license_no"])
    holder = flows.samples["transfer"]["applicants"][0]
    assert answer["holder"]["name"] == holder["name"][0] + "*" * (len(holder["name"]) - 1)
    assert answer["holder"]["id_number"] == holder["id_number"][:6] + "********" + \
        holder["id_number"][-4:]
    assert {f["format"]: (f["sha256"], f["file_name"]) for f in answer["files"]} == {
        fmt: (meta["sha256"], meta["name"]) for fmt, meta in licence["files"].items()}
    by_code = _post(flows, "county_window", VERIFY, {"verify_code": licence["verify_code"]})
    assert by_code.json()["licence_number"] == licence["license_no"]

    ofd = _post(flows, "county_window", DOWNLOAD, {"licence_number": licence["license_no"]})
    assert ofd.status_code == 200, ofd.text
    assert ofd.headers["Content-Type"] == "application/ofd"
    assert hashlib.sha256(ofd.content).hexdigest() == licence["files"]["ofd"]["sha256"] == \
        ofd.headers["X-Content-SHA256"]
    assert "OFD.xml" in zipfile.ZipFile(io.BytesIO(ofd.content)).namelist()
    pdf = _post(flows, "county_window", DOWNLOAD, {"verify_code": licence["verify_code"],
                                                   "format": "pdf"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert hashlib.sha256(pdf.content).hexdigest() == licence["files"]["pdf"]["sha256"]
    assert licence["license_id"] + ".pdf" in pdf.headers["Content-Disposition"]

    sent = [r["fields"] for r in flows.hub.audit_log().records()
            if r["event"] == "inbound.file_sent"]
    assert [(s["client"], s["business_no"], s["sha256"]) for s in sent] == [
        ("county_window", no, licence["files"]["ofd"]["sha256"]),
        ("county_window", no, licence["files"]["pdf"]["sha256"])]
    # The verifications and downloads are in the case's trace, as every hand-over is.
    routes = {h["route"] for h in flows.trace(no)}
    assert {"e_certificate_verify", "e_certificate_download"} <= routes


def test_another_platform_and_an_unknown_certificate_get_404_alike(flows):
    licence = _certified(flows)
    asked = {"licence_number": licence["license_no"]}

    # The province window did not submit the case and reads only its own cases.
    other = _post(flows, "province_window", VERIFY, asked)
    unknown = _post(flows, "county_window", VERIFY,
                    {"licence_number": licence["license_no"].replace("第", "第9")})
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    download = _post(flows, "province_window", DOWNLOAD, asked)
    assert download.status_code == 404
    assert "holder" not in download.text and licence["holder_name"] not in download.text
    refused = _rejections(flows, VERIFY) + _rejections(flows, DOWNLOAD)
    assert [(r["client"], r["reason"]) for r in refused] == [
        ("province_window", "case_not_readable"), ("county_window", "case_not_readable"),
        ("province_window", "case_not_readable")]
    assert not [r for r in flows.hub.audit_log().records() if r["event"] == "inbound.file_sent"]


def test_a_file_that_differs_from_its_metadata_is_refused_audited_and_not_passed_on(flows):
    licence = _certified(flows)
    flows.sb.endpoint("gov").tamper_file(licence["license_id"], "ofd")

    resp = _post(flows, "county_window", DOWNLOAD, {"licence_number": licence["license_no"]})
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "file_hash_mismatch" and "SHA-256" in error["message"]
    refused = _rejections(flows, DOWNLOAD)
    assert len(refused) == 1 and refused[0]["business_no"] == licence["business_no"]
    assert refused[0]["expected_sha256"] == licence["files"]["ofd"]["sha256"]
    assert refused[0]["actual_sha256"] not in ("", refused[0]["expected_sha256"])
    assert not [r for r in flows.hub.audit_log().records() if r["event"] == "inbound.file_sent"]
    # Only the tampered rendering is refused; the other still checks out.
    pdf = _post(flows, "county_window", DOWNLOAD, {"licence_number": licence["license_no"],
                                                   "format": "pdf"})
    assert pdf.status_code == 200
    assert pdf.headers["X-Content-SHA256"] == licence["files"]["pdf"]["sha256"]
