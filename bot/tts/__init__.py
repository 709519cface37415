"""Speech synthesis: Vietnamese text in, audio chunks in the line's format out (normalisation,
Piper clause by clause, the cache of pre-rendered prompts)."""
