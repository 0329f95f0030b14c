"""``messaging.slow-consumer``: a tenth of the readers stop reading for 40% of the run.

Whether one slow client can slow down everyone else, or grow the gateway's memory without bound.
"""

from __future__ import annotations

from loadtests.messaging.analysis import median_p99, p99, peak_rss, worst_second_p99
from loadtests.messaging.samples import DELIVER_SLOW
from services.lab.analysis import ms
from services.lab.experiments.experiment import (
    Check,
    Experiment,
    Outcome,
    Variant,
    VariantResult,
)
from services.lab.measure.load import LoadSpec

SLOW_OPTIONS = {"group_sizes": "100", "group_share": "0.5", "text_bytes": "2000"}


def _stall(r: VariantResult) -> tuple[float, float]:
    """(start, end) in the run's seconds of the readers' stall: the generator's slow_from and
    slow_until (0.3 and 0.7 of the sending time), counted from the first second with sends."""
    first = min((row["t"] for row in r.load.timeline if row.get("requests")), default=0)
    length = r.summary["spec"]["duration_s"]
    return first + 0.3 * length, first + 0.7 * length


def _slow_consumer(results: dict[str, VariantResult]) -> Outcome:
    base, slow = results["everyone reads"], results["a tenth stop reading"]
    cut = slow.summary["server"].get("ws_slow_disconnects_total", 0.0)
    start, end = _stall(slow)
    p99_base = median_p99(base.load.timeline, *_stall(base)) or 0.0
    p99_slow = median_p99(slow.load.timeline, start, end) or 0.0
    back = worst_second_p99(slow.load.timeline, end, end + 5)
    rss_base, rss_slow = peak_rss(base.load.timeline, "messaging-gateway"), peak_rss(slow.load.timeline, "messaging-gateway")
    checks = [
        Check("slow readers were disconnected by the send-buffer bound", cut > 0, f"{cut:.0f} disconnects (4008)"),
        Check("while they stall, everyone else's delivery p99 unchanged (median second, within 1.5x + 5 ms)",
              p99_slow <= 1.5 * p99_base + 5, f"{ms(p99_slow, 1)} vs {ms(p99_base, 1)}"),
        Check("gateway memory bounded (peak within 64 MiB of the baseline)", rss_slow <= rss_base + 64,
              f"{rss_slow:.0f} MiB vs {rss_base:.0f} MiB"),
    ]
    claim = (f"A tenth of the readers stopped reading for {end - start:.0f} s: the gateways cut {cut:.0f} of their "
             f"connections at the send-buffer bound (close 4008; they resumed later and got everything), everyone "
             f"else's delivery p99 meanwhile was {ms(p99_slow, 1)} against {ms(p99_base, 1)} with everyone reading, and the "
             f"gateways peaked at {rss_slow:.0f} MiB against {rss_base:.0f} MiB. When the stalled readers all came back "
             f"at once, the worst second's p99 for everyone else was {ms(back, 1)}: their resumes replay a backlog each.")
    return Outcome(checks, claim, {"slow readers' delivery p99 (after they resumed)": ms(p99(slow, DELIVER_SLOW), 1),
                                   "everyone else, worst second after the stall": ms(back, 1)})


SLOW_CONSUMER = Experiment(
    name="messaging.slow-consumer",
    title="a tenth of the readers stop reading for 40% of the run",
    question="Can one slow client slow down everyone else, or grow the gateway's memory without bound?",
    load=LoadSpec(design="messaging", generator="script", rate=100, duration_s=30, seed_count=200,
                  options=SLOW_OPTIONS),
    variants=[Variant("everyone reads"),
              Variant("a tenth stop reading", load={"options": {**SLOW_OPTIONS, "slow_readers": "0.1"}})],
    evaluate=_slow_consumer,
    columns=[("delivery p99 (readers)", lambda r: ms(p99(r), 1)),
             ("gateway peak RSS", lambda r: f"{peak_rss(r.load.timeline, 'messaging-gateway'):.0f} MiB")],
)
