"""Audio at the edges: formats, G.711, resampling and framing (bytes + format -> chunks), and
voice activity (16 kHz frames -> speech started, paused, resumed, ended)."""
