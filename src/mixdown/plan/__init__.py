"""The plan: every asset by content key, and one mix and master per rendition.

:mod:`~mixdown.plan.planner` turns a validated show into a
:class:`~mixdown.plan.model.Plan`; :mod:`~mixdown.plan.takes` pins re-rolled
assets; :mod:`~mixdown.plan.memo` keeps the plan between builds while nothing
it read has changed.
"""
