"""The offline query realiser: phrasebook and generic phrasings, leak detection, determinism."""

import numpy as np
import pytest

from orchestra.data.types import ParamSpec, ToolSpec
from orchestra.synth.phrasebook import BOOKING
from orchestra.synth.realise import OfflineRealiser, StepSpec, leaked_values, words

BOILERPLATE = "This tool belongs to the WeatherAPI, which gives forecasts."
TOOLS = {
    "Find_Station": ToolSpec("Find_Station", f"{BOILERPLATE} Tool description: Find a weather station by town name.",
                             (ParamSpec("town", "string"),), ("town",)),
    "Get_Forecast": ToolSpec("Get_Forecast", f"{BOILERPLATE} Get the forecast of a station. EndPoint: /v1/forecast",
                             (ParamSpec("stationId", "string"), ParamSpec("days", "integer")), ("stationId",)),
}
CHAIN = [StepSpec("Find_Station", {"town": "Tromsø"}, {}, 0),
         StepSpec("Get_Forecast", {"stationId": "ST-99812", "days": 3}, {"stationId": (0, "stations[1].id")}, 1)]


def test_generic_phrasing_for_an_unknown_ecosystem_uses_the_schema_and_hides_dependent_values():
    realiser = OfflineRealiser(TOOLS)  # no phrasebook entry for these functions
    queries = {realiser.realise(CHAIN, np.random.default_rng(s)) for s in range(20)}
    assert len(queries) > 1  # several phrasings
    for q in queries:
        assert "Tromsø" in q and "3" in q            # independent values are stated
        assert "ST-99812" not in q                    # the dependent one is not
        assert "station id" in q                      # it is referred to by name
        assert "2nd station" in q                     # and which result to take
        assert "WeatherAPI" not in q                  # shared boilerplate is not used as a summary
        assert not leaked_values(q, CHAIN)


def test_the_same_generator_state_gives_the_same_query():
    realiser = OfflineRealiser(TOOLS, BOOKING)
    assert realiser.realise(CHAIN, np.random.default_rng(4)) == realiser.realise(CHAIN, np.random.default_rng(4))


def test_phrasebook_phrasings_state_their_values_and_refer_to_earlier_results():
    realiser = OfflineRealiser(TOOLS, {"Find_Station": ["find the station of {town}"],
                                       "Get_Forecast": ["get that station's forecast for {days} days"]})
    q = realiser.realise(CHAIN, np.random.default_rng(0))
    assert q.startswith("Find the station of Tromsø.") and "get that station's forecast for 3 days" in q


def test_a_phrasing_leaving_values_out_is_not_used_on_a_step_that_depends_on_nothing():
    realiser = OfflineRealiser(TOOLS, {"Find_Station": ["find that station"]})
    q = realiser.realise(CHAIN[:1], np.random.default_rng(0))
    assert "that station" not in q and "Tromsø" in q


def test_leaked_values_finds_dependent_values_as_whole_tokens_only():
    assert leaked_values("Forecast for st-99812 please", CHAIN) == ["ST-99812"]
    assert leaked_values("Forecast for XST-998123", CHAIN) == []
    stated_too = [CHAIN[0], StepSpec("Get_Forecast", {"stationId": "Tromsø"}, {"stationId": (0, "id")}, 1)]
    assert leaked_values("Weather in Tromsø", stated_too) == []  # also stated by the user


def test_a_malformed_phrasebook_is_refused_with_the_function_named():
    with pytest.raises(ValueError, match="Find_Station"):
        OfflineRealiser(TOOLS, {"Find_Station": "find {town}"})


def test_words_splits_snake_and_camel_case():
    assert words("pick_up_latitude") == "pick up latitude" and words("departDate") == "depart date"
