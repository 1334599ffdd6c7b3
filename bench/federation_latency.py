"""Federation latency: a department's result, province hub -> county hub -> the
county's registration system, end to end, p50 and p99 under a steady load.

    python bench/federation_latency.py            # 20 clearances/s for 30 s
    python bench/federation_latency.py --quick    # 10/s for 5 s
    python bench/federation_latency.py --rate 40 --duration 60

The deployment of ``hub demo --province`` (bdchub.demo.province): the province
hub on config.province.yaml and three county hubs on
examples/province/county.yaml, each a ``hub run`` process with its embedded
broker and store (SQLite), with the sandbox's departments. The load is the
province tax bureau's: at a fixed rate (open loop: a slow answer does not delay
the next send, each on a connection of its own), a tax clearance of a transfer
case, in turn of 海门, 如皋 and 启东, is pushed to the province's
``/api/v1/inbound/tax/clearances``, signed as the sandbox's tax bureau signs. The
province normalises it (``tax_clearance_inbound``), dispatches it by the
business number's division code to the county's hub (``tax_cleared_down``, a
signed envelope), and the county hands it to its registration system
(``tax_cleared_from_province``: SOAP ``ReceiveTaxResult``). Each case's
registration system took the transfer in beforehand, as it does when the tax
comes after the application.

Latency: from just before the push to the registration system's receipt of
``ReceiveTaxResult`` for that business number (the sandbox records each request
as it arrives; one machine, one clock). The intake's answer (the push's HTTP
round trip, 202 once the message is queued) is reported beside it. Results: a
table on stdout and bench/results/federation_latency.json.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, table, write_results  # noqa: E402

COUNTIES = ("320684", "320682", "320681")
PUSH_PATH = "/api/v1/inbound/tax/clearances"


def business_no(i: int) -> str:
    return f"{COUNTIES[i % len(COUNTIES)]}2026{200000 + i:06d}"


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


class Load:
    """Pushes clearances at a fixed rate and reads their arrival at the registration
    system."""

    def __init__(self, demo: Any):
        self.demo = demo
        self.sb = demo.sb
        self.url = demo.urls["province"] + PUSH_PATH
        tax = self.sb.credentials["tax"]
        self.tax_key = (tax["push_app_key"], tax["push_app_secret"])
        self.local = threading.local()
        self.sent: dict[str, float] = {}
        self.intake: dict[str, float] = {}
        self.refused: dict[str, Any] = {}
        self.lock = threading.Lock()

    def take_in(self, n: int) -> None:
        """The registration system has each case's transfer before its tax comes."""
        for i in range(n):
            self.transfer(business_no(i), COUNTIES[i % len(COUNTIES)], 1 + i % 98)

    def transfer(self, no: str, county: str, unit: int) -> None:
        from bdchub.demo.samples import demo_unit

        person = self.sb.data["people"][0]
        self.sb.endpoint("legacy").submit({
            "YWH": no, "DJLX": "200", "QLLX": "4", "BDCDYH": demo_unit(county, unit),
            "QLR": [{"QLRMC": person["name"], "ZJZL": "1", "ZJH": person["cert_num"]}]}, None)

    def warm_up(self) -> None:
        """One case per county first, unmeasured: each hub's first message loads its
        schemas and opens its connections."""
        for county in COUNTIES:
            no = f"{county}2026199999"
            self.transfer(no, county, 99)
            self.sb.push_tax_clearance(no, self.url)
        _wait(lambda: sum(1 for e in self.sb.received("legacy")
                          if e.get("operation") == "ReceiveTaxResult") >= len(COUNTIES), 60)

    def push(self, no: str) -> None:
        """The tax bureau's push of one clearance, signed as the sandbox's tax bureau
        signs it, on this thread's own connection (the sandbox's pusher sends one at a
        time: at 20 a second its queue, not the hub, would be measured)."""
        import json

        from bdchub.web.signing import signed_headers

        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        raw = json.dumps({"business_no": no, "status": "CLEARED",
                          "declaration_no": f"SB{no}", "voucher_no": f"PZ{no}",
                          "tax_amount": "1250.00", "cleared_at": "2026-03-01T10:00:00+08:00",
                          "source": "tax"}).encode()
        headers = {"Content-Type": "application/json",
                   **signed_headers(*self.tax_key, "POST", PUSH_PATH, raw)}
        started = time.time()
        with self.lock:
            self.sent[no] = started
        try:
            status = session.post(self.url, data=raw, headers=headers, timeout=30).status_code
        except requests.RequestException as exc:
            status = repr(exc)
        answered = time.time()
        with self.lock:
            if status in (200, 202):
                self.intake[no] = answered - started
            else:
                self.refused[no] = status

    def run(self, rate: float, duration: float) -> int:
        """Send ``rate`` per second for ``duration`` seconds; how many were sent."""
        n = max(1, round(rate * duration))
        with ThreadPoolExecutor(max_workers=max(4, int(rate))) as pool:
            t0 = time.monotonic()
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self.push, business_no(i))
        return n

    def arrived(self) -> dict[str, float]:
        """business number -> when the registration system first took its tax result."""
        found: dict[str, float] = {}
        for entry in self.sb.received("legacy"):
            if entry.get("operation") != "ReceiveTaxResult":
                continue
            body = entry.get("body") or {}
            no = str(body.get("YWH") or "") if isinstance(body, dict) else ""
            if no in self.sent and no not in found:
                found[no] = entry["time"]
        return found


