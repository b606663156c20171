"""Audio files: WAV/RF64 (:mod:`~mixdown.codecs.wav`), MP3 frames and LAME,
the other encoders, the master made in parts that splice, and the spec
check that decodes every deliverable before it is published."""
