import pytest

from orchestra.data.types import Call
from orchestra.env.validators import ErrorKind, ErrorTable, validate

FLIGHTS = {"fromId": "BOS.AIRPORT", "toId": "LAX.AIRPORT", "departDate": "2024-11-15"}
CARS = {"pick_up_latitude": 40.1, "pick_up_longitude": -73.2, "drop_off_latitude": 40.1,
        "drop_off_longitude": -73.2, "pick_up_date": "2024-11-15", "drop_off_date": "2024-11-16",
        "pick_up_time": "08:00", "drop_off_time": "10:00"}


def kind(booking, function, **changes):
    base = {"Search_Flights": FLIGHTS, "Search_Car_Rentals": CARS}.get(function, {})
    args = {k: v for k, v in {**base, **changes}.items() if v is not ...}
    problem = validate(Call(function, args), booking.tools)
    return None if problem is None else problem.kind


def test_every_recorded_call_is_valid(booking):
    assert [e for e in booking.cache_entries if validate(Call(e.function, e.arguments), booking.tools)] == []


def test_dates_in_2024_are_valid(booking):
    assert kind(booking, "Search_Flights", departDate="2024-01-02") is None


@pytest.mark.parametrize("function,changes,expected", [
    ("Nope", {}, ErrorKind.UNKNOWN_FUNCTION),
    ("Search_Flights", {"color": "red"}, ErrorKind.UNKNOWN_PARAMETER),
    ("Search_Flights", {"toId": ...}, ErrorKind.MISSING_REQUIRED),
    ("Search_Flights", {"toId": "  "}, ErrorKind.EMPTY_STRING),
    ("Search_Flights", {"departDate": "15/11/2024"}, ErrorKind.BAD_DATE),
    ("Search_Flights", {"departDate": "2024-02-30"}, ErrorKind.BAD_DATE),
    ("Search_Flights", {"returnDate": "2024-11-15"}, ErrorKind.END_NOT_AFTER_START),
    ("Search_Flights", {"adults": 0}, ErrorKind.COUNT_BELOW_ONE),
    ("Search_Flights", {"adults": "two"}, ErrorKind.NOT_A_NUMBER),
    ("Search_Car_Rentals", {"pick_up_latitude": 91}, ErrorKind.LATITUDE_OUT_OF_RANGE),
    ("Search_Car_Rentals", {"drop_off_longitude": "-181.5"}, ErrorKind.LONGITUDE_OUT_OF_RANGE),
    ("Search_Car_Rentals", {"pick_up_time": "8 AM"}, ErrorKind.BAD_TIME),
    ("Search_Car_Rentals", {"pick_up_time": "24:00"}, ErrorKind.BAD_TIME),
    ("Search_Car_Rentals", {"drop_off_date": "2024-11-14"}, ErrorKind.END_NOT_AFTER_START),
])
def test_each_rule_gives_its_specific_error(booking, function, changes, expected):
    assert kind(booking, function, **changes) == expected


def test_car_pick_up_and_drop_off_may_share_a_day(booking):
    assert kind(booking, "Search_Car_Rentals", drop_off_date="2024-11-15") is None


def test_malformed_lists(booking):
    legs_ok = [{"fromId": "BOS.AIRPORT", "toId": "LAX.AIRPORT", "date": "2024-11-15"}]
    assert validate(Call("Search_Flights_Multi_Stops", {"legs": legs_ok}), booking.tools) is None
    for bad in ("BOS to LAX", ["BOS.AIRPORT"], [], [{"fromId": "A", "toId": "B", "date": "tomorrow"}]):
        problem = validate(Call("Search_Flights_Multi_Stops", {"legs": bad}), booking.tools)
        assert problem.kind in (ErrorKind.MALFORMED_LIST, ErrorKind.BAD_DATE), bad


def test_enum_from_schema():
    from orchestra.data.schemas import parse_tool
    tool = parse_tool({"name": "Sort", "parameters": {"properties": {"order": {"type": "string", "enum": ["asc", "desc"]}},
                                                      "required": ["order"]}})
    tools = {"Sort": tool}
    assert validate(Call("Sort", {"order": "asc"}), tools) is None
    assert validate(Call("Sort", {"order": "up"}), tools).kind == ErrorKind.NOT_IN_ENUM
    table = ErrorTable(tools)
    assert "one of" in table.messages[table.row(validate(Call("Sort", {"order": "up"}), tools))]["error"]


def test_error_messages_name_function_and_parameter(booking):
    table = ErrorTable(booking.tools)
    problem = validate(Call("Search_Flights", {**FLIGHTS, "departDate": "tomorrow"}), booking.tools)
    text = table.messages[table.row(problem)]["error"]
    assert "departDate" in text and "Search_Flights" in text and "YYYY-MM-DD" in text
    assert table.messages[table.row(None)] == {"error": "No results found"}
