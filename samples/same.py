"""Check that a restored folder holds what the original does, as bbzip promises: every file with
the same bytes, except PNG and PNM images, which bbzip re-encodes: those with the same size, mode
and pixels.

    python samples/same.py samples restored/samples
"""
import sys
from pathlib import Path

from PIL import Image

REENCODED = {".png", ".pgm", ".ppm", ".pbm"}


def same(original: Path, restored: Path) -> bool:
    if not restored.is_file():
        return False
    if original.suffix.lower() in REENCODED:
        with Image.open(original) as a, Image.open(restored) as b:
            return (a.size, a.mode, a.tobytes()) == (b.size, b.mode, b.tobytes())
    return original.read_bytes() == restored.read_bytes()


def main(original: str, restored: str) -> int:
    files = sorted(path.relative_to(original) for path in Path(original).rglob("*") if path.is_file())
    differ = [name for name in files if not same(Path(original, name), Path(restored, name))]
    for name in differ[:10]:
        print(f"differs or missing: {name}")
    print(f"{len(files) - len(differ)} of {len(files)} files the same ({restored} against {original})")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