def measure(rate: float, duration: float, settle: float) -> dict[str, Any]:
    from bdchub.demo.province import ProvinceDemo

    # The court is polled rarely: its orders are not this benchmark's load.
    with ProvinceDemo(court_poll=60.0) as demo:
        load = Load(demo)
        n = max(1, round(rate * duration))
        load.take_in(n)
        load.warm_up()
        began = time.monotonic()
        sent = load.run(rate, duration)
        send_s = time.monotonic() - began

        def all_arrived() -> dict[str, float] | None:
            found = load.arrived()
            return found if len(found) >= sent else None

        arrived = _wait(all_arrived, settle, default=None) or load.arrived()
        latencies = [(arrived[no] - load.sent[no]) * 1000 for no in arrived]
        intake = [s * 1000 for s in load.intake.values()]
    return {"rate_per_s": rate, "duration_s": duration, "sent": sent,
            "send_seconds": round(send_s, 2), "reached_registration_system": len(arrived),
            "refused_at_intake": len(load.refused),
            "latency_ms": _stats(latencies), "intake_ms": _stats(intake)}


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p90": round(percentile(values, 90), 1),
            "p99": round(percentile(values, 99), 1),
            "max": round(max(values), 1) if values else float("nan"),
            "mean": round(sum(values) / len(values), 1) if values else float("nan")}


def _wait(probe: Any, timeout: float, default: Any = False) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    return default


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=None, help="clearances per second")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="most seconds to wait for the last ones after the load")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    args = parser.parse_args(argv)
    rate = args.rate or (10.0 if args.quick else 20.0)
    duration = args.duration or (5.0 if args.quick else 30.0)
    found = measure(rate, duration, args.settle)
    out = {"benchmark": "federation_latency",
           "path": "tax bureau -> province hub (intake, dispatch) -> county hub -> "
                   "registration system (sandbox legacy, ReceiveTaxResult)",
           "deployment": "hub demo --province: four hub run processes, embedded broker and "
                         "store each (SQLite)",
           **found, "quick": args.quick, "machine": machine(),
           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    lat, intake = found["latency_ms"], found["intake_ms"]
    print(table(["measure (ms)", "p50", "p90", "p99", "max"],
                [("province intake answer", intake["p50"], intake["p90"], intake["p99"],
                  intake["max"]),
                 ("end to end: registration system", lat["p50"], lat["p90"], lat["p99"],
                  lat["max"])]))
    print(f"\n{found['sent']} sent at {rate:g}/s, {found['reached_registration_system']} reached "
          f"the registration system; machine: {out['machine']['cpus']} CPUs, load average "
          f"{out['machine']['load_avg']}")
    if not args.no_write:
        print(f"results: {write_results('federation_latency', out)}")
    complete = found["reached_registration_system"] == found["sent"]
    if not complete:
        print("not every clearance reached the registration system", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
