"""Run a volume preparation in its own process, for the kill -9 tests.

python prepare_subprocess.py INPUTS ROOT plain          prepare; print the number of file writes
python prepare_subprocess.py INPUTS ROOT kill-at N      SIGKILL itself in the N-th file write, leaving
                                                        half of that file as <name>.tmp
python prepare_subprocess.py INPUTS ROOT slow           sleep 50 ms after each file write
"""

import io
import os
import signal
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sam4med.prepare.writer as writer_module  # noqa: E402
from sam4med.prepare.volumes import VolumePreparer  # noqa: E402
from tests.prepare.volumes import preparer_settings  # noqa: E402

inputs, root, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
kill_at = int(sys.argv[4]) if mode == "kill-at" else 0
writes = 0


def half_then_die(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_name(path.name + ".tmp").write_bytes(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)


def counted(real, to_bytes):
    def write(path, content):
        global writes
        writes += 1
        if writes == kill_at:
            half_then_die(Path(path), to_bytes(content))
        real(path, content)
        if mode == "slow":
            time.sleep(0.05)

    return write


def png_bytes(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


writer_module.save_png = counted(writer_module.save_png, png_bytes)
writer_module.write_text = counted(writer_module.write_text, str.encode)
VolumePreparer(**preparer_settings(inputs))(root)
print(writes)
