"""Names in sorted order, checked as they come for the two clashes a folder cannot hold: one
name twice, and a name that is a file and also the folder of another. Used where an archive's
names are read (cli/header_schema.py) and where compress lists its inputs (cli/inputs.py), so
that neither holds anything per name."""
from __future__ import annotations


class RepeatedName(ValueError):
    """`name` is at `place` and at the place before it."""

    def __init__(self, name: str, place: int):
        super().__init__(name, place)
        self.name, self.place = name, place


class FileAndFolder(ValueError):
    """`name` is a file, and the folder of a name after it."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class SortedNames:
    """In sorted order every name under `d/` comes after `d`, though not always next (`d-2`,
    `d.txt` sort between): `open` holds the names that a later one could still lie under, each
    a prefix of the next, so only the last needs looking at; a name that is not a prefix of the
    one taken is closed for good (every later name sorts past it too)."""

    def __init__(self):
        self.previous, self.open = None, []

    def take(self, names, first: int) -> bool:
        """Check a run of names (the first of them at place `first`); False where they are out
        of order (nothing is concluded then). Raises RepeatedName or FileAndFolder."""
        previous, open_ = self.previous, self.open
        for number, name in enumerate(names):
            if previous is not None and not previous < name:
                if previous == name:
                    raise RepeatedName(name, first + number)
                return False
            while open_ and not name.startswith(open_[-1]):
                open_.pop()
            if open_ and name[len(open_[-1])] == "/":
                raise FileAndFolder(open_[-1])
            open_.append(name)
            previous = name
        self.previous = previous
        return True
