#!/usr/bin/env python3
"""Diode benchmark: ratios against baselines measured in the same run.

(a) goodput at 0 % loss vs raw paced UDP of the same datagram size and rate;
(b) vs pydiode (PyPI) at equal overhead, if it is installed;
(c) N of N transfers byte-exact at 5 % random and 2 % bursty loss (lossy relay);
(d) goodput at 10 % loss vs 0 % (both through the relay);
(e) the sender alone, unpaced, at 25 % parity: object bits per second of send
    time, best of several rounds (datagrams discarded by a socket nobody reads);
(f) end to end, unpaced, at 100 % overhead against pydiode --redundancy 2
    --max-bitrate 0 (unpaced), byte-exact, at 1472-byte datagrams and at
    pydiode's own default of 65507: from the start of the send (our sender
    hashes the file and signs the manifest first; pydiode's process starts) to
    the verified file in the inbox (pydiode's receiver has written its output).

Every target goes into the JSON as bench.common.target (make bench's table).

Sender, relay and receiver run in separate processes (they would be separate
machines); timings are from the sender's start to the object appearing,
verified and policy-checked, in the inbox. Loopback only.

    .venv/bin/python bench/bridge_diode.py --quick
    .venv/bin/python bench/bridge_diode.py --transfers 50 --size 64M
    .venv/bin/python bench/bridge_diode.py --only ef     # sender rate and end to end only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bdchub.bridge.diode.inbound import InboxWatcher  # noqa: E402
from bdchub.bridge.diode.manifest import HmacKey  # noqa: E402
from bdchub.bridge.diode.pacing import Pacer  # noqa: E402
from bdchub.bridge.diode.relay import LinkModel, LossyRelay  # noqa: E402
from bdchub.bridge.diode.rxsocket import SO_RCVBUFFORCE  # noqa: E402
from bdchub.bridge.diode.settings import DiodeSettings, parse_rate  # noqa: E402
from bench.common import target  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bridge_diode.json"


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def _make_object(path: Path, size: int) -> str:
    """Random bytes behind a PDF header (so the content policy lets it in)."""
    h = hashlib.sha256()
    with path.open("wb") as fh:
        head = b"%PDF-1.7\n"
        fh.write(head)
        h.update(head)
        left = size - len(head)
        while left > 0:
            chunk = os.urandom(min(left, 4 << 20))
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    # Flush now, or the writeback of this file is timed as part of the transfer.
    os.sync()
    return h.hexdigest()


# -- processes ---------------------------------------------------------------
def _receiver_proc(key: bytes, root: str, ready: Any, stop: Any, rcvbuf: int) -> None:
    from bdchub.bridge.diode.receiver import DiodeReceiver
    from bdchub.bridge.diode.rxsocket import open_receive_socket

    sock = open_receive_socket("127.0.0.1", 0, rcvbuf)
    ready.put(sock.getsockname()[1])
    r = Path(root)
    rx = DiodeReceiver(sock, r / "inbox", verifier=HmacKey(key), staging=r / "staging",
                       quarantine_dir=r / "quarantine", audit=None)
    import threading

    ev = threading.Event()
    threading.Thread(target=lambda: (stop.wait(), ev.set()), daemon=True).start()
    stats = rx.run(stop=ev, timeout=3600)
    ready.put(stats.__dict__)


def _sender_proc(key: bytes, target: tuple[str, int], files: list[str], settings: dict,
                 start: Any, report: Any) -> None:
    from bdchub.bridge.diode.sender import DiodeSender

    start.wait()
    with DiodeSender(target, HmacKey(key), DiodeSettings(**settings)) as tx:
        for i, f in enumerate(files):
            begun = time.perf_counter()
            obj = tx.prepare_file(f, name=f"{i:03d}-{Path(f).name}")
            try:
                t0 = time.perf_counter()
                r = tx.send([obj])
                report.put({"i": i, "begun": begun, "t0": t0, "send_seconds": r.seconds,
                            "datagrams": r.datagrams, "overhead": obj.plan.overhead})
            finally:
                obj.close()


def _relay_proc(target: tuple[str, int], model: dict, ready: Any, stop: Any) -> None:
    relay = LossyRelay(target, LinkModel(**model))
    ready.put(relay.address)
    import threading

    threading.Thread(target=relay.run_forever, daemon=True).start()
    stop.wait()
    relay._stop.set()
    time.sleep(0.2)
    ready.put(relay.stats.__dict__)


def _raw_rx(ready: Any, result: Any, rcvbuf: int, expect: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        if opt is not None:
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
                break
            except OSError:
                continue
    s.bind(("127.0.0.1", 0))
    ready.put(s.getsockname()[1])
    s.settimeout(2.0)
    buf = bytearray(65536)
    n_bytes = count = 0
    first = last = 0.0
    try:
        while count < expect:
            n = s.recv_into(buf)
            last = time.perf_counter()
            if not count:
                first = last
            count += 1
            n_bytes += n
            if count >= 1:
                s.settimeout(0.5)
    except TimeoutError:
        pass
    result.put({"bytes": n_bytes, "datagrams": count, "first": first, "last": last})


# -- scenarios -----------------------------------------------------------------
class Rig:
    """Receiver process (+ optional relay process) for a series of transfers."""

    def __init__(self, workdir: Path, key: bytes, model: LinkModel | None, rcvbuf: int):
        self.root = Path(tempfile.mkdtemp(dir=workdir))
        self.key = key
        self.ctx = mp.get_context("fork")
        self.rx_q, self.rx_stop = self.ctx.Queue(), self.ctx.Event()
        self.rx = self.ctx.Process(target=_receiver_proc,
                                   args=(key, str(self.root), self.rx_q, self.rx_stop, rcvbuf))
        self.rx.start()
        port = self.rx_q.get(timeout=30)
        self.target: tuple[str, int] = ("127.0.0.1", port)
        self.relay = None
        if model is not None:
            self.relay_q, self.relay_stop = self.ctx.Queue(), self.ctx.Event()
            self.relay = self.ctx.Process(target=_relay_proc, args=(
                self.target, model.__dict__, self.relay_q, self.relay_stop))
            self.relay.start()
            self.target = tuple(self.relay_q.get(timeout=30))

    def transfer(self, files: list[Path], digests: list[str], settings: DiodeSettings,
                 timeout: float) -> list[dict]:
        """Send ``files`` one after another; wait for each in the inbox."""
        start, report = self.ctx.Event(), self.ctx.Queue()
        fields = {k: v for k, v in settings.__dict__.items()}
        tx = self.ctx.Process(target=_sender_proc, args=(
            self.key, self.target, [str(f) for f in files], fields, start, report))
        tx.start()
        watcher = InboxWatcher(self.root / "inbox", keep_processed=False)
        results: dict[int, dict] = {}
        start.set()
        deadline = time.monotonic() + timeout
        while len(results) < len(files) and time.monotonic() < deadline:
            for obj in watcher.poll():
                t = time.perf_counter()
                i = int(obj.name.split("-", 1)[0])
                h = hashlib.sha256()
                with obj.path.open("rb") as fh:
                    while chunk := fh.read(4 << 20):
                        h.update(chunk)
                results[i] = {"delivered_at": t, "exact": h.hexdigest() == digests[i],
                              "size": obj.size}
                watcher.ack(obj)
            time.sleep(0.005)
        tx.join(timeout=max(1.0, deadline - time.monotonic()))
        if tx.is_alive():
            tx.kill()
        sent = {}
        while not report.empty():
            r = report.get()
            sent[r["i"]] = r
        out = []
        for i in range(len(files)):
            r = {"i": i, **sent.get(i, {}), **results.get(i, {"exact": False})}
            if "t0" in r and "delivered_at" in r:
                r["seconds"] = r["delivered_at"] - r["t0"]
                r["goodput_bps"] = files[i].stat().st_size * 8 / r["seconds"]
                # From the start of the send command's work: hashing included.
                r["end_to_end_seconds"] = r["delivered_at"] - r["begun"]
                r["end_to_end_Bps"] = files[i].stat().st_size / r["end_to_end_seconds"]
            out.append(r)
        return out

    def close(self) -> dict:
        stats: dict = {}
        if self.relay is not None:
            self.relay_stop.set()
            try:
                stats["relay"] = self.relay_q.get(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            self.relay.join(10)
        self.rx_stop.set()
        try:
            stats["receiver"] = self.rx_q.get(timeout=30)
        except Exception:  # noqa: BLE001
            pass
        self.rx.join(30)
        shutil.rmtree(self.root, ignore_errors=True)
        return stats


def raw_udp(rate: float, datagram: int, total_bytes: int, rcvbuf: int) -> dict:
    ctx = mp.get_context("fork")
    ready, result = ctx.Queue(), ctx.Queue()
    n = total_bytes // datagram
    rx = ctx.Process(target=_raw_rx, args=(ready, result, rcvbuf, n))
    rx.start()
    port = ready.get(timeout=30)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    payload = memoryview(bytearray(os.urandom(datagram)))
    pacer = Pacer(rate)
    addr = ("127.0.0.1", port)
    t0 = time.perf_counter()
    for _ in range(n):
        s.sendto(payload, addr)
        pacer.pace(datagram)
    send_seconds = time.perf_counter() - t0
    r = result.get(timeout=60)
    rx.join(10)
    s.close()
    seconds = r["last"] - t0 if r["datagrams"] else float("inf")
    return {"datagrams_sent": n, "datagrams_received": r["datagrams"],
            "loss": 1 - r["datagrams"] / n, "send_seconds": send_seconds,
            "goodput_bps": r["bytes"] * 8 / seconds}


def pydiode_run(rate: float, path: Path, digest: str, redundancy: int, datagram: int,
                timeout: float) -> dict:
    try:
        import pydiode  # noqa: F401
    except ImportError:
        return {"available": False, "note": "pydiode is not installed "
                                             "(.venv/bin/pip install pydiode)"}
    # pydiode's datagram size is a module constant (65507 on Linux); patch it to
    # ours so both move the same datagrams.
    patch = (f"import sys, pydiode.common as c; c.UDP_MAX_BYTES={datagram}; "
             f"c.MAX_PAYLOAD={datagram}-c.PACKET_HEADER.size; import pydiode.send as s; "
             "s.MAX_PAYLOAD=c.MAX_PAYLOAD; import pydiode.pydiode as p; "
             f"p.UDP_MAX_BYTES={datagram}; p.MAX_PAYLOAD=c.MAX_PAYLOAD; "
             "sys.argv=['pydiode']+sys.argv[1:]; p.main()")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out_path = path.with_suffix(".pydiode-out")
    with out_path.open("wb") as out:
        rx = subprocess.Popen([sys.executable, "-c", patch, "receive", "127.0.0.1",
                               "--port", str(port)], stdout=out, stderr=subprocess.PIPE)
        time.sleep(0.5)
        t0 = time.perf_counter()
        with path.open("rb") as fin:
            tx = subprocess.Popen([sys.executable, "-c", patch, "send", "127.0.0.1",
                                   "127.0.0.1", "--port", str(port), "--max-bitrate",
                                   str(int(rate)), "--redundancy", str(redundancy)],
                                  stdin=fin, stderr=subprocess.PIPE)
            try:
                rx.wait(timeout=timeout)
                seconds = time.perf_counter() - t0
            except subprocess.TimeoutExpired:
                rx.kill()
                tx.kill()
                return {"available": True, "ok": False, "note": "timed out"}
            tx.wait(timeout=30)
    h = hashlib.sha256(out_path.read_bytes()).hexdigest()
    out_path.unlink()
    size = path.stat().st_size
    return {"available": True, "ok": rx.returncode == 0 and h == digest,
            "exit": rx.returncode, "seconds": seconds, "goodput_bps": size * 8 / seconds,
            "redundancy": redundancy, "overhead": redundancy - 1.0}


def sender_rate(path: Path, datagram: int, rounds: int) -> dict:
    """(e): the sender alone, unpaced, at 25 % parity, into a socket nobody
    reads (set up as the receiver's is: batches accepted, then dropped)."""
    from bdchub.bridge.diode.rxsocket import open_receive_socket
    from bdchub.bridge.diode.sender import DiodeSender

    sink = open_receive_socket("127.0.0.1", 0, 1 << 16)
    getattr(sink, "enable_batches", lambda: False)()  # absent before batching came
    settings = DiodeSettings(rate_bps=1e12, datagram_size=datagram, overhead=0.25)
    runs = []
    try:
        with DiodeSender(("127.0.0.1", sink.getsockname()[1]), HmacKey(b"k" * 32),
                         settings) as tx:
            obj = tx.prepare_file(path)
            try:
                for _ in range(rounds):
                    cpu = time.process_time()
                    r = tx.send([obj])
                    runs.append({"seconds": r.seconds, "cpu_seconds": time.process_time() - cpu,
                                 "goodput_bps": r.goodput_bps, "datagrams": r.datagrams})
                overhead = obj.plan.overhead
            finally:
                obj.close()
    finally:
        sink.close()
    best = max(runs, key=lambda r: r["goodput_bps"])
    return {"datagram_size": datagram, "overhead": overhead, "rounds": runs,
            "best_goodput_bps": best["goodput_bps"],
            "median_goodput_bps": sorted(r["goodput_bps"] for r in runs)[len(runs) // 2],
            "cpu_goodput_bps": path.stat().st_size * 8 / min(r["cpu_seconds"] for r in runs)}


def end_to_end(work: Path, key: bytes, path: Path, digest: str, datagram: int,
               rcvbuf: int, rounds: int) -> dict:
    """(f): diode at 100 % overhead, unpaced, against pydiode at redundancy 2,
    unpaced, same datagram size, rounds alternating; best round of each."""
    out: dict[str, Any] = {"datagram_size": datagram, "pydiode": [], "diode": []}
    settings = DiodeSettings(rate_bps=1e12, datagram_size=datagram, overhead=1.0)
    for n in range(rounds):
        out["pydiode"].append(pydiode_run(0, path, digest, redundancy=2, datagram=datagram,
                                          timeout=120))
        rig = Rig(work, key, None, rcvbuf)
        # A new name each round: the same content under the same name is
        # recognised as already delivered and not delivered twice.
        named = path.with_name(f"r{n}-{datagram}-{path.name}")
        shutil.copyfile(path, named)
        try:
            out["diode"].append(rig.transfer([named], [digest], settings, timeout=120)[0])
        finally:
            rig.close()
            named.unlink()
    ok_p = [r["goodput_bps"] / 8 for r in out["pydiode"] if r.get("ok")]
    ok_d = [r["end_to_end_Bps"] for r in out["diode"] if r.get("exact")
            and "end_to_end_Bps" in r]
    out["pydiode_best_Bps"] = max(ok_p) if ok_p else None
    out["pydiode_exact"] = f"{len(ok_p)}/{rounds}"
    out["diode_best_Bps"] = max(ok_d) if ok_d else None
    out["diode_exact"] = f"{len(ok_d)}/{rounds}"
    out["ratio"] = (out["diode_best_Bps"] / out["pydiode_best_Bps"]
                    if ok_p and ok_d else None)
    return out


# -- main ----------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (small objects, 3 transfers)")
    ap.add_argument("--transfers", type=int, default=None, help="transfers per loss model")
    ap.add_argument("--size", default=None, help="object size for (c), e.g. 64M")
    ap.add_argument("--rate", default=None, help="paced rate for (a), (b), e.g. 800M")
    ap.add_argument("--relay-rate", default=None, help="rate through the Python relay")
    ap.add_argument("--datagram-size", type=int, default=1472)
    ap.add_argument("--only", default="abcdef", help="which scenarios, e.g. ef")
    ap.add_argument("--rounds", type=int, default=None, help="rounds of (e) and (f)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    only = args.only
    quick = args.quick
    transfers = args.transfers if args.transfers is not None else (3 if quick else 50)
    size = _size(args.size) if args.size else (8 << 20 if quick else 64 << 20)
    goodput_size = 16 << 20 if quick else 64 << 20
    rate = parse_rate(args.rate or "800M")
    relay_rate = parse_rate(args.relay_rate or "300M")
    dg = args.datagram_size
    rcvbuf = 64 << 20
    key = secrets.token_bytes(32)
    work = Path(tempfile.mkdtemp(prefix="bdc-bench-diode-"))
    res: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                       "cpus": os.cpu_count(), "platform": platform.platform()},
                           "params": {"quick": quick, "transfers": transfers, "size": size,
                                      "goodput_size": goodput_size, "rate_bps": rate,
                                      "relay_rate_bps": relay_rate, "datagram_size": dg,
                                      "only": only},
                           "load_before": os.getloadavg()}
    rounds = args.rounds or (3 if quick else 5)
    try:
        obj = work / "object.pdf"
        obj_digest = _make_object(obj, goodput_size)

        if "e" in only:
            res["e_sender_rate"] = sender_rate(obj, dg, rounds)
        if "f" in only:
            res["f_end_to_end_vs_pydiode"] = {
                str(size_f): end_to_end(work, key, obj, obj_digest, size_f, rcvbuf, rounds)
                for size_f in (dg, 65507)}
        if "a" in only:
            _scenario_a(res, work, key, obj, obj_digest, rate, dg, goodput_size, rcvbuf)
        if "b" in only:
            _scenario_b(res, work, key, obj, obj_digest, rate, dg, rcvbuf)
        if "c" in only:
            _scenario_c(res, work, key, size, transfers, relay_rate, dg, rcvbuf)
        if "d" in only:
            _scenario_d(res, work, key, obj, obj_digest, relay_rate, dg, rcvbuf)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["load_after"] = os.getloadavg()
    res["targets"] = _targets(res)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2, default=str))
    _print(res)
    return 0


