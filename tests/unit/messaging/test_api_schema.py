"""Messaging's OpenAPI document states the rules its REST handlers enforce; the member limit is
one the schema can state (the others only, at most MAX_MEMBERS - 1)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from messaging import domain
from messaging.api import CONVERSATION_ID, PRESENCE_USERS, TITLE, build_router
from messaging.config import MessagingSettings
from messaging.domain import MAX_MEMBERS, Conversation
from services.app import create_service_app
from services.auth import USER_NAME, TokenSigner, sessions_router


class RecordingService:
    """Only what create_conversation needs: the domain's rule, no store."""

    async def create_conversation(self, user: str, members: list[str], title: str | None) -> Conversation:
        return Conversation("0" * 32, domain.conversation_members(user, members), title,
                            datetime.now(timezone.utc))


@pytest.fixture
def client():
    settings = MessagingSettings()
    signer = TokenSigner(settings.token_secret.get_secret_value(), ttl_s=settings.token_ttl_s)
    app = create_service_app(service="messaging", settings=settings,
                             routers=[sessions_router(signer), build_router(RecordingService(), signer)])
    with TestClient(app) as client:
        token = client.post("/api/v1/sessions", json={"user": "alice"}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_the_openapi_document_states_the_rules_the_handlers_enforce(client):
    doc = client.get("/openapi.json").json()
    members = doc["components"]["schemas"]["CreateConversation"]["properties"]["members"]
    assert members["maxItems"] == MAX_MEMBERS - 1
    assert members["items"]["pattern"] == USER_NAME.pattern
    title = doc["components"]["schemas"]["CreateConversation"]["properties"]["title"]
    assert next(s for s in title["anyOf"] if s.get("type") == "string")["pattern"] == TITLE
    history = doc["paths"]["/api/v1/conversations/{conversation_id}/messages"]["get"]["parameters"]
    assert next(p for p in history if p["name"] == "conversation_id")["schema"]["pattern"] == CONVERSATION_ID
    presence = doc["paths"]["/api/v1/presence"]["get"]["parameters"]
    assert next(p for p in presence if p["name"] == "users")["schema"]["pattern"] == PRESENCE_USERS


def test_the_most_members_the_schema_admits_make_a_full_conversation(client):
    others = [f"u{i}" for i in range(MAX_MEMBERS - 1)]
    response = client.post("/api/v1/conversations", json={"members": others})
    assert response.status_code == 201, response.text
    assert len(response.json()["members"]) == MAX_MEMBERS


def test_one_name_more_than_the_schema_admits_is_422_even_with_the_caller_among_them(client):
    names = ["alice", *(f"u{i}" for i in range(MAX_MEMBERS - 1))]
    response = client.post("/api/v1/conversations", json={"members": names})
    assert response.status_code == 422
    assert "members" in response.json()["error"]["message"]
