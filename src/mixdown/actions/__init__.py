"""doit's side: the task dicts of a plan and the actions they run.

:mod:`~mixdown.actions.tasks` makes the task dicts. One module per doit
action: :mod:`~mixdown.actions.render` (an asset into the cache),
:mod:`~mixdown.actions.section` (a section's pre-mix; named, its preview from
:mod:`~mixdown.actions.preview`), :mod:`~mixdown.actions.mix` (a rendition), :mod:`~mixdown.actions.master`
(its master and [master] files in ``build/``) and
:mod:`~mixdown.actions.deliver` (each extra delivery). They share
:mod:`~mixdown.actions.context` (the context, one-line failures, a key made
once) and :mod:`~mixdown.actions.progress`; :mod:`~mixdown.actions.stopping`
lets a build stop cleanly on Ctrl-C; :mod:`~mixdown.actions.shared` reads
through and writes through the remote cache. :mod:`~mixdown.actions.publish`
writes what goes beside the deliverables: captions and chapters
(:mod:`~mixdown.actions.captions`) and an OpenTimelineIO timeline
(:mod:`~mixdown.actions.otio`), from where everything landed
(:mod:`~mixdown.actions.placement`).
"""