def _scenario_a(res: dict, work: Path, key: bytes, obj: Path, obj_digest: str, rate: float,
                dg: int, goodput_size: int, rcvbuf: int) -> None:
    # (a) diode vs raw paced UDP, same rate and datagram size, no relay
    raw = raw_udp(rate, dg, goodput_size, rcvbuf)
    rig = Rig(work, key, None, rcvbuf)
    base = DiodeSettings(rate_bps=rate, datagram_size=dg)
    runs = rig.transfer([obj], [obj_digest], base, timeout=120)
    rig.close()
    diode = runs[0]
    res["a_goodput_vs_raw"] = {
        "raw_udp": raw, "diode": diode,
        "ratio": diode.get("goodput_bps", 0) / raw["goodput_bps"], "target": 0.5}


def _scenario_b(res: dict, work: Path, key: bytes, obj: Path, obj_digest: str, rate: float,
                dg: int, rcvbuf: int) -> None:
    # (b) vs pydiode at equal overhead (pydiode --redundancy 2 = 100 %)
    pyd = pydiode_run(rate, obj, obj_digest, redundancy=2, datagram=dg, timeout=300)
    cmp_b: dict[str, Any] = {"pydiode": pyd}
    if pyd.get("available"):
        rig = Rig(work, key, None, rcvbuf)
        eq = DiodeSettings(rate_bps=rate, datagram_size=dg, overhead=1.0)
        d_eq = rig.transfer([obj], [obj_digest], eq, timeout=300)[0]
        rig.close()
        cmp_b["diode_overhead_1.0"] = d_eq
        if pyd.get("ok"):
            cmp_b["ratio"] = d_eq.get("goodput_bps", 0) / pyd["goodput_bps"]
    res["b_vs_pydiode"] = cmp_b


