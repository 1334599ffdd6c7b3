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

    data = {
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
    # Drawn from a generator of their own, after everything above: adding them left
    # every seeded value above (and so the config's seed-42 defaults) as it was.
    data.update(_register(seed, county, people, units, filings, court_orders))
    registries = shared_registries(seed, county, people, identity_mismatch)
    data["secrets"].update(registries.pop("secrets"))
    data.update(registries)
    return data


def _register(seed: int, county: dict[str, str], people: list[dict[str, Any]],
              units: list[str], filings: list[dict[str, Any]],
              court_orders: list[dict[str, Any]]) -> dict[str, Any]:
    """What the registration system holds on record: each registered unit with its
    holders and restrictions (``register``), and its appointment calendar
    (``scheduling``). Owners follow the other departments' data and the demo's
    samples: the sellers of the contract filings own ``units[0..4]``, the demo's
    seller ``units[5]``, its mortgagors ``units[6]`` and ``units[7]``, the court
    orders' respondents ``units[8..10]``, ``units[11]`` is the demo seizure's, the
    unit the system refuses (``units[12]``) is seized in its own register, and
    ``people[0]`` (married to ``people[1]``) holds two more units. ``units[14]``
    (the demo's first registration) is not registered yet. ``no_property`` lists
    people who hold nothing (for the no-property certificate)."""
    rng = random.Random(f"bdc-sandbox:{seed}:register")
    code, place, abbr = county["code"], county["name"], county["province_abbr"]

    def holder(p: dict[str, Any], co_ownership: str = "0", share: str | None = None
               ) -> dict[str, Any]:
        return {"name": p["name"], "id_type": "1", "id_number": p["cert_num"],
                "co_ownership": co_ownership, "share": share}

    def location() -> str:
        return (f"{place}{rng.choice(_TOWNS)}{rng.choice(_STREETS)}{rng.randint(1, 300)}号"
                f"{rng.randint(1, 30)}幢{rng.randint(101, 2404)}室")

    def certificate(year: int) -> str:
        return f"{abbr}({year}){place}不动产权第{rng.randint(1000, 9999999):07d}号"

    def proof(year: int) -> str:
        return f"{abbr}({year}){place}不动产证明第{rng.randint(1000, 9999999):07d}号"

    bank = {"name": "江海农村商业银行股份有限公司海门支行", "id_type": "8",
            "id_number": "91320614MA1P8K6W29"}
    extra = [make_unit_code(rng, code) for _ in range(2)]
    owners: list[tuple[str, list[dict[str, Any]], str | None, str | None]] = [
        *[(f["unit_code"], [holder(people[20 + 2 * k])], f["location"], f"{f['area']:.2f}")
          for k, f in enumerate(filings)],
        (units[5], [holder(people[16])], None, None),
        (units[6], [holder(people[4], "1"), holder(people[5], "1")], None, None),
        (units[7], [holder(people[6])], None, None),
        *[(o["UnitCode"], [holder(people[30 + k])], None, None)
          for k, o in enumerate(court_orders)],
        (units[11], [holder(people[12])], None, None),
        (units[12], [holder(people[14])], None, None),
        (units[13], [holder(people[18])], None, None),
        (units[15], [holder(people[10])], None, None),
        (extra[0], [holder(people[0], "1"), holder(people[1], "1")], None, None),
        (extra[1], [holder(people[0])], None, None),
    ]
    fixed = {units[5]: f"{abbr}(2019){place}不动产权第0004321号",
             units[6]: f"{abbr}(2020){place}不动产权第0001234号",
             units[7]: f"{abbr}(2020){place}不动产权第0002345号",
             units[15]: f"{abbr}(2018){place}不动产权第0007777号"}
    properties = []
    for unit, holders, where, area in owners:
        year = rng.randint(2010, 2023)
        properties.append({
            "unit_code": unit, "certificate_no": fixed.get(unit) or certificate(year),
            "location": where or location(), "area": area or f"{rng.uniform(50, 200):.2f}",
            "use": "住宅", "right_type": "4",
            "registered_at": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "holders": holders, "restrictions": []})
    by_unit = {p["unit_code"]: p for p in properties}

    def restrict(unit: str, kind: str, year: int, **fields: Any) -> None:
        by_unit[unit]["restrictions"].append({
            "kind": kind, "registered_at": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            **fields})

    # 抵押 (mortgage), 异议 (objection), 预告 (advance notice), 查封 (seizure).
    restrict(units[1], "mortgage", 2022, proof_no=proof(2022), holder=bank,
             amount=f"{rng.randint(20, 150) * 10000}.00")
    restrict(extra[0], "mortgage", 2021, proof_no=proof(2021), holder=bank,
             amount=f"{rng.randint(20, 150) * 10000}.00")
    restrict(units[3], "objection", 2024, proof_no=proof(2024), holder=holder(people[35]))
    buyer = filings[2]["buyers"][0]
    restrict(units[2], "advance_notice", 2025, proof_no=proof(2025),
             holder={"name": buyer["name"], "id_type": "1", "id_number": buyer["cert_num"]})
    restrict(units[12], "seizure", 2024, authority=f"{place}人民法院",
             case_no=f"(2024){abbr}{code[2:]}执{rng.randint(1, 9999)}号",
             period={"start": "2024-03-01", "end": "2027-02-28"})
    held = {h["id_number"] for p in properties for h in p["holders"]}
    held |= {r["holder"]["id_number"] for p in properties for r in p["restrictions"]
             if r.get("holder")}
    return {
        "register": {"properties": properties,
                     "no_property": [p["cert_num"] for p in people if p["cert_num"] not in held]},
        # The window's calendar (预约): half-hour slots in office hours on weekdays,
        # ``capacity`` people a slot; the 09:00 slot is always taken (the morning rush),
        # so a request for it is answered with alternatives.
        "scheduling": {"office": f"{place}不动产登记中心", "slot_minutes": 30,
                       "hours": [["08:30", "11:30"], ["13:30", "17:00"]], "capacity": 2,
                       "always_full": ["09:00"], "horizon_days": 60,
                       "appointment_seq_start": rng.randint(1, 500),
                       "certificate_seq_start": rng.randint(100, 900)},
    }


#: The bank of the shipped config's bank channel (client ``bank_jhrcb``): its
#: financial licence is on file, so the demo's batches pass the licence check.
COUNTY_BANK = {"name": "江海农村商业银行股份有限公司海门支行", "uscc": "91320614MA1P8K6W29"}

#: Neighbouring divisions, so a location there is recognised as outside the county.
NEIGHBOURS = {"崇川区": "320602", "通州区": "320612", "启东市": "320681", "如皋市": "320682",
              "海安市": "320685", "如东县": "320623"}

#: The registries behind the data-exchange signature, each with its own secret line.
REGISTRY_EXCHANGE = ("public_sector", "health", "justice", "finance")


def shared_registries(seed: int, county: dict[str, str], people: list[dict[str, Any]],
                      taken: list[str]) -> dict[str, Any]:
    """The registries the shared-information checks ask (guide §四(一)1, §四(一)3):
    institutions (机构编制), social organisations (民政), financial licences,
    birth and death medical certificates, notarial certificates, place names, and
    the face and e-signature cases of the integrated platform.

    A random stream of their own, so adding them left every earlier draw (people,
    companies, secrets, hence the config's seed-42 defaults) as it was.
    """
    code, place = county["code"], county["name"]
    rng = random.Random(f"bdc-sandbox:{seed}:registries")
    seen = {p["cert_num"] for p in people} | set(taken)

    def hexsecret(n: int = 32) -> str:
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    def someone(born: dt.date, male: bool) -> dict[str, Any]:
        while True:
            cert = make_resident_id(rng, code, born, male)
            if cert not in seen:
                seen.add(cert)
                return {"name": _name(rng), "cert_num": cert, "gender": "男" if male else "女",
                        "birth_date": born.isoformat()}

    def since(start: dt.date, end: dt.date) -> str:
        return _date_between(rng, start, end).isoformat()

    def address() -> str:
        return f"{place}{rng.choice(_TOWNS)}{rng.choice(_STREETS)}{rng.randint(1, 300)}号"

    def registered(dept: str, plan: tuple[tuple[str, str, str, str], ...], authority: Any,
                   first: int, last: int, extra: Any = None) -> list[dict[str, Any]]:
        rows = []
        for kind, org_type, name, status in plan:
            row = {"uscc": make_uscc(rng, dept, kind, code), "name": name, "org_type": org_type,
                   "legal_rep": rng.choice(people)["name"], "status": status,
                   **(extra(kind) if extra else {})}
            rows.append({**row, "address": address(), "reg_authority": authority(kind),
                         "reg_date": since(dt.date(first, 1, 1), dt.date(last, 12, 31))})
        return rows

    # 机构编制: government bodies (type 1) and public institutions (type 2), GB 32100
    # registering department 1.
    institutions = registered("1", (
        ("1", "机关", f"{place}自然资源和规划局", "正常"),
        ("2", "事业单位", f"{place}人民医院", "正常"),
        ("2", "事业单位", f"{place}第一中学", "正常"),
        ("2", "事业单位", f"{place}房产管理处", "撤销")),
        lambda kind: f"{place}事业单位登记管理局" if kind == "2" else f"{place}机构编制委员会办公室",
        1990, 2020, lambda kind: {"certificate_no": f"事证第{code}{rng.randint(1, 99999):05d}号"
                                  if kind == "2" else None})
    # 民政: social organisations (社会团体 1, 民办非企业单位 2, 基金会 3), department 5.
    social = registered("5", (
        ("1", "社会团体", f"{place}慈善总会", "正常"),
        ("2", "民办非企业单位", f"{place}东洲老年公寓", "正常"),
        ("3", "基金会", f"{place}教育发展基金会", "正常"),
        ("1", "社会团体", f"{place}叠石桥家纺行业协会", "撤销")),
        lambda kind: f"{place}民政局", 1995, 2022)

    # 金融许可证: the banks that take mortgages in the county.
    authority = f"国家金融监督管理总局{county['city'].removesuffix('市')}监管分局"
    licences = []
    for name, uscc, kind, status in (
            (COUNTY_BANK["name"], COUNTY_BANK["uscc"], "农村商业银行分支机构", "有效"),
            (f"中国工商银行股份有限公司{place}支行", make_uscc(rng, "9", "1", code),
             "商业银行分支机构", "有效"),
            (f"{place}东洲村镇银行股份有限公司", make_uscc(rng, "9", "1", code), "村镇银行", "注销")):
        licences.append({
            "licence_no": f"B{rng.randint(1, 9999):04d}{rng.choice('HLS')}{code}{rng.randint(1, 999):04d}",
            "institution_name": name, "uscc": uscc, "institution_type": kind, "status": status,
            "issued_on": since(dt.date(2005, 1, 1), dt.date(2023, 12, 31)),
            "authority": authority, "address": address()})

    # A family for inheritance: the late father, his widow and two children born
    # after 1996 (so with birth medical certificates naming him). None of them is in
    # ``people``: identity checks of their valid ID numbers match, household finds none.
    father = someone(_date_between(rng, dt.date(1950, 1, 1), dt.date(1965, 12, 31)), True)
    mother = someone(_date_between(rng, dt.date(1955, 1, 1), dt.date(1970, 12, 31)), False)
    children = [someone(_date_between(rng, dt.date(1996, 1, 1), dt.date(2005, 12, 31)), male)
                for male in (True, False)]
    for child in children:  # the father's surname
        child["name"] = father["name"][0] + child["name"][1:]
    died = _date_between(rng, dt.date(2024, 1, 1), dt.date(2025, 6, 30))
    hospital = f"{place}人民医院"
    death_certificates = [{"certificate_no": f"{code[:2]}{rng.randint(10**9, 10**10 - 1)}",
                           "name": father["name"], "cert_num": father["cert_num"],
                           "gender": "男", "death_date": died.isoformat(), "institution": hospital}]
    birth_certificates = [{
        "certificate_no": f"{rng.choice('NOPQ')}{code[:2]}{rng.randint(10**7, 10**8 - 1)}",
        "child_name": child["name"], "child_gender": child["gender"],
        "birth_date": child["birth_date"], "institution": hospital,
        "father_name": father["name"], "father_cert_num": father["cert_num"],
        "mother_name": mother["name"], "mother_cert_num": mother["cert_num"]}
        for child in children]
    families = [{"decedent": father, "spouse": mother, "children": children,
                 "died": died.isoformat(),
                 "death_certificate_no": death_certificates[0]["certificate_no"],
                 "birth_certificate_nos": [b["certificate_no"] for b in birth_certificates]}]

    # 公证书 on file at the county's notary office.
    office = f"江苏省{place}公证处"

    def notarial_no(year: int, n: int) -> str:
        return f"({year}){county['province_abbr']}通海证民内字第{n}号"

    notarial = [
        {"certificate_no": notarial_no(died.year, rng.randint(100, 999)), "matter": "继承权公证",
         "notary_office": office, "issued_on": (died + dt.timedelta(days=40)).isoformat(),
         "parties": [c["name"] for c in children] + [mother["name"]], "status": "有效"},
        {"certificate_no": notarial_no(2025, rng.randint(1000, 1999)), "matter": "委托公证",
         "notary_office": office, "issued_on": since(dt.date(2025, 1, 1), dt.date(2025, 6, 30)),
         "parties": [people[20]["name"], people[21]["name"]], "status": "有效"},
        {"certificate_no": notarial_no(2024, rng.randint(2000, 2999)), "matter": "声明书公证",
         "notary_office": office, "issued_on": since(dt.date(2024, 1, 1), dt.date(2024, 6, 30)),
         "parties": [people[22]["name"]], "status": "撤销"},
    ]

    return {
        "institutions": institutions,
        "social_organisations": social,
        "financial_licences": licences,
        "families": families,
        "death_certificates": death_certificates,
        "birth_certificates": birth_certificates,
        "notarial_certificates": notarial,
        # 标准地名地址: the county's towns and streets, and its neighbours by name.
        "place_names": {"towns": list(_TOWNS), "streets": list(_STREETS),
                        "neighbours": dict(NEIGHBOURS)},
        # A live face that is a photo of a photo (liveness fails), and an e-signature
        # certificate the platform's CA has revoked.
        "face_spoof": [people[11]["cert_num"]],
        "signature_revoked": [people[13]["cert_num"]],
        "secrets": {
            name: {"rid": f"RID{code}{tag}{hexsecret(8).upper()}",
                   "sid": f"SID{code}{hexsecret(8).upper()}",
                   "app_key": f"ak-{name.replace('_', '')}-{hexsecret(12)}",
                   "initial_secret": hexsecret(40)}
            for name, tag in zip(REGISTRY_EXCHANGE, ("BB", "WJ", "SF", "JR"), strict=True)},
    }
