"""The one error type for bad user input; the CLI turns it into a message and exit code 2."""


class ConfigError(ValueError):
    """Input a user can fix: the message names the key and says what to change."""


class Interrupted(Exception):
    """A sweep stopped by SIGINT/SIGTERM: state saved, resumable; the CLI exits 130."""
