"""Seeded reference data of the simulated departments.

Everything here comes from one ``random.Random`` seeded with the sandbox seed,
so two sandboxes with the same seed hold the same people, households,
marriages, companies, contract filings, court orders and secrets. Tests and
the demo read it through ``Sandbox.data`` to pick inputs that are known to
match (or known to be refused).

The checksum helpers follow GB 11643-1999 (resident ID), GB 32100-2015 (USCC)
and the shape of GB/T 37346-2019 unit codes; they are small copies on purpose,
so the sandbox does not depend on the hub's own checkers it is meant to test.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# GB/T 37346-2019: 6 division + 3 zone + 3 subzone + 2 parcel feature + 5 seq
# + 1 fixture feature + 8 fixture number (00000000 when W).
_UNIT_RE = re.compile(
    r"^\d{6}\d{3}\d{3}(J[ABSXCDEFHGWY]|[GZ][BSXDEFHGWY])\d{5}(F\d{8}|L\d{8}|Q\d{8}|W00000000)$"
)

COUNTY = {"code": "320684", "name": "海门市", "province_abbr": "苏", "province": "江苏省",
          "city": "南通市"}

_SURNAMES = "张王李赵刘陈杨黄周吴徐孙朱马胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红玉兰文斌海波宇浩然子轩梓涵欣怡俊杰晨曦思远雨婷嘉怡佳琪一鸣天佑"
_STREETS = ["人民中路", "解放东路", "长江南路", "北京路", "秀山路", "光华路", "丝绸路", "东洲路"]
_TOWNS = ["海门街道", "三厂街道", "常乐镇", "悦来镇", "四甲镇", "余东镇", "正余镇", "包场镇"]
_COMPANY_WORDS = ["江海", "东洲", "叠石桥", "通海", "海晟", "金桥", "三和", "瑞丰", "华盛", "广源"]
_COMPANY_KINDS = ["建筑工程有限公司", "房地产开发有限公司", "家纺有限公司", "置业有限公司",
                  "商贸有限公司", "物业管理有限公司"]


def id_check_char(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11]


def valid_resident_id(value: str) -> bool:
    """GB 11643-1999: 17 digits + check character, with a real birth date."""
    if not isinstance(value, str) or len(value) != 18:
        return False
    value = value.upper()
    if not value[:17].isdigit() or value[17] not in "0123456789X":
        return False
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return id_check_char(value[:17]) == value[17]


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def valid_uscc(value: str) -> bool:
    """GB 32100-2015, N- and Y-prefixed codes included."""
    if not isinstance(value, str) or len(value) != 18:
        return False
    value = value.upper()
    if any(c not in USCC_ALPHABET for c in value):
        return False
    if value[0] not in "123456789ANY" or not value[2:8].isdigit():
        return False
    return uscc_check_char(value[:17]) == value[17]


def valid_unit_code(value: str) -> bool:
    """Strict 28-character unit code (GB/T 37346-2019)."""
    return isinstance(value, str) and bool(_UNIT_RE.match(value))


def make_resident_id(rng: random.Random, address: str, born: dt.date, male: bool) -> str:
    seq = rng.randrange(0, 499) * 2 + (1 if male else 0)  # odd = male
    first17 = f"{address}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def make_uscc(rng: random.Random, dept: str, kind: str, division: str) -> str:
    org = "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    first17 = f"{dept}{kind}{division}{org}"
    return first17 + uscc_check_char(first17)


def make_unit_code(rng: random.Random, county: str) -> str:
    return (f"{county}{rng.randint(1, 120):03d}{rng.randint(1, 30):03d}GB"
            f"{rng.randint(1, 99999):05d}F{rng.randint(1, 40):04d}{rng.randint(101, 2404):04d}")


def _name(rng: random.Random) -> str:
    given = "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2, 2))))
    return rng.choice(_SURNAMES) + given


def _date_between(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def generate(seed: int, county: dict[str, str] | None = None) -> dict[str, Any]:
    """All seeded data, as plain JSON-able dicts and lists."""
    county = dict(county or COUNTY)
    code = county["code"]
    rng = random.Random(f"bdc-sandbox:{seed}")

    def hexsecret(n: int = 32) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    # People: the population the departments agree about.
    people: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(people) < 40:
        male = len(people) % 2 == 0
        born = _date_between(rng, dt.date(1950, 1, 1), dt.date(2002, 12, 31))
        cert = make_resident_id(rng, code, born, male)
        if cert in seen:
            continue
        seen.add(cert)
        people.append({"name": _name(rng), "cert_num": cert, "gender": "男" if male else "女",
                       "birth_date": born.isoformat(),
                       "address": f"{county['province']}{county['city']}{county['name']}"
                                  f"{rng.choice(_TOWNS)}{rng.choice(_STREETS)}{rng.randint(1, 300)}号"})

    def fresh_id() -> str:
        while True:
            male = rng.random() < 0.5
            cert = make_resident_id(rng, code, _date_between(rng, dt.date(1950, 1, 1),
                                                              dt.date(2002, 12, 31)), male)
            if cert not in seen:
                seen.add(cert)
                return cert

    # Valid checksums that the identity service still reports as not matching
    # (the citizen's record differs, e.g. a changed name).
    identity_mismatch = [fresh_id() for _ in range(4)]
    face_mismatch = [people[i]["cert_num"] for i in (5, 17)]

    # Households: consecutive runs of people share a household register.
    households: list[dict[str, Any]] = []
    i = 0
    while i < len(people):
        size = min(rng.randint(1, 4), len(people) - i)
        members = people[i:i + size]
        hh_no = f"{code}{rng.randint(10**8, 10**9 - 1)}"
        station = f"{county['name']}公安局{rng.choice(_TOWNS)[:-2]}派出所"
        entries = []
        for j, person in enumerate(members):
            relation = "户主" if j == 0 else rng.choice(["配偶", "子", "女", "父亲", "母亲"])
            entries.append({"household_no": hh_no, "relation": relation, "name": person["name"],
                            "cert_num": person["cert_num"], "gender": person["gender"],
                            "birth_date": person["birth_date"], "address": members[0]["address"],
                            "division_code": code, "police_station": station})
        households.append({"household_no": hh_no, "entries": entries})
        i += size

    # Marriages: pairs of a man and a woman; some end in divorce.
    marriages: list[dict[str, Any]] = []
    men = [p for p in people if p["gender"] == "男"]
    women = [p for p in people if p["gender"] == "女"]
    for k in range(12):
        man, woman = men[k], women[k]
        married = _date_between(rng, dt.date(1995, 1, 1), dt.date(2020, 12, 31))
        dept = {"dept_code": f"{code}000", "dept_name": f"{county['name']}民政局婚姻登记处"}
        row = {"op_type": "IA", "op_type_name": "结婚登记", "op_date": married.isoformat(),
               **dept, "name_man": man["name"], "cert_num_man": man["cert_num"],
               "name_woman": woman["name"], "cert_num_woman": woman["cert_num"],
               "cert_no": f"J{code}-{married.year}-{rng.randint(1, 99999):06d}"}
        marriages.append(row)
        if k % 4 == 3:
            divorced = married + dt.timedelta(days=rng.randint(400, 2000))
            marriages.append({**row, "op_type": "IB", "op_type_name": "离婚登记",
                              "op_date": divorced.isoformat(),
                              "cert_no": f"L{code}-{divorced.year}-{rng.randint(1, 99999):06d}"})

    # Companies: registered with market regulation.
    companies: list[dict[str, Any]] = []
    plan = [("9", "1", "存续")] * 6 + [("9", "1", "注销"), ("9", "1", "吊销"),
                                       ("N", "2", "存续"), ("Y", "1", "存续")]
    for dept, kind, status in plan:
        uscc = make_uscc(rng, dept, kind, code)
        if dept == "N":
            name = f"{county['name']}{rng.choice(_TOWNS)}{rng.choice(['红星', '新华', '东风'])}村股份经济合作社"
        else:
            name = f"{county['name']}{rng.choice(_COMPANY_WORDS)}{rng.choice(_COMPANY_KINDS)}"
        rep = rng.choice(people)
        companies.append({"uscc": uscc, "company_name": name, "legal_rep": rep["name"],
                          "legal_rep_cert_num": rep["cert_num"], "status": status,
                          "reg_date": _date_between(rng, dt.date(1998, 1, 1),
                                                    dt.date(2022, 12, 31)).isoformat(),
                          "reg_capital": f"{rng.randint(50, 20000)}万元人民币",
                          "address": f"{county['name']}{rng.choice(_TOWNS)}{rng.choice(_STREETS)}{rng.randint(1, 500)}号",
                          "reg_authority": f"{county['name']}市场监督管理局"})

    units = [make_unit_code(rng, code) for _ in range(16)]

    # Housing-trade contract filings (网签备案).
    filings: list[dict[str, Any]] = []
    for k in range(5):
        seller, buyer = people[20 + 2 * k], people[21 + 2 * k]
        signed = _date_between(rng, dt.date(2025, 1, 1), dt.date(2025, 12, 31))
        area = round(rng.uniform(60, 180), 2)
        filings.append({
            "filing_no": f"{code}{signed.year}WQ{rng.randint(1, 999999):06d}",
            "unit_code": units[k], "location": f"{county['name']}{rng.choice(_STREETS)}"
                                                f"{rng.randint(1, 99)}号{rng.randint(1, 30)}幢{rng.randint(101, 2404)}室",
            "area": area, "price": round(area * rng.randint(9000, 18000), 2),
            "sellers": [{"name": seller["name"], "cert_type": "1", "cert_num": seller["cert_num"]}],
            "buyers": [{"name": buyer["name"], "cert_type": "1", "cert_num": buyer["cert_num"]}],
            "sign_date": signed.isoformat(),
            "filing_date": (signed + dt.timedelta(days=rng.randint(0, 5))).isoformat(),
            "status": "已备案"})

    # Court orders already on file (the hub pulls them).
    court_name = f"{county['name']}人民法院"
    court_orders: list[dict[str, Any]] = []
    for k, kind in enumerate(("SEIZURE", "JUDGMENT", "SEIZURE")):
        start = _date_between(rng, dt.date(2025, 6, 1), dt.date(2025, 12, 31))
        person = people[30 + k]
        court_orders.append({
            "Kind": kind, "CourtCode": f"F{code}", "CourtName": court_name,
            "CaseNo": f"({start.year}){county['province_abbr']}{code[2:]}"
                      f"{'执' if kind == 'SEIZURE' else '民初'}{rng.randint(1, 9999)}号",
            "UnitCode": units[8 + k],
            "RespondentName": person["name"], "RespondentIdNumber": person["cert_num"],
            "PeriodFrom": start.isoformat() if kind == "SEIZURE" else None,
            "PeriodTo": start.replace(year=start.year + 3).isoformat() if kind == "SEIZURE" else None,
            "Summary": "查封不动产" if kind == "SEIZURE" else "判决不动产权属转移"})

    return {
        "seed": seed,
        "county": county,
        "people": people,
        "identity_mismatch": identity_mismatch,
        "face_mismatch": face_mismatch,
        "households": households,
        "marriages": marriages,
        "companies": companies,
        "units": units,
        "contract_filings": filings,
        "court_orders": court_orders,
        # Legacy system: units it refuses (already seized in its own register),
        # and units whose first submission gets a correction request.
        "legacy": {"refuse_units": [units[12]], "correction_units": [units[13]],
                   "required_materials": ["申请书", "身份证明"],
                   "cert_seq_start": rng.randint(100, 900),
                   "proof_seq_start": rng.randint(100, 900),
                   "ywh_seq_start": rng.randint(1, 500)},
        "secrets": {
            "gov": {"rid": f"RID{code}GOV{hexsecret(8).upper()}", "sid": f"SID{code}{hexsecret(8).upper()}",
                    "app_key": f"ak-gov-{hexsecret(12)}", "initial_secret": hexsecret(40)},
            "civil": {"rid": f"RID{code}MZ{hexsecret(8).upper()}", "sid": f"SID{code}{hexsecret(8).upper()}",
                      "app_key": f"ak-civil-{hexsecret(12)}", "initial_secret": hexsecret(40)},
            "tax": {"username": f"bdc{code}", "password": hexsecret(20),
                    "push_app_key": f"ak-taxpush-{hexsecret(8)}", "push_app_secret": hexsecret(40)},
            "court": {"username": f"hub{code}", "password": hexsecret(20)},
            "trade": {"client_id": f"bdc-hub-{code}", "client_secret": hexsecret(40)},
            "police": {"username": f"bdc{code}", "password": hexsecret(20)},
            "market": {"app_key": f"ak-market-{hexsecret(12)}", "app_secret": hexsecret(40)},
            "legacy": {"callback_app_key": f"ak-legacy-{hexsecret(8)}",
                       "callback_app_secret": hexsecret(40)},
            "window_county": {"app_key": f"ak-wc-{hexsecret(12)}", "app_secret": hexsecret(40)},
            "window_province": {"app_key": f"ak-wp-{hexsecret(12)}", "app_secret": hexsecret(40)},
            "window_national": {"app_key": f"ak-wn-{hexsecret(12)}", "app_secret": hexsecret(40)},
        },
        "token_seed": hexsecret(16),
    }
