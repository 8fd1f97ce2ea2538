"""The one exception type for bad user input."""


class UserError(ValueError):
    """Bad user input; the CLI prints the message alone and exits with status 2."""
