"""Personal data in excerpts is found before approval: names (the Russian model, the
instance's names, Kazakh and Dungan name forms), phone numbers, IINs with a valid check
digit, e-mail addresses, street addresses, vehicle plates and dates of birth, in Russian
and Kazakh texts. Every person, number and address here is invented."""

from __future__ import annotations

import pytest

from review.export import pii


def _iin(first_eleven: str) -> str:
    """An invented IIN with a correct check digit."""
    for digit in "0123456789":
        if pii.iin_valid(first_eleven + digit):
            return first_eleven + digit
    pytest.skip("no check digit for this prefix")


def kinds(text: str, names=()) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for finding in pii.find(text, names):
        found.setdefault(finding.kind, []).append(finding.text)
    return found


def test_russian_statement_with_a_dungan_name_and_every_kind_of_detail():
    iin = _iin("85031230012")
    text = (
        "Меня зовут Хасан Сушанлович Ванахунов, я родился 12.03.1985 в Масанчи. "
        "Мой телефон +7 701 123 45 67, почта vanakhunov.test@example.org. Живу по "
        "ул. Абая, д. 12, кв. 5, ИИН %s. Полиция увезла меня на машине 123ABC02, "
        "а соседа Ма Дзюнь-теста забрали на старой A 123 BCD." % iin
    )
    found = kinds(text)
    assert "Хасан Сушанлович Ванахунов" in found["name"]
    assert any(n.startswith("Ма Дзюнь") for n in found["name"])
    assert found["birth_date"] == ["12.03.1985"]
    assert found["phone"] == ["+7 701 123 45 67"]
    assert found["email"] == ["vanakhunov.test@example.org"]
    assert found["address"] == ["ул. Абая, д. 12, кв. 5"]
    assert found["iin"] == [iin]
    assert found["plate"] == ["123ABC02", "A 123 BCD"]
    masked = pii.mask(text, pii.find(text), "ru")
    for secret in ("Ванахунов", "701 123", "example.org", "Абая", iin, "123ABC02", "1985"):
        assert secret not in masked
    assert "[имя]" in masked and "[ИИН]" in masked and "[номер машины]" in masked


def test_kazakh_statement_with_kazakh_and_dungan_names():
    text = (
        "Менің атым Айгүл Примерова, 1990 жылы туған. Абай көшесі, 15 үй. "
        "Қасымда Нұрлан Тестов пен Юсуп Сушанло болды. Телефон 8 (727) 255-12-34."
    )
    found = kinds(text)
    assert {"Айгүл Примерова", "Нұрлан Тестов"} <= set(found["name"])
    assert any("Сушанло" in n for n in found["name"])
    assert found["birth_date"] == ["1990"]
    assert found["address"] == ["Абай көшесі, 15 үй"]
    assert found["phone"] == ["8 (727) 255-12-34"]
    assert pii.mask(text, pii.find(text), "kk").count("[есім]") == len(found["name"])


def test_a_twelve_digit_number_is_an_iin_only_with_its_check_digit():
    good = _iin("90010130012")
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert pii.iin_valid(good) and not pii.iin_valid(bad)
    assert kinds("номер %s" % good).get("iin") == [good]
    assert "iin" not in kinds("номер %s" % bad)


def test_names_recorded_in_the_instance_are_found_even_unusual_ones():
    text = "Потом пришёл Zhelvakh и всё записал."
    assert "name" not in kinds(text)
    assert kinds(text, ["Zhelvakh"])["name"] == ["Zhelvakh"]


def test_a_text_without_personal_data_has_no_findings():
    assert pii.find("Ночью в селе горели дома, люди бежали к реке.") == []


def test_the_model_is_loaded_once_per_process():
    text = "Соседка Аиша Примерова рассказала, что полиция увезла Ивана Тестова."
    pii.find(text)
    model = pii._natasha()
    for _ in range(3):
        assert [f.text for f in pii.find(text)] == ["Аиша Примерова", "Ивана Тестова"]
    assert pii._natasha() is model
