"""docs/shortener.md's figures and where in their evidence each one is read (see tests/unit/doc_figures.py)."""

from tests.unit.doc_figures import Figure

DOC = "shortener.md"
OFF, ON = 'variants["cache off"]', 'variants["cache on"]'
CAP = 'variants["{} req-s{}"]'
KILLED = 'variants["one of three killed"]'
PAUSED = 'variants["postgres paused"]'
REDIS = 'variants["redis killed"]'
COST = "shortener/cost/{}"
WIN = "{v}.fault_windows[0].end_s - {v}.fault_windows[0].start_s"  # how long a fault lasted


def cap(rate: int, again: bool = False) -> str:
    return CAP.format(rate, " again" if again else "")


FIGURES = [
    # E1: the cache, PostgreSQL on a 0.05-core budget
    Figure(DOC, "E1", "hit ratio **100%**", ('facts["hit ratio (on)"]#0',)),
    Figure(DOC, "E1", "PostgreSQL reads **537/s → 0/s**", ('facts["db reads/s (off, on)"]#0',
                                                           'facts["db reads/s (off, on)"]#1')),
    Figure(DOC, "E1", "throttled in **100%** of periods", ('facts["PostgreSQL CPU (off)"]#2',)),
    Figure(DOC, "E1", "**0.024 of 0.05 core**", ('facts["PostgreSQL CPU (on)"]#0', 'facts["PostgreSQL CPU (on)"]#1')),
    Figure(DOC, "E1", "redirect p50 **60.8 → 0.42 ms**", (f'{OFF}.endpoints["/{{code}}"].p50_ms',
                                                           f'{ON}.endpoints["/{{code}}"].p50_ms')),
    Figure(DOC, "E1", "p99 **393.2 → 2.5 ms**", (f'{OFF}.endpoints["/{{code}}"].p99_ms', f'{ON}.endpoints["/{{code}}"].p99_ms')),
    Figure(DOC, "E1", "creates included: p99 416 → 5.8 ms", (f"{OFF}.p99_ms", f"{ON}.p99_ms")),
    Figure(DOC, "E1", "(881 of 900 req/s, 671 arrivals dropped)", (f"{OFF}.achieved_rps", f"{OFF}.offered_rps",
                                                                  f"{OFF}.dropped_iterations")),
    Figure(DOC, "E1", "(redirect p99 393 ms)", (f'{OFF}.endpoints["/{{code}}"].p99_ms',), "shortener/cache"),
    Figure(DOC, "E1", "core) and the redirect p99 is 2.5 ms", (f'{ON}.endpoints["/{{code}}"].p99_ms',), "shortener/cache"),
    # E2: Redis killed
    Figure(DOC, "E2", "Redis killed for 16 s at 600 req/s", (WIN.format(v=REDIS), f"{REDIS}.offered_rps")),
    Figure(DOC, "E2", "p99 **6 ms before, 9 ms during**", ('facts["p99 before / during (ms)"]#0',
                                                            'facts["p99 before / during (ms)"]#1')),
    Figure(DOC, "E2", "0 of 2,454 acknowledged creates lost", (f"{REDIS}.loss.lost", f"{REDIS}.loss.acknowledged")),
    Figure(DOC, "E2", "**100%** of redirects", ('facts["redirect success"]#0',)),
    # E3: an instance killed
    Figure(DOC, "E3", "killed for 18 s at 600 req/s", (WIN.format(v=KILLED), f"{KILLED}.offered_rps")),
    Figure(DOC, "E3", "**100%** of 26,916 requests", ('facts["GET success"]#0', f"{KILLED}.requests")),
    # E4: PostgreSQL hung
    Figure(DOC, "E4", "for 14 s at 500 req/s", (WIN.format(v=PAUSED), f"{PAUSED}.offered_rps")),
    Figure(DOC, "E4", "**100%** of 5,465 redirects", ('facts["redirects during outage"]#1',
                                                     'facts["redirects during outage"]#0')),
    Figure(DOC, "E4", "all 556 creates failed", ('facts["creates during outage"]#0',)),
    Figure(DOC, "E4", "the slowest in **1,007 ms**", ('facts["creates during outage"]#1',)),
    Figure(DOC, "E4", "0 of 1,402 acknowledged creates lost", (f"{PAUSED}.loss.lost", f"{PAUSED}.loss.acknowledged")),
    # E5: ID schemes
    Figure(DOC, "E5", "collisions among 1,000,000 offline codes: **0 / 0 / 0**", (
        "variants.hash.extra.offline_codes", "variants.hash.extra.offline_collisions",
        "variants.counter.extra.offline_collisions", "variants.random.extra.offline_collisions")),
    Figure(DOC, "E5", "(birthday expectation 0.14)", ("variants.hash.extra.offline_expected_birthday",)),
    Figure(DOC, "E5", "create p99 **5 / 7 / 10 ms**", (
        "variants.hash.p99_ms", "variants.counter.p99_ms", "variants.random.p99_ms")),
    Figure(DOC, "E5", "(4,501 of 4,501 creates acknowledged, 0 refused)", (
        "variants.random.loss.acknowledged", "variants.random.requests", "variants.random.failures")),
    Figure(DOC, "E5", "prefix 0% of the time obfuscated, 100% for a plain counter", (
        "variants.counter.extra.adjacent_prefix_share", "variants.counter.extra.plain_counter_prefix_share"), scale=100),
    # E6: stampede
    Figure(DOC, "E6", "**1.5** database reads per expiry with single-flight, **10.0** without", (
        'facts["reads per expiry (on, off)"]#0', 'facts["reads per expiry (on, off)"]#1')),
    # E7: scale-out, each instance on a 0.05-core budget
    Figure(DOC, "E7", "**84 / 161 / 338 req/s**", (
        "scaling.points[0].throughput", "scaling.points[1].throughput", "scaling.points[2].throughput")),
    Figure(DOC, "E7", "efficiency **0.96 at N=2, 1.00 at N=4**", (
        'scaling.efficiency["2"]', "scaling.points[1].n", 'scaling.efficiency["4"]', "scaling.points[2].n")),
    Figure(DOC, "E7", "the machine 13 / 22 / 50% busy", (
        "scaling.points[0].machine_cpu_pct", "scaling.points[1].machine_cpu_pct", "scaling.points[2].machine_cpu_pct")),
    Figure(DOC, "E7", "Lifting each instance to 0.3 core: **2,187 req/s**", (
        'variants["4 instances, budget lifted"].budgets["shortener-1"]',
        'variants["4 instances, budget lifted"].achieved_rps')),
    Figure(DOC, "E7", "(99% busy; k6 57%", ('facts["budget lifted"]#1',
                                           'variants["4 instances, budget lifted"].generator_cpu_avg')),
    Figure(DOC, "E7", "the stack spent 1.12 core-ms at N=1 and 0.93 at N=4", (
        'variants["1 instance"].cost_per_op.core_ms_total', "scaling.points[0].n",
        'variants["4 instances"].cost_per_op.core_ms_total', "scaling.points[2].n")),
    Figure(DOC, "E7", "338 req/s **[E7]**", ("scaling.points[2].throughput",), "shortener/scale-out",
           where="instances carry 84, 161 and"),
    Figure(DOC, "E7", "instances carry 84, 161 and", ("scaling.points[0].throughput", "scaling.points[1].throughput"),
           "shortener/scale-out", where="instances carry 84, 161 and"),
    # E8: the bench
    Figure(DOC, "E8", "**21,799 req/s** (p50 2.54 ms, p99 12.9 ms)", (
        "figures[1].rps", "figures[1].p50_ms", "figures[1].p99_ms")),
    Figure(DOC, "E8", "a ceiling of 47,547 req/s (p50 1.18 ms, p99 2.31 ms): **0.46×**", (
        "figures[0].rps", "figures[0].p50_ms", "figures[0].p99_ms", "ratio")),
    Figure(DOC, "E8", "a redirect costs **0.05 core-ms** and 0 statements, a create **1.91 core-ms** and **1 statement**", (
        "redirect_core_ms", "redirect_pg_statements", "create_core_ms", "create_pg_statements")),
    Figure(DOC, "E8", "(create p99 4.1 ms); at rest the stack uses 0.01 cores and 0 statements/s", (
        "create_p99_ms", "idle_cores", "idle_pg_statements_per_s")),
    Figure(DOC, "E8", "reaches **0.46×** its requests/s", ("ratio",), "shortener/bench"),
    Figure(DOC, "E8", "a create costs 1.91 core-ms of the whole stack", ("create_core_ms",), "shortener/bench"),
    Figure(DOC, "E8", "21,799 redirects/s", ("figures[1].rps",), "shortener/bench"),
    Figure(DOC, "E8", "× 1.209 core-ms", ('create_cost.core_ms["shortener-1"]',), "shortener/bench"),
    Figure(DOC, "E8", "× 0.045 =", ('redirect_cost.core_ms["shortener-1"]',), "shortener/bench"),
    Figure(DOC, "E8", "(0.190 core-ms each:", ('create_cost.core_ms["postgres-0"]',), "shortener/bench"),
    Figure(DOC, "E8", "**0.05 core-ms** a redirect and 0 statements", ("redirect_core_ms", "redirect_pg_statements"),
           "shortener/bench"),
    # E9: clicks counted, from each experiment it names
    Figure(DOC, "E9", "32,730 of 32,730 in E1", (f"{ON}.loss.clicks.clicks_counted", f"{ON}.loss.clicks.redirects_ok"),
           "shortener/cache", where="| E9 |"),
    Figure(DOC, "E9", "24,547 of 24,547 through the Redis kill", (
        f"{REDIS}.loss.clicks.clicks_counted", f"{REDIS}.loss.clicks.redirects_ok"), "shortener/redis-outage",
        where="| E9 |"),
    Figure(DOC, "E9", "20,433 of 20,433 through the PostgreSQL pause", (
        f"{PAUSED}.loss.clicks.clicks_counted", f"{PAUSED}.loss.clicks.redirects_ok"), "shortener/db-outage",
        where="| E9 |"),
    Figure(DOC, "E9", "the instance kill lost **2 of 24,427**", (
        f"{KILLED}.loss.clicks.clicks_missing", f"{KILLED}.loss.clicks.redirects_ok"), "shortener/instance-failure",
        where="| E9 |"),
    # E10: capacity
    Figure(DOC, "E10", "**2,000 req/s** offered (p50 1.80 ms, p99 42.4 ms, 0 errors of 19,962)", (
        'facts["knee (req/s)"]', f"{cap(2000)}.p50_ms", f"{cap(2000)}.p99_ms", f"{cap(2000)}.failures",
        f"{cap(2000)}.requests")),
    Figure(DOC, "E10", "at 3,000 req/s the p99 was **113 and 176 ms** in two runs (achieved 2,720 and 2,397", (
        f"{cap(3000)}.offered_rps", f"{cap(3000)}.p99_ms", f"{cap(3000, True)}.p99_ms", f"{cap(3000)}.achieved_rps",
        f"{cap(3000, True)}.achieved_rps")),
    Figure(DOC, "E10", "2.7 k and 5.9 k arrivals dropped", (f"{cap(3000)}.dropped_iterations",
                                                           f"{cap(3000, True)}.dropped_iterations"), scale=1e-3),
    Figure(DOC, "E10", "at 4,000 req/s 232-273 ms", (f"{cap(4000)}.offered_rps", f"{cap(4000, True)}.p99_ms",
                                                    f"{cap(4000)}.p99_ms")),
    Figure(DOC, "E10", "(k6 49%", (f"{cap(2000)}.generator_cpu_avg",)),
    Figure(DOC, "E10", "a request cost 0.59 core-ms and 0.11 statements on average", (
        f"{cap(2000)}.cost_per_op.core_ms_total", f"{cap(2000)}.cost_per_op.pg_statements")),
    Figure(DOC, "E10", "tried 3,000 req/s twice: p99 113 and 176 ms", (
        f"{cap(3000)}.offered_rps", f"{cap(3000)}.p99_ms", f"{cap(3000, True)}.p99_ms"), "shortener/capacity",
        where="tried 3,000 req/s twice"),
    # E11: what the generator adds
    Figure(DOC, "E11", "k6 open loop at 300 req/s: redirect p50 **0.90 ms**", (
        "offered_rps", 'endpoints["/{code}"].p50_ms')),
    # C1-C4: the cost tables before and after the lean paths
    Figure(DOC, "C1", "| **5.0** (the pre-ping's", ("cost_per_op.pg_statements",), COST.format("before-create"),
           where="| create (200/s): PostgreSQL statements |"),
    Figure(DOC, "C3", "| **1.0** (one INSERT) |", ("cost_per_op.pg_statements",), COST.format("after-create"),
           where="| create (200/s): PostgreSQL statements |"),
    Figure(DOC, "C1", "every process | 2.4 |", ("cost_per_op.core_ms_total",), COST.format("before-create"),
           where="| create: [core-ms]"),
    Figure(DOC, "C3", "| 1.4 |", ("cost_per_op.core_ms_total",), COST.format("after-create"), where="| create: [core-ms]"),
    Figure(DOC, "C2", "cold cache): statements | 0.33 |", ("cost_per_op.pg_statements",), COST.format("before-redirect"),
           where="| redirect (1,000/s"),
    Figure(DOC, "C4", "| 0.08 |", ("cost_per_op.pg_statements",), COST.format("after-redirect"), where="| redirect (1,000/s"),
    Figure(DOC, "C2", "| redirect: core-ms | 0.42 |", ("cost_per_op.core_ms_total",), COST.format("before-redirect"),
           where="| redirect: core-ms |"),
    Figure(DOC, "C4", "| 0.39 |", ("cost_per_op.core_ms_total",), COST.format("after-redirect"), where="| redirect: core-ms |"),
    Figure(DOC, "C1", "statements/s | 9.9 |", ("cost_per_op.idle.pg_statements_per_s",), COST.format("before-create"),
           where="| the stack at rest: statements/s |"),
    Figure(DOC, "C3", "| 0 |", ("cost_per_op.idle.pg_statements_per_s",), COST.format("after-create"),
           where="| the stack at rest: statements/s |"),
    Figure(DOC, "E8", "**1.91 core-ms** for the whole stack", ("create_cost.core_ms_total",), "shortener/bench",
           where="**1.91 core-ms** for the whole stack"),
    Figure(DOC, "E8", "against **0.05** for a redirect", ("redirect_cost.core_ms_total",), "shortener/bench",
           where="**1.91 core-ms** for the whole stack"),
    Figure(DOC, "C1", "from 2.4 core-ms and 5 statements", ("cost_per_op.core_ms_total", "cost_per_op.pg_statements"),
           COST.format("before-create"), where="**1.91 core-ms** for the whole stack"),
    Figure(DOC, "C3", "to 1.4 and 1, measured in one sitting", ("cost_per_op.core_ms_total", "cost_per_op.pg_statements"),
           COST.format("after-create"), where="to 1.4 and 1, measured in one sitting"),
    # E12: read replicas, the cache off, each replica on 0.04 core
    Figure(DOC, "E12", "**344 redirects/s with one replica, 585 with two: 1.70×**",
           ('read_replicas.reads_per_s["1"]', 'read_replicas.reads_per_s["2"]', "read_replicas.ratio_2_over_1")),
    Figure(DOC, "E12", "the primary alone (on its larger budget) 1,406/s", ('read_replicas.reads_per_s["0"]',)),
    Figure(DOC, "E12", "**290,440 bytes / 1.11 s**", ("read_replicas.max_lag_bytes", "read_replicas.max_lag_s")),
    # E13: read-your-writes, one replica on 0.05 core
    Figure(DOC, "E13", "**20.54%** of reads were stale (604 of 2,941",
           ('facts["replica, no token: stale reads"]#2', 'read_back["replica, no token"].stale',
            'read_back["replica, no token"].reads')),
    Figure(DOC, "E13", "; 26 timed out)", ('read_back["replica, no token"].timed_out',)),
    Figure(DOC, "E13", "p99 **774 ms** (a small", ('read_back["replica, no token"].p99_ms',)),
    Figure(DOC, "E13", "**0 stale**, p99 **144 ms** (302 reads", ('read_back["replica, LSN token"].stale',
                                                                 'read_back["replica, LSN token"].p99_ms',
                                                                 'facts["LSN token: served by the replica / by the primary (replica behind)"]#1')),
    Figure(DOC, "E13", "from the primary **0 stale**, p99 **2.3 ms**", ('read_back["primary"].stale',
                                                                          'read_back["primary"].p99_ms')),
    Figure(DOC, "E12", "replica of 0.04 core carried 344 redirects/s and two carried 585 (1.70×)",
           ("read_replicas.member_budget_cores", 'read_replicas.reads_per_s["1"]', 'read_replicas.reads_per_s["2"]',
            "read_replicas.ratio_2_over_1"), "shortener/read-replicas", where="**Replicas add read capacity"),
    Figure(DOC, "E13", "20.54% of the time; the create's LSN token made that 0 for a p99 of 144 ms instead of 2.3 ms",
           ('facts["replica, no token: stale reads"]#2', 'read_back["replica, LSN token"].stale',
            'read_back["replica, LSN token"].p99_ms', 'read_back["primary"].p99_ms'),
           "shortener/read-your-writes", where="**Replicas add read capacity"),
]
