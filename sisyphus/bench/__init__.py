"""`sisyphus bench`: measured latency per stage, voice to voice, and memory.

One module per stage (vad, asr, tts, llm, pipeline), each with `run(ctx: BenchContext)`
adding figures to a shared `BenchReport`; `run.py` picks the models (configured, or
random-weight ones from `models.py`), runs the stages and renders the table. Side-by-side
comparisons against other runners live in benchmarks/, not here.
"""
