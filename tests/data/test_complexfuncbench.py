"""ComplexFuncBench import: a small synthetic file in the official format (the real one is not offline)."""

import copy
import json
import os
import subprocess
import sys

import pytest
from data_asserts import assert_located

from orchestra.data.booking import load_booking, load_tasks
from orchestra.data.complexfuncbench import infer_dependencies, load_complexfuncbench, main
from orchestra.data.types import response_succeeded
from orchestra.data.ecosystem import load_calls, load_ecosystem
from orchestra.data.errors import DataError
from orchestra.data.io import read_jsonl
from orchestra.data.types import Call, ParamSpec, ToolSpec


def fn(name, *params, enum=None):
    props = {p: {"type": "string", "description": p} for p in params}
    if enum:
        props[enum[0]]["enum"] = enum[1]
    return {"name": name, "description": f"{name} tool", "parameters": {"type": "object", "properties": props,
                                                                           "required": list(params[:1])}}


HOTEL_DEST = fn("Search_Hotel_Destination", "query")
HOTELS = fn("Search_Hotels", "dest_id", "search_type", "adults", "arrival_date", enum=("search_type", ["CITY", "REGION"]))
BY_COORDS = fn("Search_Hotels_By_Coordinates", "latitude", "longitude", "arrival_date")
TIPS = fn("Get_Hotel_Reviews(Tips)", "hotel_id")
FLIGHT_LOC = fn("Search_Flight_Location", "query")
FLIGHTS = fn("Search_Flights", "fromId", "toId", "departDate")


def call_turn(*calls):
    return {"role": "assistant", "function_call": [{"name": n, "arguments": a} for n, a in calls]}


def obs(*responses):
    return {"role": "observation", "content": list(responses)}


def hotel_sample():
    """Three call turns; the second holds two parallel calls; one call fails."""
    return {"id": "Hotels-1", "functions": copy.deepcopy([HOTEL_DEST, HOTELS, BY_COORDS, TIPS]), "conversations": [
        {"role": "user", "content": "Find a hotel in Paris for 2 adults and show me tips for it."},
        call_turn(("Search_Hotel_Destination", {"query": "Paris"})),
        obs({"status": True, "message": "Success", "data": [
            {"dest_id": "-1456928", "search_type": "CITY", "nr_hotels": 2, "latitude": 48.8566101, "longitude": 2.3522219}]}),
        call_turn(("Search_Hotels", {"dest_id": -1456928, "search_type": "CITY", "adults": 2, "arrival_date": "2024-12-01"}),
                  ("Search_Hotels_By_Coordinates", {"latitude": 48.8566, "longitude": 2.3522, "arrival_date": "2024-12-01"})),
        obs({"status": True, "data": {"hotels": [{"hotel_id": 191605, "name": "Hotel Lutetia"}]}},
            {"status": False, "message": "Something went wrong"}),
        call_turn(("Get_Hotel_Reviews(Tips)", {"hotel_id": "191605"})),
        obs({"status": True, "data": {"tips": ["Ask for a courtyard room."]}}),
        {"role": "assistant", "content": "Hotel Lutetia; guests advise asking for a courtyard room."},
    ]}


def flight_sample():
    """Arguments given as a JSON string (OpenAI style); an error response and an empty one."""
    return {"id": 7, "functions": copy.deepcopy([FLIGHT_LOC, FLIGHTS]), "conversations": [
        {"role": "user", "content": "Fly me from Boston to New York on 2024-12-02."},
        call_turn(("Search_Flight_Location", {"query": "Boston"}), ("Search_Flight_Location", {"query": "New York"})),
        obs({"status": True, "data": [{"id": "BOS.AIRPORT", "type": "AIRPORT"}]},
            {"status": True, "data": [{"id": "NYC.CITY", "type": "CITY"}]}),
        call_turn(("Search_Flights", json.dumps({"fromId": "BOS.AIRPORT", "toId": "nyc.city", "departDate": "2024-12-02"}))),
        obs({"error": "rate limited"}),
        call_turn(("Search_Flights", {"fromId": "BOS.AIRPORT", "toId": "NYC.CITY", "departDate": "2024-12-02"})),
        obs([]),
    ]}


def hotel_sample_2():
    """Reuses two schemas and two calls of the first sample; one call got a different response."""
    return {"id": "Hotels-2", "functions": copy.deepcopy([HOTEL_DEST, TIPS]), "conversations": [
        {"role": "user", "content": "Where is Paris, and tips for the hotel 191605?"},
        call_turn(("Search_Hotel_Destination", {"query": "Paris"})),  # the very call of the first sample
        obs(hotel_sample()["conversations"][2]["content"][0]),
        call_turn(("Get_Hotel_Reviews(Tips)", {"hotel_id": 191605})),  # the first sample's call, another answer
        obs({"status": True, "data": {"tips": []}}),
    ]}


def write_file(path, samples):
    path.write_text("".join((s if isinstance(s, str) else json.dumps(s)) + "\n" for s in samples), encoding="utf-8")
    return path


