"""doit's side: the task dicts of a plan and the actions they run.

:mod:`~mixdown.actions.tasks` makes the task dicts; the actions render an
asset into the cache, mix a rendition, master it into ``build/`` and make
each extra delivery. :mod:`~mixdown.actions.stopping` lets a build stop
cleanly on Ctrl-C.
"""
