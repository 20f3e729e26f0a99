"""The store's command packer (hiredis, in C) writes every command byte for byte as redis-py's own does, and
refuses what redis-py refuses, with redis-py's error."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from aggregator.store import _COMMANDS, connect


def redis_py(*args: object) -> bytes:
    encode = redis.connection.Encoder("utf-8", "strict", False).encode
    python = redis.connection.PythonRespSerializer(6000, encode)
    return b"".join(bytes(c) for c in python.pack(*args))


_ARG = st.binary(max_size=40) | st.text(max_size=20) | st.integers() | st.floats(allow_nan=False)


@given(st.sampled_from(["HSET", b"EVALSHA", "GEOADD"]), st.lists(_ARG, max_size=12))
def test_every_command_is_packed_as_redis_py_packs_it(name: str | bytes, args: list[object]) -> None:
    assert b"".join(_COMMANDS.pack(name, *args)) == redis_py(name, *args)


def test_a_command_of_two_words_and_a_memoryview_are_packed_alike() -> None:
    assert b"".join(_COMMANDS.pack("CLIENT SETNAME", "worker-1")) == redis_py("CLIENT SETNAME", "worker-1")
    assert b"".join(_COMMANDS.pack("SET", "k", memoryview(b"v" * 10))) == redis_py("SET", "k", b"v" * 10)


@pytest.mark.parametrize("bad", [True, None, object()])
def test_what_redis_py_refuses_is_refused_with_its_error(bad: object) -> None:
    with pytest.raises(redis.DataError):
        _COMMANDS.pack("SET", "k", bad)


def test_the_store_s_clients_pack_with_it() -> None:
    client = connect("redis://127.0.0.1:1/0")  # no connection is made until a command is sent
    assert client.connection_pool.connection_kwargs["command_packer"] is _COMMANDS
    assert b"".join(_COMMANDS.pack("CLIENT\tSETNAME", "w")) == redis_py("CLIENT\tSETNAME", "w")