@pytest.fixture
def cfb_file(tmp_path):
    return write_file(tmp_path / "ComplexFuncBench.jsonl", [hotel_sample(), flight_sample(), hotel_sample_2()])


def test_samples_become_tasks_with_parallel_turns_dependencies_and_success(cfb_file):
    eco = load_complexfuncbench(cfb_file)
    hotel, flight, hotel2 = eco.tasks
    assert [t.task_id for t in eco.tasks] == ["Hotels-1", "7", "Hotels-2"]
    assert hotel.query.startswith("Find a hotel in Paris")
    assert hotel.pattern == ("Search_Hotel_Destination", "Search_Hotels", "Search_Hotels_By_Coordinates",
                             "Get_Hotel_Reviews(Tips)")
    assert hotel.metadata["turns"] == [0, 1, 1, 2]
    assert hotel.metadata["final_answer"].startswith("Hotel Lutetia")
    # -1456928 == "-1456928"; 48.8566 rounds 48.8566101; 191605 == "191605"; adults=2 is not a link.
    assert [s.depends_on for s in hotel.steps] == [(), (0,), (0,), (1,)]
    assert [s.success for s in hotel.steps] == [True, True, False, True]
    assert hotel.candidate_tools == ("Search_Hotel_Destination", "Search_Hotels", "Search_Hotels_By_Coordinates",
                                     "Get_Hotel_Reviews(Tips)")
    assert all(s.candidate_tools == hotel.candidate_tools for s in hotel.steps)
    # Parallel calls of one turn never depend on each other; JSON-string arguments are decoded.
    assert flight.metadata["turns"] == [0, 0, 1, 2]
    assert [s.depends_on for s in flight.steps] == [(), (), (0, 1), (0, 1)]
    assert flight.steps[2].call.arguments == {"fromId": "BOS.AIRPORT", "toId": "nyc.city", "departDate": "2024-12-02"}
    assert [s.success for s in flight.steps] == [True, True, False, False]
    assert hotel2.metadata["final_answer"] is None
    # One cache entry per call, and the union of schemas keeps names exactly as given.
    assert len(eco.cache_entries) == 10
    assert list(eco.tools) == ["Search_Hotel_Destination", "Search_Hotels", "Search_Hotels_By_Coordinates",
                               "Get_Hotel_Reviews(Tips)", "Search_Flight_Location", "Search_Flights"]
    assert eco.tools["Search_Hotels"].param("search_type").enum == ("CITY", "REGION")


def test_command_writes_a_folder_that_loads_as_ecosystem_tasks_and_data_root(cfb_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(cfb_file), str(out)]) == 0
    assert "6 tools, 3 tasks (10 calls)" in capsys.readouterr().out
    imported = load_complexfuncbench(cfb_file)
    eco = load_ecosystem(out / "tools.jsonl", out / "calls.jsonl", tasks_path=out / "tasks.jsonl")
    assert eco.tools == imported.tools
    assert eco.tasks == imported.tasks == load_tasks(out / "tasks.jsonl") == load_booking(out).tasks
    # The repeated call with the same response is written once; the one with two responses twice.
    calls = load_calls(out / "calls.jsonl")
    assert len(calls) == 9
    assert [c.response["data"]["tips"] for c in calls if c.function == "Get_Hotel_Reviews(Tips)"] == [
        ["Ask for a courtyard room."], []]


def test_written_task_lines_have_the_booking_format_plus_id(booking, cfb_file, tmp_path):
    assert main([str(cfb_file), str(tmp_path / "out")]) == 0
    (_, real), = [next(read_jsonl(os.path.join(booking.root, "tasks.jsonl")))]
    (_, ours), = [next(read_jsonl(tmp_path / "out" / "tasks.jsonl"))]
    assert list(ours) == ["id"] + list(real)
    assert list(ours["steps"][0]) == list(real["steps"][0])
    assert list(ours["steps"][0]["execution_result"]) == list(real["steps"][0]["execution_result"])
    assert ours["overall_success"] is False and ours["workflow_pattern"][3] == "Get_Hotel_Reviews(Tips)"


def _break(edit):
    sample = hotel_sample()
    edit(sample)
    return sample


@pytest.mark.parametrize("edit, field, words", [
    (lambda s: s["conversations"][4]["content"].pop(), "conversations[4].content", "1 responses for the 2 calls"),
    (lambda s: s["conversations"][3]["function_call"][1].update(name="Get_Weather"),
     "conversations[3].function_call[1].name", "unknown function"),
    (lambda s: s["conversations"][1]["function_call"][0].update(arguments=["Paris"]),
     "conversations[1].function_call[0].arguments", "expected an object"),
    (lambda s: s["conversations"][7].update(role="tool"), "conversations[7].role", "unknown role"),
    (lambda s: s["conversations"].pop(2), "conversations[2].role", "need an observation"),
    (lambda s: s.pop("conversations"), "conversations", "missing"),
    (lambda s: s["functions"][1]["parameters"].update(required=["nope"]), "functions[1].parameters.required",
     "not in properties"),
    (lambda s: s["functions"][2].pop("name"), "functions[2].name", "missing"),
    (lambda s: s["conversations"].pop(0), "conversations", "no user turn"),
])
def test_malformed_sample_names_file_line_and_field(tmp_path, edit, field, words):
    path = write_file(tmp_path / "cfb.jsonl", [flight_sample(), hotel_sample_2(), _break(edit)])
    with pytest.raises(DataError, match=words) as e:
        load_complexfuncbench(path)
    assert_located(e.value, path, 3, field)


