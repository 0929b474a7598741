"""kit: the Digit Recognizer competition toolkit."""

__version__ = "0.1.0"
COMPETITION = "digit-recognizer"
