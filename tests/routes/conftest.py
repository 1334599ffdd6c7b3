import pytest


@pytest.fixture
def hubs():
    """Hubs made in a test are closed after it."""
    made = []
    yield made
    for hub in made:
        hub.kill()


@pytest.fixture(params=["sqlite-file", "sqlite-memory"])
def store(request, tmp_path):
    from bdchub.core.store import Store

    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite-file" else "sqlite://"
    s = Store(url)
    yield s
    s.close()