def _scenario_c(res: dict, work: Path, key: bytes, size: int, transfers: int,
                relay_rate: float, dg: int, rcvbuf: int) -> None:
    # (c) N of N byte-exact at 5 % random and 2 % bursty loss
    big = work / "big.pdf"
    big_digest = _make_object(big, size)
    c: dict[str, Any] = {}
    for label, model in (("random_5pct", LinkModel(loss=0.05, seed=5)),
                         ("bursty_2pct", LinkModel(burst_loss=0.02, burst_length=8,
                                                   bad_loss=0.8, seed=7))):
        rig = Rig(work, key, model, rcvbuf)
        settings = DiodeSettings(rate_bps=relay_rate, datagram_size=dg, loss_rate=0.05)
        files = [big] * transfers
        per = max(60.0, size * 8 / relay_rate * 3 + 30)
        runs = rig.transfer(files, [big_digest] * transfers, settings,
                            timeout=per * transfers)
        stats = rig.close()
        exact = sum(1 for r in runs if r.get("exact"))
        relay = stats.get("relay", {})
        c[label] = {"exact": exact, "of": transfers, "config_loss": 0.05,
                    "measured_loss": relay.get("dropped", 0) / max(1, relay.get("received", 1)),
                    "mean_goodput_bps": sum(r.get("goodput_bps", 0) for r in runs)
                    / max(1, len(runs)), "relay": relay,
                    "receiver": stats.get("receiver", {})}
    res["c_lossy_transfers"] = c


