from __future__ import annotations

import pytest

from mixdown.errors import TemplateError
from mixdown.show.stanza import CueRef, Play, Rest, Say, parse, pronounce, split_line

SCRIPT = """\
## intro music=intro
Good morning,
Anna! [sfx:chime] Here is the news.

[voice:ben] Thanks. [pause 0.8s] First, the weather [laughs].

[sfx:door]

## close voice=ben music=none
Bye.[sfx:chime]
"""


def test_sections_paragraphs_cues_pauses_and_voices() -> None:
    intro, close = parse(SCRIPT, source="s.j2")
    assert (intro.name, intro.settings, intro.line) == ("intro", {"music": "intro"}, 1)
    first, thanks, rest, weather, door = intro.items
    assert first == Say("Good morning, Anna! Here is the news.", None, (CueRef("chime", 20),), 2)
    assert first.text[: first.cues[0].at] == "Good morning, Anna! "
    assert thanks == Say("Thanks.", "ben", (), 5)
    assert rest == Rest(0.8, 5)
    assert weather.text == "First, the weather [laughs]." and weather.voice == "ben"
    assert door == Play("door", 7)
    assert close.settings == {"voice": "ben", "music": "none"}
    assert close.items == [Say("Bye.", None, (CueRef("chime", 4),), 10)]


def test_text_before_any_heading_is_section_main() -> None:
    (only,) = parse("Just one line.\n", source="s.j2")
    assert only.name == "main" and only.items[0].text == "Just one line."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "s.j2: the script is empty"),
        ("## a\n\n## b\nText.\n", "s.j2:1: section 'a' is empty"),
        ("## a\nx\n## a\ny\n", "s.j2:3: section 'a' appears twice"),
        ("## a tempo=3\nx\n", "s.j2:1: bad section setting 'tempo=3'"),
        ("## a music=loud\nx\n", "s.j2:1: music=loud"),
        ("## a\nHello [sxf:door] there.\n", "s.j2:2: unknown directive '[sxf:door]'"),
        ("## a\nHello [pause soon].\n", "s.j2:2: bad pause"),
        ("## a\nHello [voice:ben] there.\n", "s.j2:2: [voice:…] must open the paragraph"),
        ("## a\nHello [sfx:] there.\n", "s.j2:2: '[sfx:]' needs a name"),
    ],
)
def test_errors_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse(text, source="s.j2")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_pause_units() -> None:
    (section,) = parse("## a\nOne [pause 300ms] two [pause] three [pause 2s]\n", source="s")
    assert [i.seconds for i in section.items if isinstance(i, Rest)] == [0.3, 0.5, 2.0]


def test_split_line_keeps_sentences_and_cues_in_place() -> None:
    say = Say("One two three. Four five six seven! Eight nine.", None, (CueRef("a", 15), CueRef("b", 47)), 3)
    pieces = split_line(say, 20)
    assert [p.text for p in pieces] == ["One two three.", "Four five six seven!", "Eight nine."]
    assert all(len(p.text) <= 20 for p in pieces)
    assert pieces[1].cues == (CueRef("a", 0),)
    assert pieces[2].cues == (CueRef("b", len("Eight nine.")),)
    assert split_line(say, None) == [say]


def test_split_line_breaks_an_overlong_sentence_at_a_comma_or_space() -> None:
    text = "alpha beta gamma, delta epsilon zeta eta theta iota kappa lambda"
    pieces = split_line(Say(text, None, (), 1), 25)
    assert all(len(p.text) <= 25 for p in pieces)
    assert " ".join(p.text for p in pieces) == text
    assert pieces[0].text == "alpha beta gamma,"


def test_pronunciations_are_whole_words() -> None:
    rules = {"SQL": "sequel", "km/h": "kilometres per hour"}
    assert pronounce("SQL and SQLite at 50 km/h.", rules) == "sequel and SQLite at 50 kilometres per hour."


