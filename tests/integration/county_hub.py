"""The shipped config.yaml as ``hub run`` (a subprocess one may SIGKILL) against a
sandbox, the platforms that submit to it, and the cases of the county flows the
reliability tests drive (tests/integration/test_county_flows_reliability.py).

Business numbers carry a per-test tag; unit codes are drawn fresh, so no seeded
filing, court order or refusal rule of the sandbox applies unless a case asks.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bdchub.demo.samples import material, now_iso, person
from tests.demo.conftest import Flows

ROOT = Path(__file__).resolve().parents[2]
WINDOWS = ("window_county", "window_province", "window_national")
RESULT_TYPES = ("registration.result", "e_certificate.issued")


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return Flows.wait(predicate, timeout, what)


class HubProcess:
    """``hub run -c <folder>/config.yaml`` with its data folder in ``folder/data``:
    a restart on the same folder is the same hub (store, broker, data key)."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder = folder
        self.env = env
        self.port = int(env["HUB_LISTEN_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        if not (folder / "config.yaml").exists():
            shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
        (folder / "data").mkdir(exist_ok=True)

    def start(self, timeout: float = 60.0) -> HubProcess:
        self.starts += 1
        log = (self.folder / f"hub-{self.starts}.log").open("wb")  # a full pipe would block it
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "hub.py"), "--lang", "en", "run", "-c",
             str(self.folder / "config.yaml"), "--log-level", "WARNING"],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.url + "/api/v1/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"hub run did not get ready ({self.proc.poll()}): "
                                     f"{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")
                         for p in sorted(self.folder.glob("hub-*.log")))

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "hub run is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM, which must end it cleanly."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("hub run did not stop on SIGTERM") from None
        assert self.proc.returncode == 0, self.log()[-3000:]

    def reader(self) -> Any:
        """The hub's store and dead letters as ``hub trace`` / ``hub dlq`` read them."""
        from bdchub.core.config import load
        from bdchub.routes.runtime import Hub

        saved = {k: os.environ.get(k) for k in ("HUB_DATA_DIR", "BDCHUB_DATA_KEY")}
        try:
            os.environ.pop("BDCHUB_DATA_KEY", None)
            os.environ["HUB_DATA_DIR"] = str(self.folder / "data")
            config = load(self.folder / "config.yaml", environ=self.env)
            return Hub.from_config(config, build_connectors=False, create_key=False)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class Platform:
    """A client of the hub as config.yaml names it (county_window, developer_hm …):
    signed requests, sent again while the hub restarts, as a platform would."""

    def __init__(self, hub_url: str, clients: dict[str, Any], name: str):
        self.url = hub_url
        self.client = clients[name]

    def post(self, path: str, body: dict[str, Any], timeout: float = 60.0) -> requests.Response:
        from bdchub.web.signing import signed_headers

        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        deadline = time.monotonic() + timeout
        while True:
            headers = {"Content-Type": "application/json; charset=utf-8",
                       **signed_headers(self.client["app_key"], self.client["app_secret"],
                                        "POST", path, raw)}
            try:
                return requests.post(self.url + path, data=raw, headers=headers, timeout=30)
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


# -- cases ---------------------------------------------------------------------------

def fresh_unit() -> str:
    return f"320684413219GB{random.randrange(10_000, 99_999)}F{random.randrange(10**7, 10**8)}"


