from __future__ import annotations

import pytest

from mixdown.errors import TemplateError
from mixdown.stanza import CueRef, Play, Rest, Say, parse, pronounce, split_line

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
