//! Playback of recordings: timing parser (classic and advanced) and a paced writer of the recorded bytes.
