"""Schemathesis against the running uvicorn server's /openapi.json, for the public endpoints.

Generated requests, valid and invalid (about 100 per operation and variant), must never get a 5xx,
and every answer must match the response schema the OpenAPI document declares for its status code.

Two variants add depth where pure schema-driven generation stays shallow: the schema cannot say
"either ``zip`` or both ``lat`` and ``lon``", so most schema-valid searches are 422s; ``located``
gives each generated search exactly one location (a ZIP or a point), so filters, radius and limit
reach the lookup. And a generated center id is never a stored one, so ``stored`` asks for real ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from aggregator.local.sample import SAMPLE_FEED, load_bundled_sample
from aggregator.store import Store
from tests.integration.conftest import open_stack
from tests.integration.factories import center, observation

PUBLIC_PATHS = ("/v1/centers/near", "/v1/centers/{center_id}", "/healthz", "/readyz")
MAX_EXAMPLES = 100
FUZZ_PHASES = (Phase.explicit, Phase.generate, Phase.shrink)  # no replay of an example database
# ZIPs with sample centers near them, one far from any, one that does not exist
ZIPS = ("02139", "02144", "10001", "60601", "94103", "99501", "99999")

REGISTRY = """
[[feed]]
id = "harbor"
partner = "Harbor Health"
format = "push"
freshness = "6h"
push = { bearer_key_env = ["HARBOR_KEY"] }
[feed.mapping.fields]
source_id = "id"
name = "name"
state = "state"
postal_code = "zip"
"""


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[dict[str, Any]]:
    def load(store: Store) -> None:
        now = datetime.now(UTC)
        load_bundled_sample(store, now)  # fictional centers in eight metros, with availability
        live = center(
            "harbor",
            "h-1",
            42.3651,
            -71.1040,
            name="Harbor House Detox",
            levels_of_care=["detox"],
            payment=["medicaid"],
            languages=["es"],
        )
        stale = center("harbor", "h-2", 42.3990, -71.1220, name="Harbor North", levels_of_care=["detox", "residential"])
        store.replace_feed(
            "harbor",
            [live, stale],
            [
                observation(
                    live,
                    "detox",
                    "available",
                    beds_available=3,
                    reported_at=now - timedelta(minutes=5),
                    freshness=3600,
                    source="push",
                ),
                observation(
                    stale,
                    "residential",
                    "limited",
                    beds_available=1,
                    reported_at=now - timedelta(hours=9),
                    freshness=3600,
                    source="push",
                ),
            ],
            now=now,
            source="push",
            partial=True,
        )

    # the public routes read the store only: no Celery worker is started
    with open_stack(
        redis_url,
        tmp_path_factory.mktemp("fuzz"),
        REGISTRY,
        prefix="fuzz:",
        extra_env={"HARBOR_KEY": "harbor-key-0123456789abcdef0123"},
        load=load,
        api={"CENTERS_RATE_LIMIT": "10000000"},
    ) as stack:
        ids = sorted(stack.store.feed_members(SAMPLE_FEED) | stack.store.feed_members("harbor"))
        yield {"api": stack.api, "ids": ids}


@pytest.fixture(scope="module")
def public_schema(fuzz_stack: dict[str, Any]) -> Any:
    url = fuzz_stack["api"].url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    schema.config.update(base_url=url, request_timeout=10)
    return schema.include(path=list(PUBLIC_PATHS), method="GET")  # no operator or partner routes


def _located(case: Any, where: tuple[str, Any]) -> Any:
    query = {k: v for k, v in (case.query or {}).items() if k not in ("zip", "lat", "lon")}
    kind, value = where
    query.update({"zip": value} if kind == "zip" else {"lat": value[0], "lon": value[1]})
    case.query = query
    return case


def _stored(case: Any, center_id: str) -> Any:
    case.path_parameters = {"center_id": center_id}
    return case


def strategy(operation: Any, variant: str, ids: list[str]) -> Any:
    if variant == "negative":
        return operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if variant == "located":
        points = st.tuples(st.floats(-85.05, 85.05), st.floats(-180, 180))
        where = st.one_of(st.tuples(st.just("zip"), st.sampled_from(ZIPS)), st.tuples(st.just("point"), points))
        return st.builds(_located, cases, where)
    if variant == "stored":
        return st.builds(_stored, cases, st.sampled_from(ids))
    return cases


# Not ``schemathesis.pytest.from_fixture(...)``: with pytest 9 its lazy schemas fail on the removed
# ``Node._nodeid``. The operation's own Hypothesis strategy does the same generation.
@pytest.mark.parametrize(
    ("path", "variant"),
    [
        *[(path, "positive") for path in PUBLIC_PATHS],
        # invalid requests, for the operations that take parameters (the others have nothing to break)
        ("/v1/centers/near", "negative"),
        ("/v1/centers/{center_id}", "negative"),
        ("/v1/centers/near", "located"),
        ("/v1/centers/{center_id}", "stored"),
    ],
)
def test_public_endpoints_never_5xx_and_match_their_schema(
    public_schema: Any, fuzz_stack: dict[str, Any], path: str, variant: str
) -> None:
    operation = public_schema[path]["GET"]
    codes: Counter[int] = Counter()

    @given(case=strategy(operation, variant, fuzz_stack["ids"]))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=FUZZ_PHASES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
        codes[response.status_code] += 1

    fuzz()
    assert codes, "no request was generated"
    assert max(codes) < 500, codes
    if variant in ("located", "stored"):
        assert codes[200] >= MAX_EXAMPLES // 4, codes  # the variant reaches real answers


def test_the_fuzzed_operations_are_the_public_ones(public_schema: Any) -> None:
    labels = {op.ok().label for op in public_schema.get_all_operations()}
    assert labels == {f"GET {p}" for p in PUBLIC_PATHS}