def _scenario_d(res: dict, work: Path, key: bytes, obj: Path, obj_digest: str,
                relay_rate: float, dg: int, rcvbuf: int) -> None:
    # (d) goodput at 10 % loss vs 0 % loss, both through the relay
    d: dict[str, Any] = {}
    for label, model, cfg in (("loss_0", LinkModel(seed=9), 0.02),
                              ("loss_10", LinkModel(loss=0.10, seed=10), 0.10)):
        rig = Rig(work, key, model, rcvbuf)
        settings = DiodeSettings(rate_bps=relay_rate, datagram_size=dg, loss_rate=cfg)
        r = rig.transfer([obj], [obj_digest], settings, timeout=300)[0]
        rig.close()
        d[label] = {"config_loss": cfg, **r}
    d["ratio"] = d["loss_10"].get("goodput_bps", 0) / max(1, d["loss_0"].get("goodput_bps", 1))
    res["d_loss_10_vs_0"] = d


def _targets(res: dict) -> list[dict]:
    """Issue #15's figures for the diode, for make bench's table."""
    out = []
    e = res.get("e_sender_rate")
    if e:
        out.append(target("sender Gbit/s at 25% parity", e["best_goodput_bps"] / 1e9, 3.0,
                          unit=" Gbit/s", note=f"{e['datagram_size']}-byte datagrams, "
                          f"best of {len(e['rounds'])}, unpaced, loopback"))
    for dg, f in (res.get("f_end_to_end_vs_pydiode") or {}).items():
        note = (f"{res['params']['goodput_size'] >> 20} MiB, {dg}-byte datagrams, diode {f['diode_exact']} and pydiode "
                f"{f['pydiode_exact']} byte-exact")
        if f["pydiode_best_Bps"] is None:
            note += "; pydiode never byte-exact, so no ratio"
        out.append(target(f"end to end / pydiode r2 ({dg} B datagrams)", f["ratio"], 1.0,
                          unit="x", note=note))
    a = res.get("a_goodput_vs_raw")
    if a:
        out.append(target("goodput vs raw paced UDP", a["ratio"], 0.5, unit="x"))
    for label, c in (res.get("c_lossy_transfers") or {}).items():
        out.append(target(f"loss transfers byte-exact, {label}", c["exact"], c["of"],
                          note=f"of {c['of']}, measured loss {c['measured_loss']:.2%}"))
    return out