class Cases:
    """Application bodies of the county flows, numbered under one tag."""

    def __init__(self, data: dict[str, Any]):
        from bdchub.demo import samples as samples_mod

        self.data = data
        self.tag = uuid.uuid4().hex[:4].upper()
        self.samples = samples_mod.build(data, tag=self.tag)
        self.year = now_iso()[:4]
        self._n = 0

    def number(self, prefix: str = "R") -> str:
        self._n += 1
        return f"320684{self.year}{self.tag}{prefix}{self._n:05d}"

    def first(self, channel: str, unit: str | None = None, *,
              deposit: Callable[[bytes], str] | None = None) -> dict[str, Any]:
        """The demo's first registration of a developer's building, on a unit of its own;
        with ``deposit`` (``InternalNetwork.deposit``) its survey report is a file of the
        material store, for the one-way gate."""
        body = copy.deepcopy(self.samples["first"])
        no = self.number()
        body.update(business_no=no, unit_codes=[unit or fresh_unit()], channel=channel)
        for m in body["materials"]:
            m.update(material(no, m["name"], m["type"]))
            if deposit is not None and m["type"] == "survey_report":
                report = f"%PDF-1.7\n房屋测绘报告 {no}\n".encode() * 200
                m.update(sha256=deposit(report), size=len(report))
        return body

    def refusal(self, channel: str) -> dict[str, Any]:
        """On a unit the register holds as seized: 不予受理."""
        body = copy.deepcopy(self.samples["refusal"])
        body.update(business_no=self.number(), channel=channel)
        return body

    def change(self) -> dict[str, Any]:
        """A change registration (300, 姓名变更) of a person, complete."""
        no = self.number()
        return {"business_no": no, "tenant": "320684", "registration_type": "300",
                "right_type": "4", "unit_codes": [fresh_unit()],
                "applicants": [person(self.data["people"][10])],
                "materials": [material(no, "不动产登记申请书", "application_form"),
                              material(no, "申请人身份证明", "identity_document")],
                "channel": "county_window", "submitted_at": now_iso(), "remarks": "姓名变更"}

    def batch(self, *applications: dict[str, Any]) -> dict[str, Any]:
        return {"business_no": f"KF-{self.year}-{self.tag}{self.number('B')[-5:]}",
                "tenant": "320684", "submitted_at": now_iso(), "applications": list(applications)}


SURVEY_FORM = {"materials": [{"name": "不动产权籍调查表", "type": "survey_report",
                              "sha256": "5" * 64, "size": 4096}],
               "reason": "按补正通知书补充不动产权籍调查表"}


# -- what the departments received -----------------------------------------------------

def _of(no: str) -> Callable[[Any], bool]:
    return lambda b: isinstance(b, dict) and no in (b.get("business_no"), b.get("YWH"),
                                                    b.get("projectNo"), b.get("BusinessNo"))


def received(sb: Any, name: str, path: str, no: str, *,
             where: Callable[[dict[str, Any]], bool] | None = None,
             **match: Any) -> list[dict[str, Any]]:
    """Requests ``name`` received at ``path`` about case ``no`` (body fields ``match``,
    bodies ``where`` says yes to)."""
    return [r for r in sb.received(name) if r["path"] == path and _of(no)(r["body"])
            and all(r["body"].get(k) == v for k, v in match.items())
            and (where is None or where(r["body"]))]


def idempotency_key(entry: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    return str(headers.get("idempotency-key") or "")


def keys(sb: Any, name: str, path: str, no: str, *,
         where: Callable[[dict[str, Any]], bool] | None = None, **match: Any) -> Counter[str]:
    """The idempotency keys of what ``name`` took (answered 200) at ``path`` for ``no``,
    with how often each came. An endpoint that honours them applies each key once, so
    one key is one delivery in effect; a key-less request would apply every time."""
    found = Counter(idempotency_key(r) for r in received(sb, name, path, no, where=where, **match)
                    if r.get("status") == 200)
    assert "" not in found, f"{name}{path} took a request for {no} without an idempotency key"
    return found


def one_key_each(sb: Any, name: str, path: str, no: str, *fields: str) -> dict[tuple, str]:
    """What ``name`` took at ``path`` for ``no``, by the values of ``fields`` -> its key:
    each message came under one idempotency key (however often it came) and no key
    carried two different messages."""
    by_value: dict[tuple, set[str]] = defaultdict(set)
    by_key: dict[str, set[str]] = defaultdict(set)
    for r in received(sb, name, path, no):
        if r.get("status") != 200:
            continue
        key = idempotency_key(r)
        assert key, f"{name}{path} took a request for {no} without an idempotency key"
        by_value[tuple(r["body"].get(f) for f in fields)].add(key)
        by_key[key].add(json.dumps(r["body"], ensure_ascii=False, sort_keys=True))
    twice = {v: k for v, k in by_value.items() if len(k) > 1}
    assert not twice, f"{name}{path} got {no}'s {fields} under several keys: {twice}"
    changed = [k for k, b in by_key.items() if len(b) > 1]
    assert not changed, f"{name}{path} got different messages under one key: {changed}"
    return {v: next(iter(k)) for v, k in by_value.items()}
