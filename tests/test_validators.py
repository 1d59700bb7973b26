from __future__ import annotations

import datetime as dt

import pytest

from wechat_backend.validators import (
    InvalidValue,
    id_gender_code,
    normalize_name,
    parse_archive_no,
    parse_id_number,
    parse_mobile,
    upgrade_id15,
)

TODAY = dt.date(2026, 11, 25)


@pytest.mark.parametrize("number", ["11010519491231002X", "440524188001010014", "370101190102039973"])
def test_published_id_numbers_are_accepted(number: str) -> None:
    assert parse_id_number(number, today=TODAY) == number


def test_lower_case_x_and_full_width_digits_are_normalised() -> None:
    assert parse_id_number("11010519491231002x", today=TODAY) == "11010519491231002X"
    assert parse_id_number("１１０１０５１９４９１２３１００２Ｘ", today=TODAY) == "11010519491231002X"


def test_a_wrong_check_digit_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidValue) as exc:
        parse_id_number("110105194912310021", today=TODAY)
    assert exc.value.field == "id_number"
    assert "校验位" in exc.value.message
    assert "110105194912310021" not in exc.value.message


@pytest.mark.parametrize("number", ["11010519490231002X", "1101051949123100", "abcdefghijklmnopqr", ""])
def test_impossible_dates_and_shapes_are_refused(number: str) -> None:
    with pytest.raises(InvalidValue):
        parse_id_number(number, today=TODAY)


def test_a_birth_date_in_the_future_is_refused() -> None:
    first17 = "37150220270101001"
    from wechat_backend.validators import id_check_char

    with pytest.raises(InvalidValue, match="晚于今天"):
        parse_id_number(first17 + id_check_char(first17), today=TODAY)


def test_fifteen_digit_numbers_are_upgraded_to_eighteen() -> None:
    # 15-digit form of the GB 11643 example 110105491231002 -> 11010519491231002X
    assert upgrade_id15("110105491231002") == "11010519491231002X"
    assert parse_id_number("110105491231002", today=TODAY) == "11010519491231002X"


def test_gender_follows_the_sequence_digit() -> None:
    assert id_gender_code("440524188001010014") == "1"
    assert id_gender_code("11010519491231002X") == "2"


def test_archive_number_must_start_with_the_county() -> None:
    assert parse_archive_no("37152200100100006", county_code="371522") == "37152200100100006"
    with pytest.raises(InvalidValue, match="前6位"):
        parse_archive_no("37150200100100006", county_code="371522")
    with pytest.raises(InvalidValue, match="17位"):
        parse_archive_no("3715220010010000")


@pytest.mark.parametrize("raw", ["13800138000", "138 0013 8000", "+8613800138000", "8613800138000", "138-0013-8000"])
def test_mobile_numbers_are_normalised(raw: str) -> None:
    assert parse_mobile(raw) == "13800138000"


@pytest.mark.parametrize("raw", ["12800138000", "1380013800", "063512345678", "", "abc"])
def test_non_mobile_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="11位"):
        parse_mobile(raw)


def test_names_compare_after_nfkc_spaces_and_middle_dots() -> None:
    assert normalize_name(" 阿依古丽 • 买买提 ") == normalize_name("阿依古丽·买买提")
    assert normalize_name("刘　德华") == "刘德华"
