"""The engine: recognising jobs and polls, reading states, the per-job state machine, cache
analysis and findings. It knows nothing of mitmproxy or SQLite (standard library and pydantic
only): the addon, the offline readers and the tests all feed it `Observation`s and get `Update`s."""
