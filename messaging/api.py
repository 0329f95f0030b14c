"""HTTP entrypoint: the REST API (login, conversations, history, presence) and the chat page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Path as PathParam, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator

from messaging.domain import MAX_MEMBERS, MAX_TITLE, Conversation, Message
from messaging.service import MessagingService
from services.auth import USER_NAME, USER_NAME_RULE, TokenSigner, check_user_name, current_user
from services.errors import InvalidInput
from services.consistency import ReadConsistency
from services.http import error_responses, read_consistency

PAGE = Path(__file__).parent / "static" / "chat.html"
MAX_PRESENCE = 1000
_NAME = USER_NAME.pattern.removeprefix("^").removesuffix("$")
# The contracts the handlers enforce, stated in the OpenAPI document so that clients (and the
# fuzz test) can tell a valid request from an invalid one.
PRESENCE_USERS = f"^{_NAME}(,{_NAME}){{0,{MAX_PRESENCE - 1}}}$"
CONVERSATION_ID = "^[0-9a-f]{32}$"  # domain.new_conversation_id: uuid4().hex
TITLE = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # not blank; no NUL (PostgreSQL text cannot hold one)
# On the string itself, not beside the anyOf with null: generators then need not filter.
Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE, json_schema_extra={"pattern": TITLE})]


class CreateConversation(BaseModel):
    # The others only, at most MAX_MEMBERS - 1: the caller joins too, so no list the schema admits
    # makes more than MAX_MEMBERS members (which names are distinct from the caller's depends on
    # who calls, a rule no schema can state).
    members: list[str] = Field(..., max_length=MAX_MEMBERS - 1,
                               description=f"user names ({USER_NAME_RULE}), at most {MAX_MEMBERS - 1}; the caller "
                                           f"is added if missing (a conversation holds at most {MAX_MEMBERS})",
                               json_schema_extra={"items": {"type": "string", "pattern": USER_NAME.pattern}})
    title: Title | None = Field(None, description="not blank, no NUL character")

    @field_validator("title")
    @classmethod
    def _storable(cls, title: str | None) -> str | None:
        if title is not None and "\x00" in title:
            raise ValueError("a title cannot contain the NUL character")
        return title


class ConversationOut(BaseModel):
    id: str
    members: list[str]
    title: str | None
    created_at: datetime
    last_seq: int


class MessageOut(BaseModel):
    conversation_id: str
    seq: int
    message_id: str
    sender: str
    text: str
    sent_at: datetime


class Messages(BaseModel):
    messages: list[MessageOut]


class Conversations(BaseModel):
    items: list[ConversationOut]


def _conversation(c: Conversation) -> ConversationOut:
    return ConversationOut(id=c.id, members=list(c.members), title=c.title, created_at=c.created_at,
                           last_seq=c.last_seq)


def _message(m: Message) -> MessageOut:
    return MessageOut(conversation_id=m.conversation_id, seq=m.seq, message_id=m.message_id, sender=m.sender,
                      text=m.text, sent_at=m.sent_at)


def build_router(service: MessagingService, signer: TokenSigner) -> APIRouter:
    router = APIRouter(tags=["messaging"])
    page = PAGE.read_text(encoding="utf-8")
    user_dep = current_user(signer)
    errors = {401: "no token, or a bad one", 422: "invalid parameters, named in the message",
              503: "the database (or, for presence, Redis) is unavailable; retry"}
    auth = error_responses(errors)
    with_body = error_responses({400: "the body is not JSON", **errors})
    forbidden = error_responses({403: "not a member of the conversation, or no such conversation", **errors})

    @router.post("/api/v1/conversations", status_code=201, response_model=ConversationOut, responses=with_body)
    async def create_conversation(body: CreateConversation, user: str = Depends(user_dep)) -> ConversationOut:
        return _conversation(await service.create_conversation(user, body.members, body.title))

    @router.get("/api/v1/conversations", response_model=Conversations, responses=auth)
    async def my_conversations(limit: int = Query(100, ge=1, le=500), user: str = Depends(user_dep)) -> Conversations:
        return Conversations(items=[_conversation(c) for c in await service.my_conversations(user, limit)])

    @router.get("/api/v1/conversations/{conversation_id}/messages", response_model=Messages,
                responses=forbidden)
    async def history(conversation_id: str = PathParam(..., pattern=CONVERSATION_ID),
                      after_seq: int = Query(0, ge=0, le=2**62),
                      limit: int = Query(100, ge=1, le=1000), user: str = Depends(user_dep),
                      consistency: ReadConsistency = Depends(read_consistency)) -> Messages:
        found = await service.history(user, conversation_id, after_seq, limit, consistency)
        return Messages(messages=[_message(m) for m in found])

    @router.get("/api/v1/presence", responses=auth)
    async def presence(users: str = Query(..., description=f"comma-separated user names, at most {MAX_PRESENCE}",
                                          json_schema_extra={"pattern": PRESENCE_USERS}),
                       _: str = Depends(user_dep)) -> dict[str, bool]:
        names = users.split(",")
        if len(names) > MAX_PRESENCE:
            raise InvalidInput(f"ask for at most {MAX_PRESENCE} users at a time, not {len(names)}",
                               code="too_many_users")
        return await service.presence([check_user_name(u) for u in dict.fromkeys(names)])

    @router.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page)

    return router
