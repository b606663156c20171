"""Signal processing: arrays in, arrays out.

Float32 audio of ``[shape=(n, channels)]`` at an explicit ``sr``
(:mod:`~mixdown.dsp.signal`); the BS.1770 meter (:mod:`~mixdown.dsp.loudness`),
the gain machinery: limiter and release follower (:mod:`~mixdown.dsp.dynamics`),
speech processing (:mod:`~mixdown.dsp.speech`), the mixer's public API and
layout (:mod:`~mixdown.dsp.mixer`) with its music bed (:mod:`~mixdown.dsp.bed`),
ducking (:mod:`~mixdown.dsp.ducking`) and threaded rendering
(:mod:`~mixdown.dsp.rendering`), and the master: loudness normalisation
(:mod:`~mixdown.dsp.master`).
"""
