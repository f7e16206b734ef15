"""Transcription of plain audio files (`udistil transcribe`): any length, any model spec or export."""
