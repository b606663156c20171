"""The demo show's own doit tasks, loaded with mixdown's into the same run.

``doit feed`` (and a plain ``doit``) writes ``build/feed.xml``, a podcast feed
of the MP3 masters, after them; ``doit list`` shows it beside mixdown's tasks.
"""

from pathlib import Path

from mixdown.feed import feed_task

#: where build/ is published; each file's URL in the feed is under it
BASE_URL = "https://example.org/morning-signal/"
HERE = Path(__file__).parent


def task_feed():
    """The podcast feed of the demo's MP3 masters: build/feed.xml."""
    return feed_task(HERE, BASE_URL)