def test_bad_json_line_names_file_and_line(tmp_path):
    path = write_file(tmp_path / "cfb.jsonl", [flight_sample(), '{"id": "x", "conversations": ['])
    with pytest.raises(DataError, match="not valid JSON") as e:
        load_complexfuncbench(path)
    assert_located(e.value, path, 2, None)


def test_one_tool_name_with_two_schemas_names_both_lines(tmp_path):
    other = hotel_sample_2()
    other["functions"][1] = copy.deepcopy(TIPS)
    other["functions"][1]["description"] = "a different description"
    path = write_file(tmp_path / "cfb.jsonl", [hotel_sample(), flight_sample(), other])
    with pytest.raises(DataError, match="different schema here than on line 1") as e:
        load_complexfuncbench(path)
    assert_located(e.value, path, 3, "functions[1]")


def test_repeated_id_names_both_lines(tmp_path):
    path = write_file(tmp_path / "cfb.jsonl", [hotel_sample(), flight_sample(), hotel_sample()])
    with pytest.raises(DataError, match="also used on line 1") as e:
        load_complexfuncbench(path)
    assert_located(e.value, path, 3, "id")


def test_command_on_bad_input_reports_and_writes_nothing(tmp_path, capsys):
    path = write_file(tmp_path / "cfb.jsonl", [hotel_sample(), _break(lambda s: s["conversations"][6].update(content={}))])
    out = tmp_path / "out"
    assert main([str(path), str(out)]) == 2
    assert f"{path}:2" in capsys.readouterr().err
    assert not out.exists()


def test_success_rule():
    assert response_succeeded({"status": True, "data": []})
    assert response_succeeded([{"id": 1}])
    assert not response_succeeded({"status": False, "data": {}})
    assert not response_succeeded({"error": "nope", "status": True})
    assert not any(response_succeeded(r) for r in (None, "", [], {}))


def _tool(name, *params, enums=()):
    return ToolSpec(name, "", tuple(ParamSpec(p, "string", enum=("A", "B") if p in enums else None) for p in params), ())


def test_dependency_rules_ignore_coincidences():
    tools = {"f": _tool("f", "code", "n", "flag", "kind", enums=("kind",))}
    response = {"data": {"code": "us", "count": 3, "ok": True, "kind": "A", "name": "Lisbon"}}
    calls = [Call("g", {}), Call("f", {"code": "US", "n": 3, "flag": True, "kind": "A"})]
    # Short string, small whole number, boolean and enum value: no link.
    assert infer_dependencies(calls, [response, None], [0, 1], tools) == [(), ()]
    # A real value links (case and spacing normalised), but never within one turn.
    calls = [Call("g", {}), Call("f", {"code": " LISBON "})]
    assert infer_dependencies(calls, [response, None], [0, 1], tools) == [(), (0,)]
    assert infer_dependencies(calls, [response, None], [0, 0], tools) == [(), ()]


def test_float_arguments_match_rounded_response_numbers_only_with_enough_decimals():
    response = [{"coordinates": {"latitude": 32.8967018127441, "longitude": -97.0421981811523, "rating": 4.47}}]
    link = infer_dependencies([Call("a", {}), Call("b", {"lat": 32.8967, "lon": "-97.0422"})], [response, None], [0, 1])
    none = infer_dependencies([Call("a", {}), Call("b", {"rating": 4.5})], [response, None], [0, 1])
    assert link == [(), (0,)] and none == [(), ()]


def test_inferred_dependencies_agree_with_annotated_booking_tasks(booking):
    found = annotated = agreed = 0
    for task in booking.tasks:
        inferred = infer_dependencies([s.call for s in task.steps], [s.response for s in task.steps],
                                      list(range(len(task.steps))), booking.tools)
        for step, deps in zip(task.steps, inferred):
            found += len(deps)
            annotated += len(step.depends_on)
            agreed += len(set(deps) & set(step.depends_on))
    assert agreed / found >= 0.85 and agreed / annotated >= 0.9


def test_module_runs_as_a_command(cfb_file, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "orchestra.data.complexfuncbench",
                           str(cfb_file), str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["calls.jsonl", "tasks.jsonl", "tools.jsonl"]


def test_package_reexports_the_loaders():
    import orchestra.data as data
    assert data.load_complexfuncbench is load_complexfuncbench
    assert data.load_ecosystem is load_ecosystem and callable(data.write_task_dataset)
