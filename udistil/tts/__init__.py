"""Text to speech: espeak-ng (default, offline) and XTTS-v2 (optional, via coqui-tts)."""
