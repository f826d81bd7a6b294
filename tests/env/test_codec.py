from orchestra.data.types import Call
from orchestra.env.codec import ParseError, format_tool_call, parse_tool_calls


def test_round_trip_of_a_formatted_call():
    call = Call("Search_Flights", {"fromId": "BOS.AIRPORT", "adults": 2})
    [parsed] = parse_tool_calls("I will search.\n" + format_tool_call(call))
    assert parsed.ok and parsed.call == call


def test_every_block_in_order_with_several_calls_in_one_turn():
    text = ('<tool_call>{"name": "a", "arguments": {}}</tool_call> and '
            '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>')
    assert [p.call.function for p in parse_tool_calls(text)] == ["a", "b"]


def test_arguments_as_json_string_are_decoded():
    [p] = parse_tool_calls('<tool_call>{"name": "a", "arguments": "{\\"x\\": \\"1\\"}"}</tool_call>')
    assert p.ok and p.call.arguments == {"x": "1"} and p.arguments_were_string


def test_malformed_blocks_become_error_codes_not_exceptions():
    text = ('<tool_call>{"name": oops}</tool_call>'
            '<tool_call>[1, 2]</tool_call>'
            '<tool_call>{"arguments": {}}</tool_call>'
            '<tool_call>{"name": "a", "arguments": "not json"}</tool_call>'
            '<tool_call>{"name": "a", "arguments": [1]}</tool_call>'
            '<tool_call>{"name": "a", "argu')
    errors = [p.error for p in parse_tool_calls(text)]
    assert errors == [ParseError.INVALID_JSON, ParseError.NOT_AN_OBJECT, ParseError.MISSING_NAME,
                      ParseError.BAD_ARGUMENTS, ParseError.BAD_ARGUMENTS, ParseError.INVALID_JSON]


def test_missing_arguments_mean_no_arguments():
    [p] = parse_tool_calls('<tool_call>{"name": "a"}</tool_call>')
    assert p.ok and p.call.arguments == {}


def test_text_without_calls_parses_to_nothing():
    assert parse_tool_calls("The cheapest flight costs 120 USD.") == []
