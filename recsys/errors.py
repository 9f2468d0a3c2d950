"""The one error type a person sees.

Anything that is the user's to fix (a wrong path, an unknown layout, an unreachable server, a
partition the archive does not hold) raises `RecsysError` with one sentence that names the file,
URL or partition. The CLI prints that sentence instead of a traceback; inside Dagster it becomes the
run's failure description.
"""


class RecsysError(Exception):
    """A problem with the user's input or environment, stated in one sentence."""