def test_settings_default_to_none_and_stay_voice_and_music_only() -> None:
    intro, close = parse(SCRIPT, source="s.j2")
    assert (intro.at, intro.duck, close.at, close.duck) == (None, {}, None, {})
    (news,) = parse("## news voice=ben at=1:30 duck_db=-18 music=main\nText.\n", source="s.j2")
    assert news.settings == {"voice": "ben", "music": "main"}
    assert (news.at, news.duck) == (90.0, {"duck_db": -18.0})


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("90.25s", 90.25),
        ("1500ms", 1.5),
        ("0", 0.0),
        ("1:30", 90.0),
        ("01:30.5", 90.5),
        ("90:00", 5400.0),
        ("1:02:03.5", 3723.5),
        ("0:00:07", 7.0),
    ],
)
def test_at_accepts_seconds_milliseconds_and_clock_times(value: str, seconds: float) -> None:
    (section,) = parse(f"## news at={value}\nText.\n", source="s.j2")
    assert section.at == pytest.approx(seconds)
    assert isinstance(section.at, float)


@pytest.mark.parametrize(("value", "seconds"), [("0.1", 0.1), ("0.1s", 0.1), ("100ms", 0.1), ("0", 0.0)])
@pytest.mark.parametrize("name", ["duck_attack", "duck_release", "duck_hold"])
def test_duck_times_accept_seconds_and_milliseconds(name: str, value: str, seconds: float) -> None:
    (section,) = parse(f"## news {name}={value}\nText.\n", source="s.j2")
    assert section.duck == {name: pytest.approx(seconds)}


@pytest.mark.parametrize(("value", "db"), [("-18", -18.0), ("-6.5", -6.5), ("0", 0.0), ("-0", 0.0)])
def test_duck_db_is_a_number_of_db_at_most_zero(value: str, db: float) -> None:
    (section,) = parse(f"## news duck_db={value}\nText.\n", source="s.j2")
    assert section.duck == {"duck_db": db}
    assert str(section.duck["duck_db"]) != "-0.0"  # -0 and 0 give one mix key


def test_duck_settings_come_out_in_one_order_whatever_the_heading_order() -> None:
    heading = "## news duck_hold=0.4 duck_release=1.0 duck_db=-18 duck_attack=0.1\nText.\n"
    (section,) = parse(heading, source="s.j2")
    assert section.duck == {"duck_db": -18.0, "duck_attack": 0.1, "duck_release": 1.0, "duck_hold": 0.4}
    assert list(section.duck) == ["duck_db", "duck_attack", "duck_release", "duck_hold"]


AT_HINT = "; write at=90, at=90s, at=1500ms, at=1:30 or at=1:02:03.5"


