"""Speech recognition: 16 kHz PCM16 chunks in, partial and final transcripts out. One
shared model per process, one recognition per call, decoding off the event loop."""
