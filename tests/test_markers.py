"""A section marker that cannot be met is named by its section and its line in the template."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .test_build import doit

STANZA = """\
## hello
Hello {{ name }}, this is a long opening line that takes a good few seconds to say out loud.

{% if true %}
## news at=0:01
Here is the news.
{% endif %}
"""


def test_an_overrun_marker_names_its_section_and_template_line(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show(stanzas__briefing_dot_j2=STANZA)
    code, out, err = doit(root, fakes, "mix:news/briefing@anna")
    assert code != 0 and "Traceback" not in out + err
    [line] = [line for line in (out + err).splitlines() if "is marked at" in line]
    assert "stanzas/briefing.j2:5: section 'news' is marked at 1 s but what comes before it runs to" in line
    assert not list(root.glob("build/**/*.wav"))
