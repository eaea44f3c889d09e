"""Errors that the entry points turn into a one-line message instead of a traceback."""


class Sam4MedError(Exception):
    """A problem with the user's input (config, checkpoint, data) that a message can explain."""


class ConfigError(Sam4MedError):
    """A required setting is missing or has an impossible value."""


class CheckpointError(Sam4MedError):
    """A checkpoint file is missing, unreadable or does not fit the chosen backbone."""


class DataError(Sam4MedError):
    """A dataset file is missing, unreadable or inconsistent with the rest of the dataset."""
