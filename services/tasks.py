"""Background tasks owned by a resource: started in its start(), cancelled in its stop()."""

from __future__ import annotations

import asyncio
import contextlib

from services.logging import get_logger

log = get_logger(__name__)


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has finished unwinding (its finally blocks ran)."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class BackgroundLoop:
    """A lifespan resource that runs :meth:`step` over and over in a task of its own.

    An exception listed in ``transient`` (a part that is down for now) is logged and pauses the
    loop ``pause_s``; it never ends it, so the work resumes by itself when the part is back. Any
    other exception is a bug: it is logged with its traceback and the loop goes on after a
    pause too, since a loop that dies silently leaves its service up and doing nothing.
    """

    critical = False
    transient: tuple[type[BaseException], ...] = ()
    pause_s = 0.5

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task | None = None
        self._stopping = False  # set by a loop that finishes its step before it stops (see ConsumerLoop)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _forever(self) -> None:
        while not self._stopping:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except self.transient as exc:
                log.warning("background_loop_paused", loop=self.name, error=repr(exc)[:200])
                await asyncio.sleep(self.pause_s)
            except Exception:  # a bug: shout, then keep the loop alive
                log.exception("background_loop_failed", loop=self.name)
                await asyncio.sleep(max(self.pause_s, 1.0))

    async def step(self) -> None:
        raise NotImplementedError

    def health_checks(self) -> dict:
        return {}
