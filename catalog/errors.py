"""healcat's exceptions: one root, each message says what was wrong and with which value."""


class HealcatError(Exception):
    """Root of every error healcat raises on purpose."""


class ConfigurationError(HealcatError):
    """The environment (database URL, home folder) is not usable."""


class QueryError(HealcatError, ValueError):
    """A search was asked with arguments that have no answer (NaN, out of range, unknown id)."""


class IngestError(HealcatError):
    """A release cannot be ingested; the message names the file and what is wrong. The same input
    fails the same way every time, so a job that raises one is not retried (but see
    :class:`MissingInputError`)."""


class MissingInputError(IngestError):
    """A release's input file is not there: a job retries it, as the file may still be arriving."""


class MappingError(IngestError):
    """A survey mapping file is malformed or refers to columns the input does not have."""
