"""Places as people type them (issue 13): "Cambridge, MA" resolves offline to the centroid of the city's
ZIP codes, in the CLI and in lookup.near (the API's path), and says so; an address with no geocoder
reachable is one clean line, not a urllib3 traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator import geography, lookup
from aggregator.errors import InvalidQuery, PlaceNotFound, UnknownZip
from aggregator.local import sample
from aggregator.local.redis_process import free_port
from aggregator.store import Store
from config.settings import Settings
from tests.environment import isolated_env

CAMBRIDGE_ZIPS = ("02138", "02139", "02140", "02141", "02142", "02238")


def centers(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = isolated_env()
    env |= {
        "REDIS_URL": redis_url,
        "CENTERS_KEY_PREFIX": "cli-places:",
        "CENTERS_GEOCODER": "none",
        "CENTERS_DATA_DIR": str(tmp_path_factory.mktemp("places") / "var"),
    }
    store = Store.from_url(redis_url, "cli-places:")
    for key in store.redis.scan_iter("cli-places:*"):
        store.redis.delete(key)
    sample.load_bundled_sample(store, datetime.now(UTC))
    store.redis.connection_pool.disconnect()
    return env


def test_city_and_state_is_the_centroid_of_the_citys_zip_codes() -> None:
    origin = lookup.resolve_place("Cambridge, MA")
    assert origin.resolved_from == "city"
    assert origin.place == "Cambridge, MA (centroid of 6 ZIP codes)"
    places = [geography.zip_place(z) for z in CAMBRIDGE_ZIPS]
    assert origin.latitude == pytest.approx(sum(p.latitude for p in places if p) / 6, abs=1e-4)
    assert origin.longitude == pytest.approx(sum(p.longitude for p in places if p) / 6, abs=1e-4)
    assert origin.as_dict()["resolved_from"] == "city"


@pytest.mark.parametrize(
    "typed",
    [
        "Cambridge, MA",
        "cambridge ma",
        "Cambridge, Massachusetts",
        " CAMBRIDGE ,  ma ",
        "Cambridge, Mass.",
        "Cambridge, MA, USA",
    ],
)
def test_the_ways_people_type_a_city(typed: str) -> None:
    assert lookup.resolve_place(typed).place == "Cambridge, MA (centroid of 6 ZIP codes)"


def test_saint_and_st_are_one_city_and_multiword_states() -> None:
    assert lookup.resolve_place("St. Louis, MO") == lookup.resolve_place("Saint Louis, MO")
    assert lookup.resolve_place("Trenton New Jersey").place.startswith("Trenton, NJ (")  # type: ignore[union-attr]
    assert lookup.resolve_place("Washington, DC").resolved_from == "city"
    # a name a ZIP code also goes by, when no ZIP code has it as its city
    north = lookup.resolve_place("North Cambridge, MA")
    assert north.place == "North Cambridge, MA (centroid of ZIP code 02140)"


def test_what_is_not_a_city_of_the_zip_data() -> None:
    with pytest.raises(PlaceNotFound, match=r"no city 'Cambrige' in Massachusetts .*did you mean Cambridge\?"):
        lookup.resolve_place("Cambrige, MA")
    with pytest.raises(InvalidQuery, match="is not a ZIP code, 'lat,lon' or 'City, ST'"):
        lookup.resolve_place("1 Main St, Springfield, MA")
    with pytest.raises(UnknownZip):
        lookup.resolve_place("99999")
    assert lookup.offline_origin("1 Main St, Springfield, MA") is None  # the geocoder's job
    assert lookup.offline_origin("Cambrige, MA") is None
    assert lookup.split_city_state("Cambridge, Narnia") is None
    assert lookup.offline_origin("02139") == lookup.resolve_zip("02139")
    assert lookup.offline_origin("42.36,-71.1") == lookup.resolve_coordinates(42.36, -71.1)


def test_near_takes_a_place_as_the_api_would(store: Store) -> None:
    sample.load_bundled_sample(store, datetime.now(UTC))
    answer = lookup.near(store, place="Cambridge, MA", radius_mi=10)
    assert answer.origin.resolved_from == "city"
    assert answer.results
    assert lookup.near(store, place="02139").origin.zip == "02139"
    with pytest.raises(InvalidQuery, match="place"):
        lookup.near(store, place="Cambridge, MA", zip="02139")
    with pytest.raises(PlaceNotFound):
        lookup.near(store, place="Cambrige, MA")


def test_cli_near_a_city(cli_env: dict[str, str]) -> None:
    result = centers("near", "Cambridge, MA", "--json", "--radius", "10", env=cli_env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["origin"]["resolved_from"] == "city"
    assert answer["origin"]["place"] == "Cambridge, MA (centroid of 6 ZIP codes)"
    assert answer["results"]
    table = centers("near", "cambridge ma", "--radius", "10", env=cli_env)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == "Centers within 10 miles of Cambridge, MA (centroid of 6 ZIP codes)"


def test_cli_an_unknown_city_is_one_line_with_close_names(cli_env: dict[str, str]) -> None:
    result = centers("near", "Cambrige, MA", env=cli_env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: place: no city 'Cambrige' in Massachusetts in the ZIP data (did you mean Cambridge?); try a ZIP code"
    ]


@pytest.mark.parametrize("domain", ["nominatim.invalid", "127.0.0.1:{port}"])
def test_cli_an_address_with_no_geocoder_reachable_is_one_clean_line(cli_env: dict[str, str], domain: str) -> None:
    env = {
        **cli_env,
        "CENTERS_GEOCODER": "nominatim",
        "CENTERS_GEOCODER_SCHEME": "http",
        "CENTERS_GEOCODER_DOMAIN": domain.format(port=free_port()),
        "CENTERS_GEOCODER_TIMEOUT": "3",
    }
    result = centers("near", "1 Main St, Springfield, MA", env=env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: address search is unavailable (no geocoder reachable); try a ZIP code or 'City, ST'"
    ]
    # a city still answers, offline, with the geocoder down
    city = centers("near", "Cambridge, MA", "--json", env=env)
    assert city.returncode == 0, city.stderr
    assert json.loads(city.stdout)["origin"]["resolved_from"] == "city"


def test_cli_an_address_with_address_search_off(cli_env: dict[str, str]) -> None:
    result = centers("near", "1 Main St, Springfield, MA", env=cli_env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: place: enter a ZIP code, 'lat,lon' or 'City, ST' (address search is off)"
    ]


def test_the_zip_table_is_read_from_its_compact_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first use builds the compact file in the user cache folder; later ones read it (and a damaged
    or unwritable cache only costs speed)."""

    def fresh() -> None:
        for fn in (
            geography._table,
            geography._rows,
            geography.zip_place,
            geography._state_rows,
            geography._state_cities,
            geography._city_points,
            geography._alt_names,
        ):
            fn.cache_clear()

    expected = (
        geography.zip_place("02139"),
        geography.city_place("Cambridge", "MA"),
        geography.in_state(42.36, -71.1, "MA"),
        geography.nearest_zip(42.3647, -71.1042, "MA"),
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    Settings.from_env()  # the edge tells geography its folder (the core reads no environment)
    try:
        for damage in (None, b"{not json", b'{"format": 0}'):
            fresh()
            path = geography._table_path()
            if damage is not None:
                path.write_bytes(damage)
            answers = (
                geography.zip_place("02139"),
                geography.city_place("Cambridge", "MA"),
                geography.in_state(42.36, -71.1, "MA"),
                geography.nearest_zip(42.3647, -71.1042, "MA"),
            )
            assert answers == expected
            assert path.parent == tmp_path / "cache" / "centers"
            assert geography._read_table(path) is not None  # written (again), whole
        fresh()
        assert geography._table() == geography._read_table(path)  # read, not built
        (tmp_path / "a-file").write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # no folder can be made there
        Settings.from_env()
        fresh()
        assert geography.zip_place("02139") == expected[0]  # built in memory
    finally:
        monkeypatch.undo()
        geography.use_cache_folder(None)
        fresh()


def test_operators_can_search_a_city_without_a_geocoder() -> None:
    from aggregator.geocode import origin_for_place

    origin = origin_for_place("Cambridge, MA", None)
    assert origin.resolved_from == "city" and origin.place.startswith("Cambridge, MA")
