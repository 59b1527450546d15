import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(int(os.environ.get("KCHIP_TEST_THREADS", "1")))

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official-kirchhoffnet" / "twomoon"


@pytest.fixture
def twomoon_fixture():
    if not (FIXTURE / "model.pth").exists():
        pytest.skip(f"official twomoon fixture not present at {FIXTURE}")
    return FIXTURE
