"""``/metrics`` over a fleet: the per-policy series carry ``target`` and ``region``; a pair
whose tick failed is counted in ``snapworker_target_errors_total`` and its last result is
``snapworker_target_last_run_ok`` (1 completed, 0 failed), with its time."""

from __future__ import annotations

from snapworker.adapters.http.health import Metrics


def _samples(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("snapworker_")]


def test_pair_errors_and_last_results_are_labelled_by_target_and_region() -> None:
    t = [1000.0]
    m = Metrics(clock=lambda: t[0])
    m.pair_done("dr-a", "eu-west-1", ok=False)
    m.pair_done("home", "us-east-1", ok=True)
    t[0] = 1060.0
    m.pair_done("dr-a", "eu-west-1", ok=False)
    lines = _samples(m.render())
    assert 'snapworker_target_errors_total{region="eu-west-1",target="dr-a"} 2.0' in lines
    assert not any(
        ln.startswith('snapworker_target_errors_total{region="us-east-1"') for ln in lines
    )
    assert 'snapworker_target_last_run_ok{region="eu-west-1",target="dr-a"} 0.0' in lines
    assert 'snapworker_target_last_run_ok{region="us-east-1",target="home"} 1.0' in lines
    assert (
        'snapworker_target_last_run_timestamp_seconds{region="eu-west-1",target="dr-a"} 1060.0'
        in lines
    )
    assert m.pair_errors() == {("dr-a", "eu-west-1"): 2}

    m.pair_done("dr-a", "eu-west-1", ok=True)  # recovered: the gauge says so, the count stays
    lines = _samples(m.render())
    assert 'snapworker_target_last_run_ok{region="eu-west-1",target="dr-a"} 1.0' in lines
    assert 'snapworker_target_errors_total{region="eu-west-1",target="dr-a"} 2.0' in lines


def test_owned_and_skipped_series_are_split_by_target_and_region() -> None:
    m = Metrics()
    m.tick_done(1.0, [], True, [("prod-nightly", "dr-a", "eu-west-1")])
    owned = {("prod-nightly", "dr-a", "eu-west-1"): 4, ("prod-nightly", "dr-a", "us-east-1"): 1}
    lines = _samples(m.render(owned))
    assert (
        'snapworker_snapshots_owned{policy="prod-nightly",region="eu-west-1",target="dr-a"} 4.0'
        in lines
    )
    assert (
        'snapworker_snapshots_owned{policy="prod-nightly",region="us-east-1",target="dr-a"} 1.0'
        in lines
    )
    assert (
        'snapworker_policy_skipped_total{policy="prod-nightly",region="eu-west-1",target="dr-a"}'
        " 1.0" in lines
    )


def test_no_pair_series_before_the_first_pair_tick() -> None:
    text = Metrics().render()
    assert "snapworker_target_last_run_ok{" not in text
    assert "snapworker_target_errors_total{" not in text
