"""The toy design's plug into the engine: a declaration, a seeder, a check. Loaded with
``SDLAB_DESIGN_MODULES=tests.toy_design.plugin`` (it is installed as no entry point)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from services.lab.contract import (
    Check,
    Design,
    DesignPlugin,
    LoadResult,
    LoadSpec,
    RunContext,
    Verification,
)

HERE = Path(__file__).resolve().parent


class ToyPlugin(DesignPlugin):
    design = Design(
        name="toy",
        app="tests.toy_design.app:create_app",
        env_prefix="TOY_",
        needs=(),
        caddy_site=HERE / "toy.caddy",
        port=8093,
        instances=1,  # its notes live in the instance's memory: a second one would not see them
    )
    locustfile = HERE / "locustfile.py"

    def seed(self, ctx: RunContext, spec: LoadSpec, previous: dict | None = None) -> dict:
        """``seed_count`` notes written through the balancer (none again on the same stack)."""
        if previous is not None:
            return previous
        with httpx.Client(base_url=ctx.base_url, timeout=5) as client:
            ids = [client.post("/api/v1/notes", json={"text": f"seed {i}"}).raise_for_status().json()["id"]
                   for i in range(spec.seed_count)]
        return {"host": ctx.base_url, "notes": ids}

    def verify(self, ctx: RunContext, result: LoadResult) -> Verification:
        """Every note acknowledged with 201 reads back."""
        acks = ctx.out_dir / "acks.jsonl"
        ids = [json.loads(line)["id"] for line in acks.read_text().splitlines()] if acks.exists() else []
        with httpx.Client(base_url=ctx.base_url, timeout=5) as client:
            lost = [i for i in ids if client.get(f"/api/v1/notes/{i}").status_code != 200]
        figures = {"acknowledged": len(ids), "lost": len(lost)}
        return Verification(figures, [Check("no acknowledged note lost", not lost,
                                            f"{len(ids)} acknowledged, {len(lost)} lost")])


PLUGIN = ToyPlugin()
