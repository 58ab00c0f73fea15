"""The voice library: cloned voices (reference audio + stored clone prompt) and the
CustomVoice model's preset speakers, and the router `talk` uses to turn a voice name into
the model that speaks it. `commands` holds the `sisyphus voices ...` sub-app.

Importing this package loads nothing heavy: models, torch and Silero load on use.
"""
