"""Numbers typed into the app's fields (prefine_core.entry)."""
import pytest

from prefine_core.entry import parse_number, shown


@pytest.mark.parametrize("typed,whole,value", [("4000", True, 4000), (" 2 ", True, 2), ("1e3", True, 1000),
                                               ("0", True, 0), ("0.0e5", False, 0.0), ("-0", False, 0.0),
                                               ("12345678901234567890", True, 12345678901234567890),
                                               ("1e-3", False, 0.001), ("-0.5", False, -0.5), (7, False, 7.0),
                                               (2.0, True, 2)])
def test_what_was_typed_becomes_that_number(typed, whole, value):
    parsed = parse_number("x", typed, whole)
    assert parsed == value and type(parsed) is (int if whole else float)


@pytest.mark.parametrize("typed,whole,message", [("", True, "x is empty: type a whole number"),
                                                 ("2.5", True, "x must be a whole number, got '2.5'"),
                                                 ("1e400", False, "x must be a finite number, got '1e400'"),
                                                 ("nan", False, "x must be a finite number"),
                                                 ("4k", False, "x must be a number, got '4k'"),
                                                 ("٣٠٠", True, "x must be a whole number in digits 0-9, got '٣٠٠'"),
                                                 ("１０", False, "x must be a number in digits 0-9"),
                                                 (True, True, "x must be a whole number, got True"),
                                                 ("4_0", True, "x must be a whole number, got '4_0'"),  # Python: 40
                                                 ("1e-400", False, "x is too close to 0 to hold as a number, got "
                                                                   "'1e-400'")])  # it read as 0.0
def test_anything_else_is_refused_by_name(typed, whole, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_number("x", typed, whole)


@pytest.mark.parametrize("value", [4000, 0.05, 1e-7, 3e-4, 0.001, 9999.0])
def test_a_field_shows_a_number_that_reads_back_the_same(value):
    assert parse_number("x", shown(value), isinstance(value, int)) == value
