"""``hub test``: config unit tests run in-process, reported like pytest.

Each test writes a small config and a test file into a temporary folder and
runs the command as a county's IT staff would (``hub test …``), then reads
its exit code and what it printed. The last tests run the shipped config's
own tests (config.tests/), which is how ``make test`` runs them.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from bdchub.app import configtest, configtest_spec
from bdchub.core import i18n
from bdchub.hub import main

ROOT = Path(__file__).resolve().parents[2]
LEGACY_WSDL = ROOT / "schemas" / "wsdl" / "legacy.wsdl"

CONFIG = f"""\
tenant: "320684"
inbound:
  clients:
    window:
      app_key: ak-window
      app_secret: window-secret-for-tests-0123456789
      tenants: ["320684"]
      channel: county
      sends: [check.requested]
  endpoints:
    - {{method: POST, path: /api/v1/checks, route: check, reply: false, type: check.requested}}
connectors:
  dept:
    type: rest
    base_url: http://127.0.0.1:9
    retry: {{attempts: 3, backoff: 0.5}}
    success: {{path: code, ok: ["0"], message_path: message}}
    operations:
      lookup: {{method: POST, path: /lookup, response: data}}
  legacy:
    type: soap
    wsdl: {LEGACY_WSDL}
    retry: {{attempts: 2}}
routes:
  check:
    from: check.requested
    steps:
      - enrich: {{connector: dept, operation: lookup, payload: {{id: id_number}}, into: found,
                 record: lookup}}
      - to: {{connector: legacy, operation: SubmitApplication, payload: {{YWH: business_no}}}}
      - publish: {{type: check.done, body: {{business_no: business_no, name: found.name}}}}
    on_error: {{retry: {{attempts: 1}}, park_for: 30, park_max: 2}}
  joint:
    from: joint.started
    steps:
      - await: {{types: [joint.cleared], timeout: 3600, into: cleared,
                on_timeout: [{{publish: joint.expired}}]}}
      - publish: joint.finished
"""

GOOD = """\
mocks:
  dept:
    lookup: {reply: {code: "0", data: {name: 张三}}}
  legacy:
    SubmitApplication: {reply: {YWH: B1}}
cases:
  - name: a check is looked up and forwarded
    inputs:
      - message: {type: check.requested, body: {business_no: B1, id_number: "110"}}
    expect:
      calls:
        - {connector: dept, operation: lookup, payload: {id: "110"}}
        - {connector: legacy, operation: SubmitApplication, payload: {YWH: B1}}
      published: [{type: check.done, body: {name: 张三}}]
      verifications: [{kind: lookup, result: {name: 张三}}]
      dead_letters: []
"""


@pytest.fixture(autouse=True)
def english():
    i18n.set_language("en")
    yield
    i18n.set_language(None)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "config.tests").mkdir()
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / "config.tests" / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def hub_test(capsys, *args: str) -> tuple[int, str]:
    code = main(["test", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def line_of(path: Path, text: str) -> int:
    """The line of ``path`` where ``text`` first appears (1-based)."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text in line:
            return n
    raise AssertionError(f"{text!r} not in {path}")


# -- passing and failing ------------------------------------------------------------

def test_the_tests_beside_a_config_run_by_default_and_a_passing_case_exits_0(folder, capsys):
    write(folder, "checks.yaml", GOOD)
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out
    assert "checks.yaml::a check is looked up and forwarded PASSED" in out
    assert "1 passed" in out


def test_a_failing_expectation_exits_1_naming_its_file_line_and_what_differed(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace('payload: {YWH: B1}}', 'payload: {YWH: B2}}'))
    code, out = hub_test(capsys, str(test))
    assert code == 1
    assert "checks.yaml::a check is looked up and forwarded FAILED" in out
    line = line_of(test, "payload: {YWH: B2}")
    assert re.search(rf"checks\.yaml:{line}:\d+: cases\[0\]\.expect\.calls\[1\]: "
                     r"no legacy\.SubmitApplication matched", out), out
    assert 'payload.YWH: expected "B2", got "B1"' in out
    assert "1 failed" in out


def test_each_case_runs_on_its_own_hub_and_reports_its_own_line(folder, capsys):
    write(folder, "checks.yaml", GOOD + """\
  - name: nothing is published for another type
    inputs:
      - message: {type: joint.started, body: {business_no: J1}}
    expect:
      calls: []
      published: []
      verifications: []
""")
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out
    assert out.count("PASSED") == 2


def test_a_published_message_expected_absent_fails_with_its_body(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace("dead_letters: []",
                                                     "not_published: [check.done]"))
    code, out = hub_test(capsys, str(test))
    assert code == 1
    assert f"checks.yaml:{line_of(test, 'not_published')}:" in out
    assert "check.done was published 1 time(s)" in out
    assert '"name": "张三"' in out


