import pytest

from services.lab.budgets.rules import (
    BudgetError,
    describe,
    kind_of,
    merge,
    parse,
    resolve,
)

STACK = ["caddy", "redis", "kafka", "postgres-0", "postgres-1", "shop-1", "shop-2", "shop-payments-1",
         "shop-worker-1"]


def test_parse_reads_names_and_cores_and_skips_blanks():
    assert parse(" postgres=0.5, shop-1=0.25 ,") == {"postgres": 0.5, "shop-1": 0.25}
    assert parse("") == {} and parse(None) == {}


@pytest.mark.parametrize("text, says", [
    ("postgres", "is not NAME=CORES"), ("=0.5", "is not NAME=CORES"), ("postgres=lots", "must be a number"),
    ("postgres=0", "must be above 0"), ("postgres=-1", "must be above 0"), ("postgres=nan", "must be above 0"),
])
def test_parse_refuses_bad_input_in_one_line(text, says):
    with pytest.raises(BudgetError, match=says) as err:
        parse(text)
    assert "\n" not in str(err.value)


def test_kind_strips_only_a_trailing_number():
    assert kind_of("postgres-1") == "postgres" and kind_of("shop-payments-1") == "shop-payments"
    assert kind_of("caddy") == "caddy" and kind_of("messaging-gateway-12") == "messaging-gateway"


def test_the_most_specific_entry_wins_and_each_instance_gets_the_whole_budget():
    got = resolve({"shop": 0.1, "shop-payments": 0.2, "postgres": 0.3, "postgres-1": 0.05}, STACK, 2)
    assert got == {"shop-1": 0.1, "shop-2": 0.1, "shop-worker-1": 0.1, "shop-payments-1": 0.2,
                   "postgres-0": 0.3, "postgres-1": 0.05}


def test_a_kind_does_not_reach_a_longer_kind_but_a_prefix_does():
    assert resolve({"shop-payments": 0.2}, STACK, 2) == {"shop-payments-1": 0.2}
    assert set(resolve({"shop": 0.1}, STACK, 2)) == {"shop-1", "shop-2", "shop-payments-1", "shop-worker-1"}


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(BudgetError, match=r"no component or kind named 'postgress'.*choose from .*postgres, postgres-0"):
        resolve({"postgress": 0.5}, STACK, 2)


def test_a_budget_above_the_machine_is_refused():
    with pytest.raises(BudgetError, match="only 2 cores"):
        resolve({"redis": 3}, STACK, 2)


def test_budgets_that_leave_nothing_for_the_rest_are_refused_but_a_fully_budgeted_stack_is_not():
    with pytest.raises(BudgetError, match="leaving under 0.1 core for 7 unbudgeted"):
        resolve({"postgres": 0.98}, STACK, 2)
    everything = {c: 0.5 for c in STACK}
    assert resolve(everything, STACK, 2) == everything


def test_merge_lets_later_layers_win_and_describe_is_one_line():
    assert merge({"postgres": 0.5, "redis": 1}, None, {"postgres": 0.1}) == {"postgres": 0.1, "redis": 1}
    assert describe({"postgres-1": 0.08, "postgres-0": 0.08}) == "postgres-0 0.08, postgres-1 0.08"
    assert describe({}) == "none"
