from callcenter.dialer.pacing import (
    PacingInput,
    PacingStats,
    expected_abandoned,
    predictive_dials,
    progressive_dials,
)


def inp(**kw):
    base = dict(free_agents=5, busy_agents=15, in_flight=0, answer_rate=0.2, aht=270, answer_delay=10,
                target=0.02)
    base.update(kw)
    return PacingInput(**base)


def test_progressive_one_call_per_free_agent():
    assert progressive_dials(3, 1) == 2 and progressive_dials(1, 4) == 0


def test_predictive_dials_ahead_and_respects_target():
    k = predictive_dials(inp())
    assert k > 5
    assert predictive_dials(inp(answer_rate=0.5)) < k            # higher answer rate: fewer dials
    assert predictive_dials(inp(target=0.0)) == 5                 # throttled: progressive
    assert predictive_dials(inp(free_agents=0, busy_agents=20, in_flight=30)) == 0
    assert predictive_dials(inp(free_agents=-2)) >= 0


def test_expected_abandoned_sane():
    h = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]                           # Y = 0 always
    assert expected_abandoned(2, 1.0, 0, h) == 2.0
    assert expected_abandoned(3, 0.5, 5, h) == 0.0
    assert abs(expected_abandoned(2, 0.5, 1, h) - 0.25) < 1e-9


def test_pacing_stats_start_cautious():
    s = PacingStats(0.3, 240)
    assert s.cautious_answer_rate == 1.0
    for _ in range(500):
        s.dial_resolved(False)
    assert s.answer_rate < 0.06 and s.cautious_answer_rate < 0.1


def test_answered_calls_awaiting_an_agent_count_against_free_agents():
    """Regression: an answered call not yet handed to its agent still needs one, so progressive
    must not dial for that agent again (it did while the free count lagged the reservation)."""
    import dataclasses

    from repo import REPO

    from callcenter.dialer.campaign import load_campaigns
    from callcenter.dialer.engine import CampaignStats, dial_count

    c = dataclasses.replace(load_campaigns(REPO / "campaigns")["telesales_demo"], dial_mode="progressive")
    st = CampaignStats(PacingStats(0.3, 240.0))
    assert dial_count(c, 2, st, 0.0) == 2
    st.awaiting_agent = 1
    assert dial_count(c, 1, st, 0.0) == 0 and dial_count(c, 2, st, 0.0) == 1
    st.in_flight = 1
    assert dial_count(c, 2, st, 0.0) == 0
    pred = dataclasses.replace(c, dial_mode="predictive")
    assert dial_count(pred, 1, st, 0.0) == 0     # target 0: predictive falls back to progressive