def test_in_order_says_when_everything_came_but_in_another_order(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace("    expect:\n", "    expect:\n      in_order: true\n")
                 .replace("        - {connector: dept, operation: lookup, payload: {id: \"110\"}}\n", "")
                 .replace("payload: {YWH: B1}}\n", "payload: {YWH: B1}}\n"
                          "        - {connector: dept, operation: lookup}\n"))
    code, out = hub_test(capsys, str(test))
    assert code == 1
    assert "came, but not in the expected order" in out


# -- mocks: answers in order, faults, the connector's own policies ----------------------

def answered(old: str, new: str, counts: str) -> str:
    """GOOD with one mock's answers replaced and the calls counted."""
    return GOOD.replace(old, new).replace("dead_letters: []",
                                          "dead_letters: []\n      call_counts: " + counts)


def test_a_recoverable_error_twice_then_a_reply_is_retried_by_the_connectors_retry(folder, capsys):
    write(folder, "checks.yaml", answered(
        'lookup: {reply: {code: "0", data: {name: 张三}}}',
        'lookup: [{error: connection refused, times: 2}, {reply: {code: "0", data: {name: 张三}}}]',
        "{dept.lookup: 3}"))
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out


def test_a_refusal_by_the_success_rule_dead_letters_with_the_systems_own_words(folder, capsys):
    write(folder, "checks.yaml", """\
    mocks:
      dept:
        lookup: {reply: {code: "E42", message: 查无此人}}
    cases:
      - name: refused
        inputs:
          - message: {type: check.requested, body: {business_no: B1, id_number: "110"}}
        expect:
          call_counts: {dept.lookup: 1}
          no_calls: [legacy]
          dead_letters: [{route: check, reason: permanent, error: 查无此人}]
    """)
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out


def test_a_soap_fault_is_classified_as_the_soap_connector_would(folder, capsys):
    write(folder, "checks.yaml", answered(
        "SubmitApplication: {reply: {YWH: B1}}",
        "SubmitApplication: [{fault: {code: Server, message: busy}}, {reply: {YWH: B1}}]",
        "{legacy.SubmitApplication: 2}"))
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out
    write(folder, "checks.yaml", GOOD.replace(
        "SubmitApplication: {reply: {YWH: B1}}",
        "SubmitApplication: {fault: {code: Client, message: 业务号重复}}")
        .replace("dead_letters: []",
                 "dead_letters: [{route: check, reason: permanent, error: 业务号重复}]")
        .replace("published: [{type: check.done, body: {name: 张三}}]", "published: []"))
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out


def test_a_call_the_case_does_not_mock_fails_it_naming_the_route(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace(
        "  legacy:\n    SubmitApplication: {reply: {YWH: B1}}\n", ""))
    code, out = hub_test(capsys, str(test))
    assert code == 1
    assert ("legacy.SubmitApplication was called by route check but this case does not mock "
            "it") in out


def test_more_calls_than_answers_given_times_fails_at_the_last_answer(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace(
        'lookup: {reply: {code: "0", data: {name: 张三}}}',
        'lookup: {error: down, times: 1}'))
    code, out = hub_test(capsys, str(test))
    assert code == 1
    assert f"checks.yaml:{line_of(test, 'error: down')}:" in out
    assert "dept.lookup was called by route check more often than its mocked answers allow" in out


# -- time --------------------------------------------------------------------------------

def test_advance_lets_an_await_time_out_and_a_later_arrival_resume_nothing(folder, capsys):
    write(folder, "joint.yaml", """\
    cases:
      - name: times out
        inputs:
          - message: {type: joint.started, body: {business_no: J1}}
          - advance: 59m
          - advance: 61s
          - message: {type: joint.cleared, body: {business_no: J1}}
        expect:
          published: [{type: joint.expired}]
          not_published: [joint.finished]
          runs: [{route: joint, outcome: awaiting}, {route: joint, outcome: timed_out}]
      - name: resumed in time
        inputs:
          - message: {type: joint.started, body: {business_no: J1}}
          - advance: 59m
          - message: {type: joint.cleared, body: {business_no: J1}}
        expect:
          published: [{type: joint.finished}]
          not_published: [joint.expired]
    """)
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out


def test_a_parked_message_comes_back_when_the_clock_passes_park_for(folder, capsys):
    write(folder, "checks.yaml", GOOD.replace(
        "SubmitApplication: {reply: {YWH: B1}}",
        "SubmitApplication: [{timeout: true, times: 2}, {reply: {YWH: B1}}]").replace(
        "    inputs:\n      - message: {type: check.requested, body: {business_no: B1, id_number: \"110\"}}\n",
        "    inputs:\n      - message: {type: check.requested, body: {business_no: B1, id_number: \"110\"}}\n"
        "      - advance: 29s\n      - advance: 2s\n"))
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 0, out


# -- inbound requests ---------------------------------------------------------------------

