"""Data stage: asciicast I/O, terminal emulation and rendering, the pty recorder, session
generators, clips and captions, and the on-disk dataset format."""
