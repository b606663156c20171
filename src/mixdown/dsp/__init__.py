"""Signal processing: arrays in, arrays out.

Float32 audio of ``[shape=(n, channels)]`` at an explicit ``sr``
(:mod:`~mixdown.dsp.signal`); the BS.1770 meter (:mod:`~mixdown.dsp.loudness`),
gain followers (:mod:`~mixdown.dsp.dynamics`), speech processing, the
mixer with its bed and ducking, and the master (loudness and true-peak limiting).
"""
