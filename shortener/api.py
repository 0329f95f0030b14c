"""HTTP entrypoint: the JSON API, and the redirect hot path as a raw ASGI fast path.

``GET /{code}`` is answered before FastAPI's routing and validation: on this machine a bare
ASGI 302 costs ~33 µs of CPU and a FastAPI route ~140 µs, and the redirect is most of the
traffic. The FastAPI route of the same path documents it and answers what the fast path
leaves (paths that cannot be a code).
"""

# No ``from __future__ import annotations``: the create route's body model is built per router
# (its maxLength is a setting), and FastAPI resolves string annotations in module globals only.
import json
from datetime import timedelta

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.consistency import COMMIT_LSN_HEADER, ReadConsistency
from services.errors import LabError, NotFound
from services.forwarded import client_address, trusted_networks
from services.http import error_responses, lab_error_parts, read_consistency
from shortener.domain import Link, ShortenUrl, is_code_shaped
from shortener.schemas import LinkInfo, LinkOut, create_link_body
from shortener.service import ShortenerService


ERRORS = error_responses({
    400: "the body is not JSON", 404: "no such link", 405: "method not allowed", 409: "the alias is taken",
    410: "the link expired", 422: "the body breaks the schema (the message names the problem)",
    429: "too many creates from this client", 503: "the database did not answer",
})


def build_router(service: ShortenerService) -> APIRouter:
    settings = service.settings
    trusted = trusted_networks(settings.trusted_proxies)
    router = APIRouter()
    CreateLink = create_link_body(settings.max_url_length)

    def short_url(code: str) -> str:
        return f"{settings.public_base}/{code}"

    @router.post("/api/v1/links", status_code=201, response_model=LinkOut,
                 responses={200: {"model": LinkOut}, **ERRORS,
                            **error_responses({403: "the url points at this shortener (its hosts are a setting)"})},
                 summary="Shorten a URL (201 new; 200 when this URL already has a link)")
    async def create_link(body: CreateLink, request: Request, response: Response) -> LinkOut:
        client = client_address(request.client.host if request.client else None,
                                request.headers.get("x-forwarded-for"), trusted)
        cmd = ShortenUrl(body.url, body.alias, timedelta(seconds=body.expires_in) if body.expires_in else None)
        result = await service.shorten(cmd, client)
        if not result.created:
            response.status_code = 200
        elif (token := await service.read_token()) is not None:
            response.headers[COMMIT_LSN_HEADER] = token
        link = result.link
        return LinkOut(code=link.code, short_url=short_url(link.code), url=link.url, expires_at=link.expires_at,
                       delete_token=result.delete_token)

    @router.get("/api/v1/links/{code}", response_model=LinkInfo, responses=ERRORS, summary="A link and its click count")
    async def get_link(code: str, consistency: ReadConsistency = Depends(read_consistency)) -> LinkInfo:
        link = await service.get_link(code, consistency)
        return LinkInfo(code=link.code, short_url=short_url(link.code), url=link.url, created_at=link.created_at,
                        expires_at=link.expires_at, clicks=link.clicks)

    @router.delete("/api/v1/links/{code}", status_code=204,
                   responses={**ERRORS, **error_responses({403: "the delete token does not match"})},
                   summary="Delete a link with the token returned at creation")
    async def delete_link(code: str, x_delete_token: str = Header(..., description="the creation's delete_token")) -> Response:
        await service.delete(code, x_delete_token)
        return Response(status_code=204)

    @router.get("/{code}", status_code=settings.redirect_status, response_class=Response,
                responses={settings.redirect_status: {"description": "redirect to the long URL"}, **ERRORS},
                summary="Redirect (the hot path; served by the fast path in front of this route)")
    async def redirect(code: str) -> Response:
        raise NotFound(f"{code!r} is not a valid code", code="link_not_found")

    return router


class RedirectFastPath:
    """Answers ``GET|HEAD /{code}`` without FastAPI; everything else passes through."""

    def __init__(self, app: ASGIApp, service: ShortenerService) -> None:
        self.app = app
        self.service = service
        self.status = service.settings.redirect_status

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            code = scope["path"][1:]
            if is_code_shaped(code):
                scope["lab.route"] = "/{code}"
                await self._redirect(code, scope["method"] == "HEAD", send)
                return
        await self.app(scope, receive, send)

    async def _redirect(self, code: str, head: bool, send: Send) -> None:
        try:
            link: Link = await self.service.resolve(code)
        except LabError as exc:
            status, payload, extra = lab_error_parts(exc)
            body = json.dumps(payload, separators=(",", ":")).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       *((k.lower().encode(), v.encode()) for k, v in extra.items())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if head else body})
            return
        self.service.clicked(code)
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"location", link.url.encode()), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
