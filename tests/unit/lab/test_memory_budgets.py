import pytest

from services.lab.budgets import rules
from services.lab.budgets.memory import (
    FLOOR_BYTES,
    describe,
    parse,
    parse_size,
    resolve,
    show,
    sizes,
)
from services.lab.budgets.rules import BudgetError

STACK = ["caddy", "redis", "kafka", "postgres-0", "postgres-1", "shop-1", "shop-2", "shop-payments-1",
         "shop-worker-1"]
MiB, GiB = 2**20, 2**30
MACHINE = 8 * GiB


@pytest.mark.parametrize("text, size", [
    ("256M", 256 * MiB), ("256m", 256 * MiB), ("512MiB", 512 * MiB), ("64MB", 64 * MiB), ("1G", GiB),
    ("1.5g", 3 * GiB // 2), ("2048K", 2 * MiB), ("300000000", 300_000_000), ("100b", 100), (" 64 M ", 64 * MiB),
])
def test_a_size_is_bytes_or_a_number_with_a_binary_unit(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "lots", "-1G", "1X", "1.G", "256 MiBs", "1e9"])
def test_what_is_no_size_is_none(text):
    assert parse_size(text) is None


def test_parse_reads_names_and_sizes_and_skips_blanks():
    assert parse(" postgres=256M, shop-1=1G ,") == {"postgres": 256 * MiB, "shop-1": GiB}
    assert parse("") == {} and parse(None) == {}


@pytest.mark.parametrize("text, says", [
    ("postgres", r"memory budget 'postgres' is not NAME=SIZE \(e.g. postgres=256M\)"), ("=256M", "is not NAME=SIZE"),
    ("postgres=lots", "SIZE must be bytes or a number with K, M or G"), ("postgres=-5M", "SIZE must be"),
])
def test_parse_refuses_bad_input_in_one_line(text, says):
    with pytest.raises(BudgetError, match=says) as err:
        parse(text)
    assert "\n" not in str(err.value)


def test_names_resolve_as_cpu_budgets_do_the_most_specific_winning():
    spec = {"shop": 64 * MiB, "shop-payments": 128 * MiB, "postgres": GiB, "postgres-1": 256 * MiB}
    got = resolve(spec, STACK, MACHINE)
    assert got == {"shop-1": 64 * MiB, "shop-2": 64 * MiB, "shop-worker-1": 64 * MiB, "shop-payments-1": 128 * MiB,
                   "postgres-0": GiB, "postgres-1": 256 * MiB}
    # The same names give the same components as the CPU rules (one resolution, rules.assign).
    assert set(got) == set(rules.resolve({k: 0.01 for k in spec}, STACK, 2))


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(BudgetError, match=r"memory budget postgress=256 MiB: no component or kind named "
                                          r"'postgress'.*choose from .*postgres, postgres-0"):
        resolve({"postgress": 256 * MiB}, STACK, MACHINE)


def test_a_budget_below_the_floor_or_above_the_machine_is_refused_in_one_line():
    with pytest.raises(BudgetError, match="below the floor of 32 MiB") as err:
        resolve({"redis": FLOOR_BYTES - 1}, STACK, MACHINE)
    assert "\n" not in str(err.value)
    assert resolve({"redis": FLOOR_BYTES}, STACK, MACHINE) == {"redis": FLOOR_BYTES}
    with pytest.raises(BudgetError, match="this machine has only 8 GiB"):
        resolve({"postgres": 9 * GiB}, STACK, MACHINE)


def test_limits_may_add_up_to_more_than_the_machine_since_each_is_a_ceiling():
    assert len(resolve({"shop": 4 * GiB, "postgres": 4 * GiB}, STACK, MACHINE)) == 6


def test_show_describe_and_a_variants_sizes():
    assert (show(256 * MiB), show(2 * GiB), show(300_000_000)) == ("256 MiB", "2 GiB", "286.1 MiB")
    assert show(25_324_953_600) == "23.6 GiB"  # a machine's odd total
    assert describe({"redis": 64 * MiB, "postgres-0": GiB}) == "postgres-0 1 GiB, redis 64 MiB"
    assert describe({}) == "none"
    assert sizes({"postgres": "256M", "redis": 64 * MiB}) == {"postgres": 256 * MiB, "redis": 64 * MiB}
    with pytest.raises(BudgetError, match="SIZE must be"):
        sizes({"postgres": "big"})