def test_a_request_is_signed_with_the_clients_key_from_the_config_and_its_reply_checked(
        folder, capsys):
    test = write(folder, "requests.yaml", """\
    mocks:
      dept: {lookup: {reply: {code: "0", data: {name: 张三}}}}
      legacy: {SubmitApplication: {reply: {YWH: B1}}}
    cases:
      - name: accepted
        inputs:
          - request:
              path: /api/v1/checks
              client: window
              body: {business_no: B1, id_number: "110"}
              reply: {status: 202, body: {status: accepted, business_no: B1}}
        expect:
          published: [{type: check.requested, source: "web:window"}, {type: check.done}]
      - name: refused without a signature
        inputs:
          - request:
              path: /api/v1/checks
              sign: false
              body: {business_no: B1}
              reply: {status: 202}
    """)
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 1, out
    assert "requests.yaml::accepted PASSED" in out
    assert "requests.yaml::refused without a signature FAILED" in out
    assert f"requests.yaml:{line_of(test, 'reply: {status: 202}')}:" in out
    assert "status: expected 202, got 401" in out


# -- bad test files: exit 2, every problem at its line --------------------------------------

def test_mocking_an_operation_the_wsdl_does_not_have_is_a_bad_test_file(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace("SubmitApplication: {reply",
                                                     "SubmitAplication: {reply"))
    code, out = hub_test(capsys, str(test))
    assert code == 2
    line = line_of(test, "SubmitAplication")
    assert re.search(rf"checks\.yaml:{line}:\d+: mocks\.legacy\.SubmitAplication: connector "
                     r"'legacy' has no operation 'SubmitAplication' \(did you mean "
                     r"'SubmitApplication'\?\)", out), out
    assert "PASSED" not in out and "FAILED" not in out  # nothing ran


def test_unknown_connector_route_client_poller_and_type_are_each_reported_at_their_line(
        folder, capsys):
    test = write(folder, "bad.yaml", """\
    mocks:
      dpt: {lookup: {reply: {}}}
    cases:
      - name: bad names
        inputs:
          - message: {type: check.requestd, body: {business_no: B1}}
          - request: {path: /api/v1/applications, client: windw}
          - poll: court
        expect:
          dead_letters: [{route: chek}]
          published: [{type: check.don}]
          calls: [{connector: dept, operation: lookpu}]
    """)
    code, out = hub_test(capsys, str(test))
    assert code == 2
    expected = [
        ("dpt:", "no connector named 'dpt' in the config (did you mean 'dept'?)"),
        ("check.requestd", "no route takes messages of type 'check.requestd' (did you mean "
                           "'check.requested'?)"),
        ("windw", "no inbound client named 'windw' (did you mean 'window'?)"),
        ("poll: court", "no poller named 'court'"),
        ("chek", "no route named 'chek' (did you mean 'check'?)"),
        ("check.don", "nothing in the config publishes messages of type 'check.don' (did you "
                      "mean 'check.done'?)"),
        ("lookpu", "connector 'dept' has no operation 'lookpu' (did you mean 'lookup'?)"),
    ]
    for text, message in expected:
        assert f"bad.yaml:{line_of(test, text)}:" in out, (text, out)
        assert message in out, (message, out)


def test_a_fault_mocked_for_a_rest_connector_is_a_bad_test_file(folder, capsys):
    test = write(folder, "checks.yaml", GOOD.replace('lookup: {reply: {code: "0", data: {name: 张三}}}',
                                                     "lookup: {fault: nope}"))
    code, out = hub_test(capsys, str(test))
    assert code == 2
    assert "only a SOAP connector answers with a fault" in out


def test_a_yaml_error_and_a_missing_key_are_bad_test_files_with_their_lines(folder, capsys):
    broken = write(folder, "broken.yaml", "cases:\n  - name: x\n    inputs: [\n")
    code, out = hub_test(capsys, str(broken))
    assert code == 2
    assert "broken.yaml:" in out and "YAML" in out
    shapeless = write(folder, "shapeless.yaml", "cases:\n  - name: x\n    expect: {}\n")
    code, out = hub_test(capsys, str(shapeless))
    assert code == 2
    assert "shapeless.yaml:2:" in out and "inputs" in out


def test_no_test_files_where_it_looks_is_an_error_naming_the_folder(folder, capsys):
    code, out = hub_test(capsys, "-c", str(folder / "config.yaml"))
    assert code == 2
    assert "config.tests" in out


# -- the shipped config ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped() -> configtest.Report:
    files = configtest_spec.discover([], ROOT / "config.yaml")
    offers: dict = {}
    loaded = [configtest_spec.load(f, ROOT / "config.yaml", offers=offers) for f in files]
    return configtest.run(loaded)


def test_the_shipped_config_passes_its_own_tests(shipped):
    failed = [f"{r.file}::{r.name}: " + "; ".join(f"{f.location}: {f.message} {f.details}"
                                                   for f in r.failures)
              for r in shipped.failed]
    assert not failed, "\n".join(failed)
    assert shipped.count("passed") >= 40


def test_the_shipped_tests_run_every_route_of_the_shipped_config(shipped):
    from bdchub.core.config import load

    routes = set(load(ROOT / "config.yaml").get("routes") or {})
    ran = set().union(*(r.routes for r in shipped.results))
    assert routes <= ran, f"routes no shipped test runs: {sorted(routes - ran)}"
