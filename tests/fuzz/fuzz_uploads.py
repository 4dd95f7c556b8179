"""Fuzz what the intake does with an upload: type detection from the first bytes, and
for photos the decode under pixel caps, the EXIF reading and the stripped working copy,
through the same spool and check a witness's file goes through.

The only acceptable failure is :class:`intake.submission.UploadRefused` (the witness is
told the file cannot be used); anything else would be a 500 on the witness form. Run by
``tests/test_adversarial_fuzz_harnesses.py`` for a bounded number of inputs and by
``make fuzz`` for longer:

    python tests/fuzz/fuzz_uploads.py -max_total_time=60 NEW_CORPUS tests/fuzz/corpus/uploads
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Pillow is instrumented too, so that mutations find their way into its decoders.
with atheris.instrument_imports(
    include=["intake.filetypes", "intake.images", "intake.submission", "PIL"]
):
    from intake import filetypes, submission
    from intake.spool import SealedSpool, UploadBudget

MIB = 1024 * 1024


def check(data: bytes) -> None:
    detected = filetypes.detect(data[:4096])
    assert detected is None or detected.kind in ("image", "audio", "video", "pdf")
    budget = UploadBudget(per_file=8 * MIB, remaining=8 * MIB)
    spool = SealedSpool(budget)
    try:
        spool.write(data)
        try:
            received = submission.check_upload(spool, "invented.bin", "image/jpeg")
        except submission.UploadRefused as refused:
            assert refused.reason in (
                "file_empty",
                "file_type",
                "image_corrupt",
                "image_too_many_pixels",
            ), refused.reason
            return
        assert received.type == detected
        if received.image is not None:
            copy = received.image.working_copy
            assert copy is None or copy[:3] == b"\xff\xd8\xff" or copy[:4] == b"\x89PNG"
            assert max(received.image.width, received.image.height) > 0
    finally:
        spool.close()


def main() -> None:
    warnings.simplefilter("ignore")  # Pillow warns about odd files; refusals are checked
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
