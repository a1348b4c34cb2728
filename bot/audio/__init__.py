"""Pure audio components of the receive path, no I/O:
Opus packets → 48 kHz stereo PCM (``opus``) → 16 kHz mono (``resample``) → voice activity
(``vad``) → utterances (``utterances``); plus reference-clip checks (``clip``) and the FFmpeg
binary's location (``ffmpeg``). Import the submodules directly; this package imports nothing so
that loading one stage never pulls in PyAV or libopus.
"""
