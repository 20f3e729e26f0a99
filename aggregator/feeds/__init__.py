"""Format adapters: one module per format, each ``parse(body: bytes, mapping) -> list[raw record]``.

Pure: no I/O, no clock. A raw record is the dict described in ``aggregator.normalize``.
"""
