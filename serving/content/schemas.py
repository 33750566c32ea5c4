"""Request and response bodies of the content API (explicit structs, never ORM objects)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from domain.content import DESCRIPTION_MAX, SLUG_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX

ContentType = Literal["video", "audio", "image", "article", "episode"]
ContentStatus = Literal["draft", "in_review", "scheduled", "published", "archived"]
TitleText = Annotated[str, Meta(max_length=TITLE_MAX)]
DescriptionText = Annotated[str, Meta(max_length=DESCRIPTION_MAX)]
Slug = Annotated[str, Meta(min_length=1, max_length=SLUG_MAX)]
Tag = Annotated[str, Meta(min_length=1, max_length=TAG_MAX)]
Tags = Annotated[list[Tag], Meta(max_length=TAGS_MAX)]


class Title(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Text per language; at least one of `ar`, `en`. In an update, `null` removes a language."""

    ar: TitleText | None | UnsetType = UNSET
    en: TitleText | None | UnsetType = UNSET


class Description(Struct, forbid_unknown_fields=True, omit_defaults=True):
    ar: DescriptionText | None | UnsetType = UNSET
    en: DescriptionText | None | UnsetType = UNSET


def localized(value: Title | Description | None) -> dict[str, str | None]:
    if value is None:
        return {}
    return {f: getattr(value, f) for f in value.__struct_fields__ if getattr(value, f) is not UNSET}


class ContentCreate(Struct, forbid_unknown_fields=True):
    type: ContentType
    title: Title
    description: Description | None = None
    slug: Slug | None = None
    tags: Tags = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class ContentUpdate(Struct, forbid_unknown_fields=True):
    """Partial update: only the fields present change. Send `If-Match` with the ETag you read."""

    type: ContentType | UnsetType = UNSET
    title: Title | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    status: Literal["draft", "in_review", "archived"] | UnsetType = UNSET

    def changes(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is UNSET:
                continue
            out[name] = localized(value) if isinstance(value, (Title, Description)) else value
        return out


class ScheduleRequest(Struct, forbid_unknown_fields=True):
    publish_at: datetime


class ContentOut(Struct):
    id: uuid.UUID
    type: str
    title: dict[str, str]
    description: dict[str, str]
    slug: str
    status: str
    tags: list[str]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    publish_at: datetime | None = None
    published_at: datetime | None = None
    created_by: uuid.UUID | None = None
    updated_by: uuid.UUID | None = None


class ContentPage(Struct):
    items: list[ContentOut]
    next_cursor: str | None = None
