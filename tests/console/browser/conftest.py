"""The fixtures of the console's browser tests: headless Chromium (Debian's
``chromium`` and ``chromium-driver``) driven by Selenium, and a hub running the
shipped config on the sandbox with one operator of each role. Locally, without
Chromium, they skip loudly; under ``CI=true`` they fail."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdchub.console.accounts import Operators
from bdchub.core.operators import OperatorStore
from tests.demo.conftest import Flows, _flows

from .drive import PASSWORDS, unavailable, webdriver


@pytest.fixture
def hub(clean_sandbox: Any, tmp_path: Path) -> Iterator[Flows]:
    """The shipped config on the sandbox, reporting its status every half second,
    with one operator of each role the tests log in as."""
    for flows in _flows(clean_sandbox, tmp_path):
        flows.service.status.every = 0.5
        operators = Operators(OperatorStore(flows.hub.store), flows.hub.audit)
        for name, (role, password) in PASSWORDS.items():
            operators.add(name, password, roles=[role], tenants=[flows.hub.tenant], by="test")
        yield flows

@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BDCHUB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder

@pytest.fixture
def browser() -> Iterator[Any]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        unavailable("chromium or chromedriver not installed (apt-get install chromium "
                     "chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--lang=zh-CN"):
        options.add_argument(arg)
    try:
        found = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except Exception as exc:  # noqa: BLE001 - a browser that cannot start is unavailable
        unavailable(f"chromium did not start: {exc}")
    try:
        yield found
    finally:
        found.quit()
