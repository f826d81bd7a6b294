import pytest

from orchestra.data.canonical import canonical_key, hash64, normalise_arguments, split_hash


def test_null_arguments_are_dropped():
    assert canonical_key("f", {"a": 1, "b": None}) == canonical_key("f", {"a": 1})


def test_numeric_string_with_dot_becomes_float():
    assert normalise_arguments({"x": "1.50"}) == {"x": 1.5}
    assert canonical_key("f", {"x": "40.4168"}) == canonical_key("f", {"x": 40.4168})


def test_numeric_string_without_dot_becomes_int():
    assert normalise_arguments({"x": "-1364995"}) == {"x": -1364995}
    assert isinstance(normalise_arguments({"x": "12"})["x"], int)


def test_non_numeric_strings_stay_strings():
    assert normalise_arguments({"a": "BOS.AIRPORT", "b": "2024-11-15", "c": "08:00", "d": "nan", "e": "1e5"}) == {
        "a": "BOS.AIRPORT", "b": "2024-11-15", "c": "08:00", "d": "nan", "e": "1e5"}


def test_lists_and_objects_are_normalised_element_by_element():
    args = {"legs": [{"fromId": "BOM.AIRPORT", "date": "2024-05-25", "x": None, "n": "3"}], "ids": ["1", "2.5"]}
    assert normalise_arguments(args) == {"ids": [1, 2.5], "legs": [{"date": "2024-05-25", "fromId": "BOM.AIRPORT", "n": 3}]}


def test_key_ignores_argument_order_and_is_sorted_json():
    a = canonical_key("Search", {"b": "x", "a": "2"})
    assert a == canonical_key("Search", {"a": 2, "b": "x"})
    assert a == 'Search:[["a",2],["b","x"]]'


def test_function_name_is_part_of_the_key():
    assert canonical_key("f", {"a": 1}) != canonical_key("g", {"a": 1})


def test_int_and_float_keys_differ_as_in_the_recorded_cache():
    assert canonical_key("f", {"a": "1"}) != canonical_key("f", {"a": "1.0"})


def test_hash_is_stable_and_splits_into_two_words():
    h = hash64("Search:[]")
    assert h == hash64("Search:[]") and 0 <= h < 2**64
    hi, lo = split_hash(h)
    assert (hi << 32) | lo == h


@pytest.mark.parametrize("value", [True, False, 0, 3.25, "plain"])
def test_scalars_other_than_numeric_strings_are_kept(value):
    assert normalise_arguments({"v": value}) == {"v": value}


def test_lone_surrogates_from_model_text_hash_without_error():
    import json
    key = canonical_key("f", json.loads('{"q": "\\ud800"}'))
    assert hash64(key) != hash64(canonical_key("f", {"q": "x"}))
