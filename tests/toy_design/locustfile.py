"""Locust load for the toy design: users who write notes and read them back."""

from __future__ import annotations

import json
import os
import random

from locust import FastHttpUser, constant, task

NOTE = "/api/v1/notes"
_ack_log = open(os.environ["SDLAB_ACK_LOG"], "a") if os.environ.get("SDLAB_ACK_LOG") else None


class NoteWriter(FastHttpUser):
    wait_time = constant(0.05)

    def on_start(self) -> None:
        self.mine: list[int] = []

    @task(int(os.environ.get("SDLAB_WRITE_WEIGHT", "1")) or 1)
    def write(self) -> None:
        with self.client.post(NOTE, json={"text": "hello"}, name=NOTE, catch_response=True) as resp:
            if resp.status_code == 201:
                self.mine.append(resp.json()["id"])
                if _ack_log is not None:
                    _ack_log.write(json.dumps({"id": self.mine[-1]}) + "\n")
                    _ack_log.flush()
            else:
                resp.failure(f"status {resp.status_code}")

    @task(int(os.environ.get("SDLAB_READ_WEIGHT", "1")) or 1)
    def read(self) -> None:
        if self.mine:
            self.client.get(f"{NOTE}/{random.choice(self.mine)}", name=f"{NOTE}/{{id}}")
