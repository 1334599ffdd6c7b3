"""``hub check`` reads a SOAP connector's real WSDL and checks every call made of it.

The WSDL is read as the connector reads it (zeep, DTDs and entities refused)
and without the network: a file beside the config, or the copy cached in the
data folder when a connector last loaded it from its URL (``hub check
--ping``, ``hub run``). Operations and payload keys the service does not have
are configuration errors (exit 2) at their file:line, with "did you mean".
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bdchub.connectors import build
from bdchub.core import config
from bdchub.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
WSDL_DIR = ROOT / "schemas" / "wsdl"

CONFIG = """\
tenant: "320684"
connectors:
  legacy:
    type: soap
    wsdl: {wsdl}
    soap_version: "1.2"
routes:
  submit:
    from: application.submitted
    steps:
      - to:
          connector: legacy
          operation: SubmitApplication
          into: legacy
          payload:
            YWH: business_no
            DJLX: registration_type
            BDCDYH: unit_code
"""


def write(folder: Path, text: str, wsdl: str = "wsdl/legacy.wsdl") -> Path:
    """config.yaml in ``folder`` with the shipped legacy WSDL (and its XSD) beside it."""
    (folder / "wsdl").mkdir(exist_ok=True)
    for name in ("legacy.wsdl", "legacy.xsd"):
        shutil.copy(WSDL_DIR / name, folder / "wsdl" / name)
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(text).replace("{wsdl}", wsdl), encoding="utf-8")
    return path


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.check(path, environ or {})
    return info.value.problems


def line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def only_problem_at(path: Path, needle: str) -> str:
    """The one problem of the config, which names the file and the line of ``needle``."""
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:{line_of(path, needle)}:"), problem
    return problem


def hub(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HUB_DATA_DIR": str(data), "HUB_LANG": "en"}
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), "--lang", "en", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- a local WSDL ------------------------------------------------------------------

def test_calls_that_fit_the_local_wsdl_pass(tmp_path):
    report = config.check(write(tmp_path, CONFIG), {})
    assert report.connectors == [("legacy", "soap")]


def test_an_operation_the_wsdl_lacks_is_refused_with_did_you_mean_at_its_line(tmp_path):
    path = write(tmp_path, CONFIG.replace("operation: SubmitApplication",
                                          "operation: SubmitAplication"))
    problem = only_problem_at(path, "SubmitAplication")
    assert "routes.submit.steps[0].to.operation" in problem
    assert "'SubmitAplication'" in problem and "(did you mean 'SubmitApplication'?)" in problem


def test_a_payload_key_the_operation_does_not_take_is_refused_with_its_parameters(tmp_path):
    path = write(tmp_path, CONFIG.replace("DJLX: registration_type",
                                          "DJLXX: registration_type"))
    problem = only_problem_at(path, "DJLXX")
    assert "routes.submit.steps[0].to.payload.DJLXX" in problem
    assert "(did you mean 'DJLX'?)" in problem
    # The parameter list the operation does take, so the right name can be picked.
    assert "YWH, DJLX, QLLX, BDCDYH" in problem


def test_a_route_still_calling_the_old_vendors_operations_fails_the_check(tmp_path):
    old = CONFIG.replace("operation: SubmitApplication", "operation: TjSqxx").replace(
        "YWH: business_no", "SQBH: business_no")
    path = write(tmp_path, old)
    problem = only_problem_at(path, "TjSqxx")
    assert "no operation 'TjSqxx'" in problem
    assert "SubmitApplication" in problem and "QueryProgress" in problem


def test_pollers_and_the_reconcilers_query_are_checked_against_the_wsdl(tmp_path):
    text = CONFIG + textwrap.dedent("""\
        pollers:
          changes:
            connector: legacy
            operation: ReportStageChange
            payload: {ZDTS: 200}
            cursor: {param: QSXH, next: ZXXH}
            items: BGJL
            publish: legacy.stage_changed
          changes_too:
            connector: legacy
            operation: ReportStageChanges
            payload: {ZDTSS: 200}
            cursor: {param: QSX, next: ZXXH}
            items: BGJL
            publish: legacy.stage_changed
        reconcile:
          stages: {review: 60}
          connector: legacy
          operation: QueryProgress
          payload: {YWHH: business_no}
          events: HJ
          event_stage: ZT
          key: XH
          publish: legacy.stage_changed
        """)
    path = write(tmp_path, text)
    found = problems_of(path)
    assert len(found) == 4, found
    by_path = {p.split(": ", 2)[1]: p for p in found}
    assert "(did you mean 'ReportStageChanges'?)" in by_path["pollers.changes.operation"]
    assert "(did you mean 'ZDTS'?)" in by_path["pollers.changes_too.payload.ZDTSS"]
    assert "(did you mean 'QSXH'?)" in by_path["pollers.changes_too.cursor.param"]
    assert "(did you mean 'YWH'?)" in by_path["reconcile.payload.YWHH"]
    assert by_path["reconcile.payload.YWHH"].startswith(f"{path}:{line_of(path, 'YWHH')}:")


def test_the_probe_and_the_aliases_of_a_connector_are_checked_too(tmp_path):
    text = CONFIG.replace('    soap_version: "1.2"\n', textwrap.indent(textwrap.dedent("""\
        soap_version: "1.2"
        probe: {operation: ReportStageChanges, payload: {ZDTSS: 1}}
        operations:
          submit: {operation: SubmitAplication}
          progress: {operation: QueryProgress, response: ZT}
        """), "    "))
    text += ("      - enrich:\n"
             "          connector: legacy\n"
             "          operation: progress\n"
             "          into: state\n"
             "          payload: {YWHH: business_no}\n")
    path = write(tmp_path, text)
    found = problems_of(path)
    by_path = {p.split(": ", 2)[1]: p for p in found}
    assert set(by_path) == {"connectors.legacy.probe.payload.ZDTSS",
                            "connectors.legacy.operations.submit.operation",
                            "routes.submit.steps[1].enrich.payload.YWHH"}, found
    assert "(did you mean 'SubmitApplication'?)" in by_path[
        "connectors.legacy.operations.submit.operation"]
    # An alias's payload is the parameters of the WSDL operation it stands for.
    assert "(did you mean 'YWH'?)" in by_path["routes.submit.steps[1].enrich.payload.YWHH"]


def test_a_profile_is_checked_in_the_vendors_words_and_its_callers_in_the_countys(tmp_path):
    text = CONFIG.replace('    soap_version: "1.2"\n', textwrap.indent(textwrap.dedent("""\
        soap_version: "1.2"
        operations:
          submit_application:
            operation: SubmitApplication
            payload: {YWH: business_no, DJLXX: registration_type}
          query_progress: {operation: QueryProgres, payload: {YWH: business_no}}
        """), "    "))
    text += ("      - to: {connector: legacy, operation: submit_application,\n"
             "             payload: {business_no: business_no}}\n"
             "      - to: {connector: legacy, operation: submit_aplication}\n")
    path = write(tmp_path, text)
    by_path = {p.split(": ", 2)[1]: p for p in problems_of(path)}
    assert set(by_path) == {"connectors.legacy.operations.submit_application.payload.DJLXX",
                            "connectors.legacy.operations.query_progress.operation",
                            "routes.submit.steps[2].to.operation"}, by_path
    assert "(did you mean 'DJLX'?)" in by_path[
        "connectors.legacy.operations.submit_application.payload.DJLXX"]
    assert "(did you mean 'QueryProgress'?)" in by_path[
        "connectors.legacy.operations.query_progress.operation"]
    # The county's names are among the operations a route may call.
    assert "(did you mean 'submit_application'?)" in by_path["routes.submit.steps[2].to.operation"]


def test_a_missing_local_wsdl_is_a_config_error_at_its_line(tmp_path):
    path = write(tmp_path, CONFIG, wsdl="wsdl/legacy-v2.wsdl")
    problem = only_problem_at(path, "legacy-v2.wsdl")
    assert "connectors.legacy.wsdl" in problem and "legacy-v2.wsdl" in problem


def test_a_local_wsdl_declaring_entities_is_refused_and_nothing_is_expanded(tmp_path):
    path = write(tmp_path, CONFIG)
    wsdl = tmp_path / "wsdl" / "legacy.wsdl"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    text = wsdl.read_text(encoding="utf-8")
    wsdl.write_text(text.replace(
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE x [<!ENTITY s SYSTEM "file://{secret}">]>',
        1), encoding="utf-8")
    [problem] = problems_of(path)
    assert "connectors.legacy.wsdl" in problem and "unsafe" in problem
    assert "TOP-SECRET" not in problem


def test_an_unknown_service_or_port_is_reported_at_its_key(tmp_path):
    path = write(tmp_path, CONFIG.replace('soap_version: "1.2"', "port: LegacySoap13"))
    problem = only_problem_at(path, "LegacySoap13")
    assert "connectors.legacy.port" in problem and "LegacyRegistrationSoap12Port" in problem


def test_operation_parts_names_an_operations_parameters_and_its_answer():
    from bdchub.connectors.wsdl import operation_parts

    inputs, outputs = operation_parts(WSDL_DIR / "legacy.wsdl", "QueryProgress")
    assert inputs == ("YWH",)
    assert outputs[:3] == ("YWH", "ZT", "ZTMC") and "HJ" in outputs
    with pytest.raises(ConfigError, match="did you mean 'QueryProgress'"):
        operation_parts(WSDL_DIR / "legacy.wsdl", "QueryProgres")


# -- a remote WSDL: skipped, fetched by --ping, cached ----------------------------------

def test_a_remote_wsdl_not_cached_is_skipped_with_a_notice_not_an_error(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/ws?wsdl"
    path = write(tmp_path, CONFIG.replace("operation: SubmitApplication", "operation: TjSqx"),
                 wsdl=url)
    result = hub("check", "-c", str(path), data=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout
    assert f"connector legacy: operations not checked against the WSDL at {url}" in result.stdout
    assert "hub check --ping" in result.stdout


def test_ping_checks_a_reachable_wsdl_caches_it_and_the_next_check_reads_the_copy(
        clean_sandbox, tmp_path):
    url = clean_sandbox.wsdl_url("legacy")
    data = tmp_path / "data"
    path = write(tmp_path, CONFIG.replace("operation: SubmitApplication",
                                          "operation: SubmitAplication"), wsdl=url)
    assert hub("check", "-c", str(path), data=data).returncode == 0  # nothing to check against

    pinged = hub("check", "-c", str(path), "--ping", data=data)
    assert pinged.returncode == 2, pinged.stdout + pinged.stderr
    assert f"{path}:{line_of(path, 'SubmitAplication')}:" in pinged.stderr
    assert "(did you mean 'SubmitApplication'?)" in pinged.stderr
    assert "connectors down" not in pinged.stderr

    clean_sandbox.down("legacy")
    offline = hub("check", "-c", str(path), data=data)
    assert offline.returncode == 2, offline.stdout + offline.stderr
    assert "(did you mean 'SubmitApplication'?)" in offline.stderr

    path.write_text(path.read_text(encoding="utf-8").replace("SubmitAplication",
                                                             "SubmitApplication"))
    fixed = hub("check", "-c", str(path), data=data)
    assert fixed.returncode == 0, fixed.stderr
    assert "connector legacy: operations checked against its WSDL as last fetched" in fixed.stdout


def test_a_soap_connector_caches_the_remote_wsdl_it_loads_for_the_next_check(
        clean_sandbox, tmp_path, monkeypatch):
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    url = clean_sandbox.wsdl_url("legacy")
    path = write(tmp_path, CONFIG.replace("DJLX: registration_type", "DJLXX: x"), wsdl=url)
    config.check(path, {})  # not cached yet: nothing to check against

    connector = build("legacy", {"type": "soap", "wsdl": url, "soap_version": "1.2"},
                      base_dir=tmp_path)
    try:
        connector.open()
    finally:
        connector.close()
    assert (tmp_path / "data" / "wsdl-cache.db").is_file()
    clean_sandbox.down("legacy")
    [problem] = problems_of(path)
    assert "routes.submit.steps[0].to.payload.DJLXX" in problem


def test_a_damaged_cache_is_no_config_problem(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "wsdl-cache.db").write_bytes(b"not a database" * 100)
    config.check(write(tmp_path, CONFIG), {})  # the local WSDL is read all the same
    remote = write(tmp_path, CONFIG.replace("operation: SubmitApplication", "operation: TjSqx"),
                   wsdl=f"http://127.0.0.1:{closed_port()}/ws?wsdl")
    config.check(remote, {})  # nothing at hand to check the remote one against


# -- exit codes ---------------------------------------------------------------------

def test_ping_exits_1_when_a_connector_is_down_and_the_help_and_readme_say_so(
        clean_sandbox, tmp_path):
    path = write(tmp_path, CONFIG, wsdl=clean_sandbox.wsdl_url("legacy"))
    data = tmp_path / "data"
    assert hub("check", "-c", str(path), "--ping", data=data).returncode == 0
    clean_sandbox.down("legacy")
    down = hub("check", "-c", str(path), "--ping", data=data)
    assert down.returncode == 1, down.stdout + down.stderr
    assert "connectors down: legacy" in down.stderr

    help_text = " ".join(hub("check", "--help", data=data).stdout.split())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    check_lines = [line for line in readme.splitlines() if line.startswith("| `hub check")]
    for text in (help_text, check_lines[0]):
        assert "exit 0" in text
        assert "1 when a connector is down" in text
        assert "2 with every problem" in text
