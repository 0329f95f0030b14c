"""After a run: what was acknowledged against what is stored, and what each reader received.

Per conversation (Jepsen's set checker, simplified, plus order):
- every acknowledged message is in the history exactly once, with the seq its ack named;
- the history's seqs are 1..N, contiguous;
- every reader received each message after its starting position once, in order, up to the end
  of the history (a reader that fell behind resumes and must still catch up).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from pathlib import Path

from loadtests.messaging.seed import CONCURRENCY
from services.lab import retry
from services.lab.analysis import read_jsonl
from services.lab.contract import Check

PAGE = 1000


async def histories(base_url: str, seed: dict, conversation_ids: set[str]) -> dict[str, list[dict]]:
    """Each conversation's whole history, read by one of its members."""
    tokens = {u["user"]: u["token"] for u in seed["users"]}
    readers = {c["id"]: tokens[c["members"][0]] for c in seed["conversations"] if c["id"] in conversation_ids}
    gate = asyncio.Semaphore(CONCURRENCY)
    async with retry.client(base_url=base_url, timeout=30) as client:
        async def history(conversation_id: str) -> tuple[str, list[dict]]:
            found, after = [], 0
            async with gate:
                while True:
                    response = await client.get(f"/api/v1/conversations/{conversation_id}/messages",
                                                params={"after_seq": after, "limit": PAGE},
                                                headers={"Authorization": f"Bearer {readers[conversation_id]}"})
                    response.raise_for_status()
                    page = response.json()["messages"]
                    found += page
                    if len(page) < PAGE:
                        return conversation_id, found
                    after = page[-1]["seq"]

        return dict(await asyncio.gather(*(history(c) for c in readers)))


def check_history(acks: list[dict], stored: dict[str, list[dict]]) -> dict:
    acknowledged = [a for a in acks if a["event"] == "acknowledged"]
    by_id: dict[str, Counter] = defaultdict(Counter)
    seq_of: dict[tuple[str, str], int] = {}
    gaps = []
    for conversation_id, messages in stored.items():
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            gaps.append(conversation_id)
        for m in messages:
            by_id[conversation_id][m["message_id"]] += 1
            seq_of[(conversation_id, m["message_id"])] = m["seq"]
    lost = [a for a in acknowledged if by_id[a["conversation_id"]][a["message_id"]] == 0]
    doubled = [a for a in acknowledged if by_id[a["conversation_id"]][a["message_id"]] > 1]
    wrong_seq = [a for a in acknowledged if a.get("seq") is not None
                 and seq_of.get((a["conversation_id"], a["message_id"])) not in (None, a["seq"])]
    # A resend acked twice names one message: count messages, not acks.
    unique = {(a["conversation_id"], a["message_id"]) for a in acknowledged}
    return {"attempted": sum(1 for a in acks if a["event"] == "attempted"),
            "acknowledged": len(unique), "rejected": sum(1 for a in acks if a["event"] == "rejected"),
            "lost": len({(a["conversation_id"], a["message_id"]) for a in lost}),
            "stored_twice": len({(a["conversation_id"], a["message_id"]) for a in doubled}),
            "ack_seq_mismatch": len(wrong_seq), "conversations_with_seq_gaps": len(gaps),
            "lost_examples": [a["client_msg_id"] for a in lost[:5]]}


def check_readers(readers: list[dict], stored: dict[str, list[dict]]) -> dict:
    expected = received = duplicates = out_of_order = missing = 0
    behind: list[str] = []
    for reader in readers:
        for conversation_id, (base, last, got, dups, ooo) in reader["positions"].items():
            end = len(stored.get(conversation_id, [])) or base
            expected += max(0, end - base)
            received += got
            duplicates += dups
            out_of_order += ooo
            if last < end:  # the unbroken run stops short of the end: some seqs never came
                missing += max(0, end - base - got)
                behind.append(f"{reader['user']}@{conversation_id[:8]}: {last} of {end}")
    return {"deliveries_expected": expected, "delivered": received, "delivered_twice": duplicates,
            "out_of_order": out_of_order, "not_delivered": missing, "reconnects": sum(r["reconnects"] for r in readers),
            "not_delivered_examples": behind[:5]}


def verify(base_url: str, out_dir: Path) -> dict:
    seed = json.loads((out_dir / "seed.json").read_text())
    acks = read_jsonl(out_dir / "acks.jsonl")
    readers_path = out_dir / "readers.json"
    readers = json.loads(readers_path.read_text()) if readers_path.exists() else []
    active = {a["conversation_id"] for a in acks}
    active |= {c for r in readers for c, row in r["positions"].items() if row[2]}
    stored = asyncio.run(histories(base_url, seed, active))
    return {**check_history(acks, stored), **check_readers(readers, stored)}


def checks(figures: dict) -> list[Check]:
    f = figures
    found = [
        Check("every acknowledged message stored exactly once", f["lost"] == 0 and f["stored_twice"] == 0,
              f"{f['acknowledged']} acknowledged, {f['lost']} lost, {f['stored_twice']} stored twice"
              + (f"; lost e.g. {', '.join(f['lost_examples'])}" if f["lost_examples"] else "")),
        Check("seqs contiguous from 1 in every conversation, each ack's seq the stored one",
              f["conversations_with_seq_gaps"] == 0 and f["ack_seq_mismatch"] == 0,
              f"{f['conversations_with_seq_gaps']} conversations with gaps, {f['ack_seq_mismatch']} acks with another seq"),
    ]
    if f["deliveries_expected"]:
        found.append(Check(
            "every reader received every message once, in order",
            f["not_delivered"] == 0 and f["delivered_twice"] == 0 and f["out_of_order"] == 0,
            f"{f['delivered']} of {f['deliveries_expected']} delivered, {f['not_delivered']} missing, "
            f"{f['delivered_twice']} twice, {f['out_of_order']} out of order, {f['reconnects']} reconnects"
            + (f"; behind: {'; '.join(f['not_delivered_examples'])}" if f["not_delivered_examples"] else "")))
    return found
