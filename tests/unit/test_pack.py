"""Feed records and link explanations are kept deflated against a fixed dictionary (``store.pack``)."""

from __future__ import annotations

import hashlib

import orjson
from hypothesis import given
from hypothesis import strategies as st

from aggregator.store import _PACK_DICTIONARY_1, pack, unpack


def test_the_dictionary_never_changes() -> None:
    """Stored records were deflated against it: a changed dictionary would make every one unreadable. A new
    dictionary takes a new tag byte, and this one stays for what was stored with it."""
    assert hashlib.sha256(_PACK_DICTIONARY_1).hexdigest() == (
        "6770873ffa2255930f971efa33491e128fa763cdbeeb47c38cb93ead56ddcc5d"
    )


@given(st.binary(max_size=4000))
def test_anything_packed_reads_back_whole(data: bytes) -> None:
    assert unpack(pack(data)) == data


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_json_stored_before_packing_reads_as_it_is(value: object) -> None:
    text = orjson.dumps(value)
    assert unpack(text) == text


def test_a_typical_record_keeps_a_third_of_its_size_or_less() -> None:
    record = (
        b'{"id":"samhsa:5029ab238ccb4969","feed_id":"samhsa","source_id":"5029ab238ccb4969","name":"Rylist Inc",'
        b'"alternate_name":"La Ventana Treatment Programs","external_ids":[],"address":{"address_1":"385 North '
        b'Conejo School Road","address_2":"","city":"Thousand Oaks","state":"CA","postal_code":"91362","country":'
        b'"US"},"latitude":34.1792884,"longitude":-118.8416787,"geo_precision":"feed","geo_source":"samhsa",'
        b'"phones":[],"website":"","status":"active","services":{"levels_of_care":[],"payment":[],"populations":[],'
        b'"languages":[]},"source_url":""}'
    )
    assert len(pack(record)) * 3 <= len(record)
