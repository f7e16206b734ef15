"""User-facing errors.

A `UdistilError` carries a message meant for the person running the recipe: it names the
file (and the cut id when there is one) and says what to do.  The `udistil` entry point
prints it on one line and exits with status 1 instead of dumping a traceback from deep
inside transformers or lhotse.
"""


class UdistilError(Exception):
    """An error the user can act on; printed without a traceback."""


class BadAudioError(UdistilError):
    """A recording that cannot be used: missing, corrupt, empty, silent or too long."""

    def __init__(self, path, reason, cut_id=None):
        self.path = str(path)
        # One line, whatever the decoder said (lhotse appends multi-line "[extra info]").
        reason = " ".join(str(reason).split())
        self.reason = reason if len(reason) <= 300 else reason[:297] + "..."
        self.cut_id = cut_id
        where = f"{self.path}" + (f" (cut {cut_id})" if cut_id else "")
        super().__init__(f"{where}: {reason}")


class ManifestError(UdistilError):
    """A manifest that is missing, unreadable or violates the data contract."""
