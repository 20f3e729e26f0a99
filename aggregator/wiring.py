"""The service's parts built from its settings, each in one place: the fetcher, the geocoder, the pipeline.

The worker, the API, `centers ingest`, `centers near` and `centers feed try` build them here, so a new
setting reaches all of them at once. Tests may build the parts directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from aggregator.fetch import Fetcher
    from aggregator.geocode import Geocoder
    from aggregator.ingest import Pipeline
    from aggregator.store import Store


def fetcher_for(settings: Settings) -> Fetcher:
    """The one HTTP client of a process: our User-Agent, the destination checks (aggregator/fetch.py)."""
    from aggregator.fetch import Fetcher, new_session

    return Fetcher(new_session(settings.user_agent))


def geocoder_for(settings: Settings, store: Store, *, retries: int | None = None) -> Geocoder | None:
    """The cached, rate-limited geocoder, or None when CENTERS_GEOCODER is 'none'. ``retries``: transient
    errors retried within one lookup (an operator on a call is asked once: 0)."""
    from aggregator.geocode import Geocoder, GeocoderConfig

    config = GeocoderConfig.from_settings(settings)
    if not config.enabled:
        return None
    if retries is not None:
        config = dataclasses.replace(config, retries=retries)
    return Geocoder(store, config)


def pipeline_for(
    settings: Settings,
    store: Store,
    *,
    geocoder: Geocoder | None = None,
    fetcher: Fetcher | None = None,
    environ: Mapping[str, str] | None = None,
) -> Pipeline:
    """A feed's runs, pushes and releases: the store, the fetcher, the geocoder (``geocoder_for`` when not
    given) and the environment the feeds' credentials are read from (the process's when not given)."""
    from aggregator.ingest import Pipeline

    return Pipeline(
        store,
        fetcher or fetcher_for(settings),
        geocoder=geocoder if geocoder is not None else geocoder_for(settings, store),
        environ=dict(os.environ) if environ is None else environ,
    )
