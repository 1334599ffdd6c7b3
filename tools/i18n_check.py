"""List user-facing messages in the code that have no Chinese translation.

``python tools/i18n_check.py`` prints each missing msgid with where it is used;
``--po FILE`` appends empty entries for the missing ones to that .po file so a
translator can fill them in. The test suite runs ``missing()`` so a message
added without its translation fails CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.extract import extract_from_dir

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["core", "connectors", "routes", "schemas", "bridge", "sandbox", "web", "console", "app", "demo"]
KEYWORDS = {"_": None, "gettext": None}


def used() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for package in [*PACKAGES, "hub.py"]:
        target = ROOT / package
        if target.is_file():
            from babel.messages.extract import extract

            with target.open("rb") as fh:
                for lineno, msg, _c, _ctx in extract("python", fh, keywords=KEYWORDS):
                    found.setdefault(msg, []).append(f"{package}:{lineno}")
            continue
        if not target.is_dir():
            continue
        for filename, lineno, msg, _c, _ctx in extract_from_dir(
                target, method_map=[("**.py", "python")], keywords=KEYWORDS):
            if isinstance(msg, str) and msg:
                found.setdefault(msg, []).append(f"{package}/{filename}:{lineno}")
    return found


def translated(lang: str = "zh_CN") -> set[str]:
    from babel.messages.pofile import read_po

    ids: set[str] = set()
    for po in (ROOT / "locale" / lang).glob("*.po"):
        with po.open("rb") as fh:
            ids.update(str(m.id) for m in read_po(fh) if m.id and m.string)
    return ids


def missing(lang: str = "zh_CN") -> dict[str, list[str]]:
    have = translated(lang)
    return {msg: where for msg, where in used().items() if msg not in have}


def _po_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main(argv: list[str]) -> int:
    gaps = missing()
    if "--po" in argv:
        target = Path(argv[argv.index("--po") + 1])
        with target.open("a", encoding="utf-8") as fh:
            for msg, where in sorted(gaps.items()):
                fh.write(f"\n#: {' '.join(where[:3])}\nmsgid {_po_quote(msg)}\nmsgstr \"\"\n")
        print(f"appended {len(gaps)} entries to {target}")
        return 0
    for msg, where in sorted(gaps.items()):
        print(f"{where[0]}: {msg!r}")
    print(f"{len(gaps)} messages without a zh_CN translation")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
