"""Renderers that run on this machine: piper (offline TTS), synth
(procedural SFX and beds), file (media files) and silence."""
