"""``hub demo --province``: a province hub and three county hubs on loopback.

Four ``hub run`` processes, each with its own embedded broker, store and data
folder in a temporary folder: the province on ``config.province.yaml``, the
counties 320684 海门, 320682 如皋 and 320681 启东 on
``examples/province/county.yaml``; the province's departments (tax, court,
province and national windows) and the counties' registration system are the
sandbox's. The peer hubs' secrets are drawn for the run (``hub run`` refuses the
published defaults). Then, as the departments and the province window would:

- the tax bureau clears a transfer of 海门 and pushes it to the province, which
  dispatches it by its business number to 海门's hub;
- the court issues a seizure of a unit in 如皋; the province polls it,
  dispatches it by unit code to 如皋's hub and answers the court;
- the province window submits an application for a unit in 启东, which the
  province forwards to 启东's hub;
- each county hands its message to its registration system and reports the
  progress up; the province passes it to the national window;
- the tax bureau pushes a clearance whose business number carries no division
  code of the province (999999…): dead-lettered at the province with its reason.

Each case's end state is read from what the hubs and departments recorded: the
province's store (the county's acknowledgement, the dead letter), the court's
acknowledgements and the national window's received progress.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bdchub.core.errors import HubError
from bdchub.core.i18n import _

from .environment import free_port, sandbox_environ
from .lifecycle import StartStop
from .milestones import N_

ROOT = Path(__file__).resolve().parent.parent
PROVINCE_CONFIG = ROOT / "config.province.yaml"
COUNTY_CONFIG = ROOT / "examples" / "province" / "county.yaml"
#: the counties of config.province.yaml: code -> name
COUNTIES = {"320684": N_("Haimen"), "320682": N_("Rugao"), "320681": N_("Qidong")}
UNKNOWN_BUSINESS_NO = "9999992026000099"


@dataclass
class ProvinceCase:
    """One row of the summary: what was sent, to which county, and what holds."""

    kind: str            # English msgid
    ref: str             # business number or court order id
    county: str          # the county it must reach ("" for none)
    checks: list[tuple[str, Callable[[ProvinceDemo, ProvinceCase], bool]]] = field(
        default_factory=list)
    started: float = 0.0
    reached: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.reached) == len(self.checks)

    @property
    def state(self) -> str:
        passed = [label for label, _check in self.checks if label in self.reached]
        return passed[-1] if passed else N_("submitted")

    @property
    def seconds(self) -> float | None:
        return max(self.reached.values()) - self.started if self.done else None


class ProvinceDemo(StartStop):
    """The sandbox and four ``hub run`` processes. Use as a context manager."""

    def __init__(self, *, keep: bool = False, court_poll: float = 0.5):
        self.keep = keep
        self.court_poll = court_poll
        self.workdir = Path(tempfile.mkdtemp(prefix="bdc-province-demo-"))
        self.sb: Any = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}
        self.cases: list[ProvinceCase] = []
        self._window_key: tuple[str, str] = ("ik-window-province-32", secrets.token_hex(16))
        self._store: Any = None

    # -- life cycle
    def start(self, timeout: float = 40.0) -> None:
        from bdchub.sandbox import Sandbox

        self.sb = Sandbox(seed=42).start()
        ports = {name: free_port() for name in ("province", *COUNTIES)}
        self.urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        peer = {code: (secrets.token_hex(16), secrets.token_hex(16)) for code in COUNTIES}
        env = sandbox_environ(self.sb, inbound_port=ports["province"],
                              data_dir=self.workdir / "province",
                              HUB_COURT_POLL_SECONDS=str(self.court_poll),
                              HUB_CLIENT_PROVINCE_KEY=self._window_key[0],
                              HUB_CLIENT_PROVINCE_SECRET=self._window_key[1])
        for code, (down, up) in peer.items():
            env[f"HUB_COUNTY_{code}_URL"] = self.urls[code]
            env[f"HUB_COUNTY_{code}_SECRET"] = down
            env[f"HUB_{code}_HUB_SECRET"] = up
        self._spawn("province", PROVINCE_CONFIG, env)
        for code, (down, up) in peer.items():
            county = sandbox_environ(self.sb, inbound_port=ports[code],
                                     data_dir=self.workdir / code,
                                     HUB_TENANT=code, HUB_PROVINCE_URL=self.urls["province"],
                                     HUB_PROVINCE_CLIENT_SECRET=down,
                                     HUB_PROVINCE_APP_KEY=f"hk-{code}",
                                     HUB_PROVINCE_APP_SECRET=up)
            self._spawn(code, COUNTY_CONFIG, county)
        deadline = time.monotonic() + timeout
        for name in self.processes:
            self._wait_ready(name, deadline)

    def _spawn(self, name: str, config: Path, env: dict[str, str]) -> None:
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        env = {**env, "HUB_DATA_DIR": str(folder), "HUB_LOG_LEVEL": "WARNING"}
        log = (folder / "hub.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-c", "import sys; from bdchub.hub import main; sys.exit(main())",
             "run", "-c", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=folder)

    def _wait_ready(self, name: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise HubError(_("the {name} hub stopped at start (exit {code}): {log}",
                                 name=name, code=process.returncode, log=self.log(name)[-800:]))
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.urls[name] + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise HubError(_("the {name} hub was not ready in time: {log}", name=name,
                         log=self.log(name)[-800:]))

    def log(self, name: str) -> str:
        path = self.workdir / name / "hub.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes = {}
        if self._store is not None:
            self._store.close()
            self._store = None
        if self.sb is not None:
            self.sb.stop()
            self.sb = None
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- what the departments and the province window do
    def submit_all(self) -> list[ProvinceCase]:
        from .samples import build, demo_unit

        samples = build(self.sb.data)
        tax_no, app_no = "3206842026100001", "3206812026100003"
        # 海门's registration system took the transfer in before its tax was cleared.
        person = self.sb.data["people"][0]
        self.sb.endpoint("legacy").submit({
            "YWH": tax_no, "DJLX": "200", "QLLX": "4", "BDCDYH": demo_unit("320684", 21),
            "QLR": [{"QLRMC": person["name"], "ZJZL": "1", "ZJH": person["cert_num"]}]}, None)
        reached_county = N_("county hub acknowledged")
        at_national = N_("progress at the national window")
        tax = self._add(N_("provincial tax clearance"), tax_no, "320684",
                        [(reached_county, _acked), (at_national, _at_national)])
        self._push_tax(tax.ref)
        unit = demo_unit("320682", 22)
        order = self.sb.court_add_seizure(unit, RespondentName=person["name"],
                                          RespondentIdNumber=person["cert_num"])
        self._add(N_("court seizure"), order["OrderId"], "320682",
                  [(reached_county, _acked), (N_("court answered"), _court_answered),
                   (at_national, _at_national)])
        body = dict(samples["first"], business_no=app_no, tenant="320681",
                    unit_codes=[demo_unit("320681", 23)])
        self._add(N_("province window application"), app_no, "320681",
                  [(reached_county, _acked), (at_national, _at_national)])
        self._post_application(body)
        unknown = self._add(N_("unknown division code"), UNKNOWN_BUSINESS_NO, "",
                            [(N_("dead-lettered with its reason"), _dead_lettered)])
        self._push_tax(unknown.ref)
        return self.cases

    def _add(self, kind: str, ref: str, county: str,
             checks: list[tuple[str, Callable[[ProvinceDemo, ProvinceCase], bool]]]
             ) -> ProvinceCase:
        case = ProvinceCase(kind, ref, county, checks, started=time.monotonic())
        self.cases.append(case)
        return case

    def _push_tax(self, business_no: str) -> None:
        entry = self.sb.push_tax_clearance(
            business_no, self.urls["province"] + "/api/v1/inbound/tax/clearances")
        if not (entry and entry.get("delivered")):
            raise HubError(_("the province hub did not take the tax clearance of {no}: {entry}",
                             no=business_no, entry=entry))

    def _post_application(self, body: dict[str, Any]) -> None:
        import json

        from bdchub.web.signing import signed_headers

        path = "/api/v1/applications"
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   **signed_headers(*self._window_key, "POST", path, raw)}
        resp = requests.post(self.urls["province"] + path, data=raw, headers=headers, timeout=30)
        if resp.status_code != 202:
            raise HubError(_("{what} was not accepted: HTTP {status} {body}",
                             what=_("province window application"), status=resp.status_code,
                             body=resp.text[:300]))

    # -- watching
    @property
    def store(self) -> Any:
        """The province hub's store, read beside its process (SQLite allows it)."""
        if self._store is None:
            from bdchub.core.sealing import load_sealer
            from bdchub.core.store import Store

            # Sealed columns (the records' results) open with the key the hub made there.
            folder = self.workdir / "province"
            self._store = Store(f"sqlite:///{folder / 'store.db'}", create=False,
                                sealer=load_sealer({}, folder, create=False))
        return self._store

    def poll(self) -> bool:
        now = time.monotonic()
        for case in self.cases:
            for label, check in case.checks:
                if label not in case.reached and check(self, case):
                    case.reached[label] = now
        return all(case.done for case in self.cases)

    def summary(self) -> dict[str, Any]:
        return {"ok": bool(self.cases) and all(c.done for c in self.cases),
                "cases": [{"ref": c.ref, "kind": c.kind, "county": c.county,
                           "reached": c.done, "state": c.state,
                           "milestones": f"{len(c.reached)}/{len(c.checks)}",
                           "passed": [label for label, _check in c.checks
                                      if label in c.reached],
                           "seconds": None if c.seconds is None else round(c.seconds, 2)}
                          for c in self.cases]}


