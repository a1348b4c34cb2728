"""The Discord voice transport: DAVE-aware receive from UDP packets to per-speaker 16 kHz PCM."""
