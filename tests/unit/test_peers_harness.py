"""The pure helpers of the peers benchmark (bench/peers): loss rules and their counters, the
capture filter, the run order, the presets and the time estimate."""

from __future__ import annotations

import argparse
import json

import pytest

from bench.peers import netns, run
from bench.peers.measure import port_filter
from bench.peers.scenario import QUICK, RunResult, Settings


def test_the_ruleset_drops_the_loss_in_ten_thousandths_and_counts_what_passes() -> None:
    rules = netns.ruleset(0.01)
    assert "numgen random mod 10000 < 100 counter drop" in rules
    assert rules.count("meta l4proto udp") == 2
    assert "drop" not in netns.ruleset(0.0)
    assert "< 500 " in netns.ruleset(0.05)


def test_counters_come_from_the_commented_rules() -> None:
    def rule(comment: str, packets: int) -> dict[str, object]:
        expr = [{"match": {}}, {"counter": {"packets": packets, "bytes": 9}}, {"drop": None}]
        return {"rule": {"chain": "input", "expr": expr, "comment": comment}}

    listing = {"nftables": [{"table": {}}, rule("dropped", 5), rule("passed", 95)]}
    counts = netns.parse_counters(json.dumps(listing))
    assert (counts.passed, counts.dropped, counts.fraction) == (95, 5, 0.05)
    assert netns.LossCounters(0, 0).fraction is None


def test_consecutive_ports_make_one_range_in_the_capture_filter() -> None:
    assert port_filter([21002, 21000, 21001, 21005]) == "portrange 21000-21002 or port 21005"
    assert port_filter(range(21000, 21103)) == "portrange 21000-21102"


def test_the_order_rotates_so_each_system_goes_first_in_turn() -> None:
    systems = ["caxton", "serf", "kinship"]
    firsts = [run.run_order(systems, k)[0] for k in range(3)]
    assert firsts == systems
    assert sorted(run.run_order(systems, 4)) == sorted(systems)


def _settings(*argv: str) -> Settings:
    ap = argparse.ArgumentParser()
    run.add_cluster_arguments(ap, "5")
    return run.cluster_settings(ap, ap.parse_args(argv))[0]


def test_quick_is_a_preset_and_options_given_win_over_it() -> None:
    assert _settings() == Settings()
    assert _settings("--quick") == QUICK
    mixed = _settings("--quick", "--idle-seconds", "30", "--trials", "2")
    assert (mixed.idle_seconds, mixed.trials, mixed.settle) == (30.0, 2, QUICK.settle)


def test_the_full_presets_fit_the_budget() -> None:
    three = list(run.SYSTEMS)
    full = run.estimate_seconds(three, [5, 10, 20, 40, 100], [0.0], Settings())
    lossy = run.estimate_seconds(three, [20], [0.01, 0.05], Settings())
    assert 30 * 60 < full < 45 * 60
    assert 10 * 60 < lossy < 17 * 60


def test_the_loss_cell_shows_set_and_measured_percent() -> None:
    assert run.loss_cell(RunResult(nodes=5, loss=0.01, loss_measured=0.0098)) == "1 / 0.98"
    assert run.loss_cell(RunResult(nodes=5)) == "0 / -"


@pytest.mark.parametrize("text", ["x", "1.5", ""])
def test_a_bad_loss_is_refused(text: str) -> None:
    with pytest.raises(SystemExit):
        run._floats(argparse.ArgumentParser(), text)


def test_loss_without_namespaces_exits_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(netns, "unavailable_reason", lambda: "network namespaces need root")
    with pytest.raises(SystemExit) as exited:
        run.main(["--loss", "0,0.01", "--quick"])
    assert exited.value.code == 2
    assert "network namespaces need root" in capsys.readouterr().err