@pytest.mark.parametrize(
    ("heading", "message", "hint"),
    [
        ("at=-5", "s.j2:3: 'at=-5' is before the programme starts", AT_HINT),
        ("at=soon", "s.j2:3: bad time 'at=soon'", AT_HINT),
        ("at=1:75", "s.j2:3: bad time 'at=1:75': minutes and seconds go up to 59", AT_HINT),
        ("at=1:60:00", "s.j2:3: bad time 'at=1:60:00': minutes and seconds go up to 59", AT_HINT),
        ("at=1:2:3:4", "s.j2:3: bad time 'at=1:2:3:4'", AT_HINT),
        ("at=5min", "s.j2:3: bad time 'at=5min'", AT_HINT),
        ("at=", "s.j2:3: bad section setting 'at='", "; use voice=…, music=…, at=…, duck_db=…"),
        ("duck_db=3", "s.j2:3: 'duck_db=3' would raise the bed", "; use 0 or less, like duck_db=-18"),
        ("duck_db=-18dB", "s.j2:3: 'duck_db=-18dB' is not a number of dB", "; write duck_db=-18"),
        ("duck_db=nan", "s.j2:3: 'duck_db=nan' is not a number of dB", "; write duck_db=-18"),
        (
            "duck_attack=-0.1",
            "s.j2:3: 'duck_attack=-0.1' cannot be negative",
            "; write duck_attack=0.1, duck_attack=0.1s or duck_attack=100ms",
        ),
        (
            "duck_release=slow",
            "s.j2:3: 'duck_release=slow' is not a time",
            "; write duck_release=0.1, duck_release=0.1s or duck_release=100ms",
        ),
        (
            "duck_hold=1:00",
            "s.j2:3: 'duck_hold=1:00' is not a time",
            "; write duck_hold=0.1, duck_hold=0.1s or duck_hold=100ms",
        ),
        ("duck=-18", "s.j2:3: bad section setting 'duck=-18'", "or duck_hold=…"),
        ("at=1 at=2", "s.j2:3: section setting at= is given twice", "; keep one"),
    ],
)
def test_marker_and_duck_errors_name_file_line_and_fix(heading: str, message: str, hint: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse(f"## intro\nHello.\n## news {heading}\nText.\n", source="s.j2")
    assert str(err.value).startswith(message), str(err.value)
    assert hint in str(err.value)
    assert "\n" not in str(err.value)


def test_markers_increase_in_section_order() -> None:
    script = "## intro at=5\nHi.\n\n## news at=1:30\nNews.\n\n## sport\nSport.\n\n## weather at=3:00\nSun.\n"
    assert [s.at for s in parse(script, source="s.j2")] == [5.0, 90.0, None, 180.0]


@pytest.mark.parametrize(
    ("late", "message"),
    [
        ("at=60", "s.j2:7: section 'weather' at=60 is not after section 'news' (line 4) at 1:30"),
        ("at=90s", "s.j2:7: section 'weather' at=90s is not after section 'news' (line 4) at 1:30"),
        ("at=4", "s.j2:7: section 'weather' at=4 is not after section 'news' (line 4) at 1:30"),
    ],
)
def test_a_marker_not_after_the_one_before_names_both_sections(late: str, message: str) -> None:
    script = f"## intro at=5\nHi.\n\n## news at=1:30\nNews.\n\n## weather {late}\nSun.\n"
    with pytest.raises(TemplateError) as err:
        parse(script, source="s.j2")
    assert (
        str(err.value) == message + "; markers must increase down the script; put the sections in time order"
    )


def test_a_heading_name_with_a_character_not_allowed_says_so() -> None:
    with pytest.raises(TemplateError) as err:
        parse("## fore/cast\nText.\n", source="s.j2")
    assert str(err.value) == (
        "s.j2:1: section name 'fore/cast' has a character that is not allowed; use letters, digits, "
        "'_', '-' and '.', starting with a letter or digit: '## intro'"
    )
    with pytest.raises(TemplateError, match=r"^s.j2:1: a section heading needs a name"):
        parse("##\nText.\n", source="s.j2")


# Each line of rendered text came from (file, line) of a template; errors and items name that.
ORIGINS = [("a.j2", 7), ("a.j2", 9), ("inc.j2", 2), ("inc.j2", 3), ("a.j2", 12), ("a.j2", 14)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("## a\nx\n\n## a\ny\n", "inc.j2:3: section 'a' appears twice (first at a.j2:7)"),
        ("## a\nOne\nand [sxf:door].\n", "inc.j2:2: unknown directive '[sxf:door]'"),
        ("## a\nOne\nand\nthen [pause x].\n", "inc.j2:3: bad pause '[pause x]'"),
        (
            "## a at=9\nx\n\n## b\ny\n## c at=5\n",
            "a.j2:14: section 'c' at=5 is not after section 'a' (line 7)",
        ),
        ("## a\n\n## b\nx\n", "a.j2:7: section 'a' is empty"),
    ],
)
def test_errors_name_the_origin_of_their_line(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as err:
        parse(text, source="a.j2", origins=ORIGINS)
    assert str(err.value).startswith(message), str(err.value)


def test_items_keep_the_file_and_line_they_came_from() -> None:
    (section,) = parse("## a\nOne\ntwo [pause 1s] three\n\n[sfx:ding]\n", source="a.j2", origins=ORIGINS)
    first, rest, second, ding = section.items
    assert (section.where, first.where, rest.where, second.where) == (
        "a.j2:7",
        "a.j2:9",
        "inc.j2:2",
        "a.j2:9",
    )
    assert isinstance(ding, Play) and ding.where == "a.j2:12"
    assert first == Say("One two", None, (), 9) and first.file == "a.j2"  # the file does not enter equality
