"""The show: ``project.toml``, the script templates and the variants, read and validated.

:mod:`~mixdown.show.project` checks ``project.toml`` into a
:class:`~mixdown.show.project.Project` (reading it through
:mod:`~mixdown.show.reader`, its sounds in :mod:`~mixdown.show.sounds` and its
settings tables in :mod:`~mixdown.show.tables`); templates render once per variant
row and :mod:`~mixdown.show.stanza` parses them into sections, lines and
cues; :mod:`~mixdown.show.sourcemap` maps what was rendered back to the
template line a message should name. Nothing here imports numpy or doit.
"""