def _print(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def mbit(v: float | None) -> str:
        return f"{v / 1e6:.1f}" if v else "-"

    t = Table(title="bdc-hub diode benchmark (loopback, same run)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("baseline", justify="right")
    t.add_column("ratio / result", justify="right")
    e = res.get("e_sender_rate")
    if e:
        t.add_row(f"(e) sender alone, 25% parity, {e['datagram_size']} B, Gbit/s",
                  f"{e['best_goodput_bps'] / 1e9:.2f} best", f"{e['median_goodput_bps'] / 1e9:.2f}"
                  " median", f"{e['cpu_goodput_bps'] / 1e9:.2f} per CPU second")
    for dg, f in (res.get("f_end_to_end_vs_pydiode") or {}).items():
        mb = (lambda v: f"{v / 1e6:.0f}" if v else "failed")  # noqa: E731
        t.add_row(f"(f) end to end, 100% overhead, {dg} B, MB/s (vs pydiode r2 unpaced)",
                  f"{mb(f['diode_best_Bps'])} ({f['diode_exact']})",
                  f"{mb(f['pydiode_best_Bps'])} ({f['pydiode_exact']})",
                  f"{f['ratio']:.2f}x" if f["ratio"] else "-")
    a = res.get("a_goodput_vs_raw")
    if a:
        t.add_row("(a) goodput 0% loss, Mbit/s (diode vs raw paced UDP)",
                  mbit(a["diode"].get("goodput_bps")), mbit(a["raw_udp"]["goodput_bps"]),
                  f"{a['ratio']:.2f}x (target >= 0.5)")
    b = res.get("b_vs_pydiode")
    pyd = b["pydiode"] if b else {}
    if not b:
        pass
    elif not pyd.get("available"):
        t.add_row("(b) vs pydiode", "-", "-", pyd.get("note", "not run"))
    elif not pyd.get("ok"):
        t.add_row("(b) vs pydiode (overhead 100%)",
                  mbit(b.get("diode_overhead_1.0", {}).get("goodput_bps")), "failed",
                  str(pyd.get("note") or f"pydiode exit {pyd.get('exit')}"))
    else:
        t.add_row("(b) vs pydiode at 100% overhead, Mbit/s",
                  mbit(b["diode_overhead_1.0"].get("goodput_bps")), mbit(pyd["goodput_bps"]),
                  f"{b.get('ratio', 0):.2f}x")
    for label, c in (res.get("c_lossy_transfers") or {}).items():
        t.add_row(f"(c) {label} ({res['params']['size'] >> 20} MiB each)",
                  f"{c['exact']}/{c['of']} exact", f"loss {c['measured_loss']:.2%}",
                  f"{mbit(c['mean_goodput_bps'])} Mbit/s")
    d = res.get("d_loss_10_vs_0")
    if d:
        t.add_row("(d) goodput 10% vs 0% loss, Mbit/s", mbit(d["loss_10"].get("goodput_bps")),
                  mbit(d["loss_0"].get("goodput_bps")), f"{d['ratio']:.2f}x")
    Console().print(t)


if __name__ == "__main__":
    sys.exit(main())
