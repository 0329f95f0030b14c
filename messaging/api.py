"""HTTP entrypoint: the REST API (login, conversations, history, presence) and the chat page."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from messaging.domain import MAX_MEMBERS, MAX_TITLE, Conversation, Message
from messaging.service import MessagingService
from services.auth import USER_NAME, USER_NAME_RULE, TokenSigner, check_user_name, current_user

PAGE = Path(__file__).parent / "static" / "chat.html"


class CreateConversation(BaseModel):
    members: list[str] = Field(..., max_length=MAX_MEMBERS,
                               description=f"user names ({USER_NAME_RULE}); the caller is added if missing",
                               json_schema_extra={"items": {"type": "string", "pattern": USER_NAME.pattern}})
    title: str | None = Field(None, min_length=1, max_length=MAX_TITLE)


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
    forbidden = {403: {"description": "not a member of the conversation"}}
    auth = {401: {"description": "no token, or a bad one"}}

    @router.post("/api/v1/conversations", status_code=201, response_model=ConversationOut, responses=auth)
    async def create_conversation(body: CreateConversation, user: str = Depends(user_dep)) -> ConversationOut:
        return _conversation(await service.create_conversation(user, body.members, body.title))

    @router.get("/api/v1/conversations", response_model=Conversations, responses=auth)
    async def my_conversations(limit: int = Query(100, ge=1, le=500), user: str = Depends(user_dep)) -> Conversations:
        return Conversations(items=[_conversation(c) for c in await service.my_conversations(user, limit)])

    @router.get("/api/v1/conversations/{conversation_id}/messages", response_model=Messages,
                responses={**auth, **forbidden})
    async def history(conversation_id: str, after_seq: int = Query(0, ge=0, le=2**62),
                      limit: int = Query(100, ge=1, le=1000), user: str = Depends(user_dep)) -> Messages:
        found = await service.history(user, conversation_id, after_seq, limit)
        return Messages(messages=[_message(m) for m in found])

    @router.get("/api/v1/presence", responses=auth)
    async def presence(users: str = Query(..., description="comma-separated user names", max_length=40_000),
                       _: str = Depends(user_dep)) -> dict[str, bool]:
        names = [check_user_name(u) for u in dict.fromkeys(p.strip() for p in users.split(",")) if u]
        return await service.presence(names)

    @router.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page)

    return router
