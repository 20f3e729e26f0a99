"""A place of one record is composed from the record's stored JSON (``facility.compose_alone``): byte for byte what
``facility.compose`` gives, or nothing (then compose runs)."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import facility
from aggregator.model import (
    Address,
    Center,
    CenterStatus,
    ExternalId,
    LevelOfCare,
    Payment,
    Phone,
    PhoneRole,
    Population,
)

_WORDS = st.text(alphabet="abc XYZ-é", max_size=12).map(str.strip)
_PHONES = st.lists(
    st.builds(
        Phone,
        number=st.sampled_from(["+16175550100", "+16175550199", "+17875550100"]),
        role=st.sampled_from(list(PhoneRole)),
        extension=st.sampled_from(["", "101", "205"]),
    ),
    max_size=4,
)
_IDS = st.lists(
    st.builds(ExternalId, system=st.sampled_from(["samhsa", "npi"]), value=st.sampled_from(["1", "2"])), max_size=3
)


@st.composite
def _centers(draw: st.DrawFn) -> Center:
    located = draw(st.booleans())
    return Center(
        id="feed:1",
        feed_id="feed",
        source_id="1",
        name=draw(_WORDS.filter(bool)),
        alternate_name=draw(_WORDS),
        external_ids=tuple(draw(_IDS)),
        address=Address(address_1=draw(_WORDS), city=draw(_WORDS), state="MA", postal_code="02139"),
        latitude=draw(st.floats(-60, 60)) if located else None,
        longitude=draw(st.floats(-170, 170)) if located else None,
        geo_precision=draw(st.sampled_from(["feed", "rooftop", "postal_code"])) if located else None,
        phones=tuple(draw(_PHONES)),
        website=draw(st.sampled_from(["", "https://example.org"])),
        status=draw(st.sampled_from(list(CenterStatus))),
        services={
            "levels_of_care": draw(st.lists(st.sampled_from(list(LevelOfCare)), max_size=4)),
            "payment": draw(st.lists(st.sampled_from(list(Payment)), max_size=4)),
            "populations": draw(st.lists(st.sampled_from(list(Population)), max_size=3)),
            "languages": draw(st.lists(st.sampled_from(["en", "es", "zh"]), max_size=3)),
        },
    )


@given(_centers(), st.integers(0, 20))
@settings(max_examples=300)
def test_a_record_alone_composes_from_its_json_as_compose_gives_it(center: Center, authority: int) -> None:
    member = facility.Member(center, authority)
    alone = facility.compose_alone(center.id, member, center.model_dump_json().encode())
    composed = orjson.dumps(facility.compose(center.id, [member]))
    if alone is not None:
        assert orjson.dumps(alone) == composed
    else:  # only a record compose would change: a phone line or an identifier twice
        lines = [(p.number, p.role, p.extension) for p in center.phones]
        ids = [(x.system, x.value) for x in center.external_ids]
        assert len(set(lines)) < len(lines) or len(set(ids)) < len(ids)


def test_a_record_that_did_not_found_the_facility_is_composed() -> None:
    center = Center(
        id="feed:2", feed_id="feed", source_id="2", name="A", address=Address(state="MA", postal_code="02139")
    )
    assert facility.compose_alone("feed:1", facility.Member(center), center.model_dump_json().encode()) is None