def _acked(demo: ProvinceDemo, case: ProvinceCase) -> bool:
    return any(r["kind"] == "county_ack" and r["connector"] == f"county_{case.county}"
               and (r.get("result") or {}).get("status") == "accepted"
               for r in demo.store.verifications_for(case.ref))


def _court_answered(demo: ProvinceDemo, case: ProvinceCase) -> bool:
    return case.ref in demo.sb.court_acked()


def _at_national(demo: ProvinceDemo, case: ProvinceCase) -> bool:
    return any(_business_no(entry) == case.ref for entry in demo.sb.received("window_national"))


def _business_no(entry: dict[str, Any]) -> str:
    body = entry.get("body") if isinstance(entry.get("body"), dict) else entry
    return str((body or {}).get("business_no") or "")


def _dead_lettered(demo: ProvinceDemo, case: ProvinceCase) -> bool:
    return any(case.ref in (row.get("last_error") or "")
               for row in demo.store.dead_letters(route="tax_cleared_down"))


def run_province(console: Any, *, deadline: float, keep: bool) -> dict[str, Any]:
    """The demo as ``hub demo --province`` shows it; the summary (``ok`` when every
    case reached its end state within ``deadline`` seconds)."""
    from rich.rule import Rule
    from rich.table import Table

    began = time.monotonic()
    with ProvinceDemo(keep=keep) as demo:
        console.print(Rule(_("bdc-hub province demo — 江苏省 (320000) and three county hubs")))
        console.print(_("province hub {url} (config.province.yaml); county hubs: {counties}",
                        url=demo.urls["province"], counties=", ".join(
                            f"{code} {_(name)} {demo.urls[code]}" for code, name in
                            COUNTIES.items())))
        console.print(_("each a hub run process with its embedded broker and store in {dir}",
                        dir=demo.workdir))
        demo.submit_all()
        end = time.monotonic() + deadline  # from the submissions, as hub demo counts it
        # What holds by the deadline counts; nothing is looked at after it.
        while time.monotonic() < end and not demo.poll():
            time.sleep(0.3)
        table = Table(title=_("summary"), title_justify="left")
        for name in (_("business no"), _("kind"), _("county"), _("reached"), _("time")):
            table.add_column(name)
        for case in demo.cases:
            county = f"{case.county} {_(COUNTIES[case.county])}" if case.county else "-"
            table.add_row(case.ref, _(case.kind), county,
                          ("✓ " if case.done else "✗ ") + _(case.state),
                          "-" if case.seconds is None else f"{case.seconds:.1f} s",
                          style=None if case.done else "red")
        console.print(table)
        summary = demo.summary()
        if not summary["ok"] and os.environ.get("HUB_DEMO_LOGS"):
            for name in demo.processes:
                console.print(demo.log(name)[-2000:])
    summary["elapsed"] = round(time.monotonic() - began, 2)
    return summary
