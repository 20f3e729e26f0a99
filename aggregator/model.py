"""The canonical record: a Center (one physical site), its services, and Availability observations.

Names follow Open Referral HSDS where one exists. Every partner format is mapped onto these models by
``aggregator.normalize``; the store keeps them as JSON and the API returns them as they are.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

# --------------------------------------------------------------------------------------------------
# Vocabularies


class LevelOfCare(StrEnum):
    DETOX = "detox"
    RESIDENTIAL = "residential"
    INPATIENT = "inpatient"
    PHP = "php"
    IOP = "iop"
    OUTPATIENT = "outpatient"
    OTP = "otp"
    MAT = "mat"
    RECOVERY_HOUSING = "recovery_housing"
    CRISIS = "crisis"
    TELEHEALTH = "telehealth"


class Payment(StrEnum):
    MEDICAID = "medicaid"
    MEDICARE = "medicare"
    PRIVATE = "private"
    SELF_PAY = "self_pay"
    SLIDING_SCALE = "sliding_scale"
    FREE = "free"
    VA = "va"
    MILITARY = "military"
    STATE_FUNDED = "state_funded"
    IHS = "ihs"
    PAYMENT_ASSISTANCE = "payment_assistance"


class Population(StrEnum):
    ADULTS = "adults"
    YOUNG_ADULTS = "young_adults"
    ADOLESCENTS = "adolescents"
    WOMEN = "women"
    MEN = "men"
    PREGNANT = "pregnant"
    PARENTS_WITH_CHILDREN = "parents_with_children"
    VETERANS = "veterans"
    LGBTQ = "lgbtq"
    DEAF_HARD_OF_HEARING = "deaf_hard_of_hearing"
    CO_OCCURRING = "co_occurring"
    HOMELESS = "homeless"
    CRIMINAL_JUSTICE = "criminal_justice"


class AvailabilityStatus(StrEnum):
    AVAILABLE = "available"
    LIMITED = "limited"
    WAITLIST = "waitlist"
    FULL = "full"
    ASSESSMENT_REQUIRED = "assessment_required"
    CLOSED = "closed"
    UNKNOWN = "unknown"


#: statuses under which a person could be taken now (``available_only`` keeps these, fresh only)
OPEN_STATUSES = frozenset({AvailabilityStatus.AVAILABLE, AvailabilityStatus.LIMITED})


class Accepting(StrEnum):
    NEW = "new"
    EXISTING_ONLY = "existing_only"
    NO = "no"


class CenterStatus(StrEnum):
    ACTIVE = "active"
    TEMPORARILY_CLOSED = "temporarily_closed"
    INACTIVE = "inactive"


class GeoPrecision(StrEnum):
    FEED = "feed"
    ROOFTOP = "rooftop"
    STREET = "street"
    POSTAL_CODE = "postal_code"


class Source(StrEnum):
    PULL = "pull"
    SCRAPE = "scrape"
    PUSH = "push"
    OPERATOR = "operator"


class PhoneRole(StrEnum):
    MAIN = "main"
    INTAKE = "intake"
    HOTLINE = "hotline"


# --------------------------------------------------------------------------------------------------
# Records

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ISO_639_1 = re.compile(r"^[a-z]{2}$")
_STATE = re.compile(r"^[A-Z]{2}$")
_ZIP5 = re.compile(r"^\d{5}$")
_ID_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")

Text = Annotated[str, Field(min_length=1, max_length=300)]
BedCount = Annotated[int, Field(ge=0, le=100_000)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ExternalId(_Record):
    system: Annotated[str, Field(min_length=1, max_length=100)]
    value: Annotated[str, Field(min_length=1, max_length=200)]


class Address(_Record):
    address_1: Annotated[str, Field(max_length=200)] = ""
    address_2: Annotated[str, Field(max_length=200)] = ""
    city: Annotated[str, Field(max_length=100)] = ""
    state: str
    postal_code: str
    country: str = "US"

    @field_validator("state")
    @classmethod
    def _two_letters(cls, v: str) -> str:
        if not _STATE.match(v):
            raise ValueError("must be a 2-letter state or territory code")
        return v

    @field_validator("postal_code")
    @classmethod
    def _zip5(cls, v: str) -> str:
        if not _ZIP5.match(v):
            raise ValueError("must be a 5-digit ZIP code string")
        return v


class Phone(_Record):
    number: str
    role: PhoneRole = PhoneRole.MAIN
    #: digits dialled after the number ("ext. 12"), when the partner gave one
    extension: Annotated[str, Field(max_length=10, pattern=r"^\d*$")] = ""

    @field_validator("number")
    @classmethod
    def _e164(cls, v: str) -> str:
        if not _E164.match(v):
            raise ValueError("must be an E.164 number such as +16175551234")
        return v


class Services(_Record):
    levels_of_care: tuple[LevelOfCare, ...] = ()
    payment: tuple[Payment, ...] = ()
    populations: tuple[Population, ...] = ()
    languages: tuple[str, ...] = ()

    @field_validator("levels_of_care", "payment", "populations", "languages", mode="after")
    @classmethod
    def _sorted_unique(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(sorted(set(v)))

    @field_validator("languages")
    @classmethod
    def _iso639(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for code in v:
            if not _ISO_639_1.match(code):
                raise ValueError(f"language {code!r} is not an ISO 639-1 code")
        return v


class Center(_Record):
    """One physical site. ``id`` is ``"{feed_id}:{source_id}"``: stable and linkable."""

    id: str
    feed_id: str
    source_id: str
    name: Text
    alternate_name: Annotated[str, Field(max_length=300)] = ""
    external_ids: tuple[ExternalId, ...] = ()
    address: Address
    latitude: float | None = None
    longitude: float | None = None
    geo_precision: GeoPrecision | None = None
    geo_source: str = ""
    phones: tuple[Phone, ...] = ()
    website: Annotated[str, Field(max_length=500)] = ""
    status: CenterStatus = CenterStatus.ACTIVE
    services: Services = Services()
    source_url: Annotated[str, Field(max_length=1000)] = ""

    @field_validator("feed_id", "source_id")
    @classmethod
    def _id_part(cls, v: str) -> str:
        if not _ID_PART.match(v):
            raise ValueError("must be 1-64 characters of letters, digits, '_', '.', '-'")
        return v

    @field_validator("latitude")
    @classmethod
    def _lat(cls, v: float | None) -> float | None:
        if v is not None and not -90.0 <= v <= 90.0:
            raise ValueError("latitude must be within -90..90")
        return v

    @field_validator("longitude")
    @classmethod
    def _lon(cls, v: float | None) -> float | None:
        if v is not None and not -180.0 <= v <= 180.0:
            raise ValueError("longitude must be within -180..180")
        return v

    @field_validator("website")
    @classmethod
    def _website(cls, v: str) -> str:
        if v in ("http://", "https://"):
            return ""
        if v and not v.lower().startswith(("http://", "https://")):
            v = "https://" + v
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Center:
        if self.id != make_center_id(self.feed_id, self.source_id):
            raise ValueError("id must be '{feed_id}:{source_id}'")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude must be given together")
        if self.latitude is not None and self.geo_precision is None:
            raise ValueError("geo_precision is required with coordinates")
        return self

    @property
    def located(self) -> bool:
        return self.latitude is not None


class Availability(_Record):
    """One observation per (center, level of care, source). Times are aware UTC."""

    center_id: str
    level_of_care: LevelOfCare
    source: Source
    status: AvailabilityStatus
    beds_available: BedCount | None = None
    beds_total: BedCount | None = None
    accepting: Accepting | None = None
    waitlist_size: BedCount | None = None
    #: open intake appointments (SMART Scheduling Links slots): never beds
    appointments_available: BedCount | None = None
    #: the start of the earliest open appointment, aware UTC
    next_appointment_at: datetime | None = None
    notes: Annotated[str, Field(max_length=500)] = ""
    reported_at: datetime
    checked_at: datetime
    changed_at: datetime | None = None
    #: how long after ``reported_at`` this observation may be shown as live
    freshness_seconds: Annotated[int, Field(gt=0, le=90 * 86400)]
    reported_by: Annotated[str, Field(max_length=100)] = ""

    @field_validator("reported_at", "checked_at", "changed_at", "next_appointment_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and (v.tzinfo is None or v.utcoffset() is None):
            raise ValueError("must be timezone-aware")
        return v

    @model_validator(mode="after")
    def _counts(self) -> Availability:
        if self.beds_available is not None and self.beds_total is not None and self.beds_available > self.beds_total:
            raise ValueError(f"beds_available ({self.beds_available}) exceeds beds_total ({self.beds_total})")
        return self


def make_center_id(feed_id: str, source_id: str) -> str:
    return f"{feed_id}:{source_id}"


# --------------------------------------------------------------------------------------------------
# Rejections: validation that names the field and the reason


class Rejection(_Record):
    """Why one record (or one field of it) was not accepted."""

    record: str = ""
    field: str
    reason: str


def rejections_from(error: ValidationError, record: str = "") -> list[Rejection]:
    """Turn pydantic's errors into ``Rejection``s naming the dotted field path and the reason."""
    out = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"]) or "record"
        msg = item["msg"].removeprefix("Value error, ")
        out.append(Rejection(record=record, field=loc, reason=msg))
    return out
