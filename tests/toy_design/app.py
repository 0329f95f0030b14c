"""The toy design's service: notes kept in the instance's memory (it needs no part of the stack)."""

from __future__ import annotations

import itertools

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from services.app import create_service_app
from services.settings import ServiceSettings


class ToySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOY_", extra="ignore")


class Note(BaseModel):
    text: str


def create_app():
    settings = ToySettings()
    notes: dict[int, str] = {}
    ids = itertools.count(1)
    router = APIRouter()

    @router.post("/api/v1/notes", status_code=201)
    async def add(note: Note) -> dict:
        note_id = next(ids)
        notes[note_id] = note.text
        return {"id": note_id}

    @router.get("/api/v1/notes/{note_id}")
    async def read(note_id: int) -> dict:
        if note_id not in notes:
            raise HTTPException(404, "no such note")
        return {"id": note_id, "text": notes[note_id]}

    return create_service_app(service="toy", settings=settings, routers=[router], description="The toy design.")
