"""What is published beside the deliverables: manifest, report (and captions, chapters, timelines).

Plain data in, files out: the actions gather what a build made
(:mod:`mixdown.actions.publishing`) and hand it here as named types.
"""
