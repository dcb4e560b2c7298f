"""``python -m tests.braket_driver STATE SCRIPT_JSON -- <qmu-hw CLI args>``.

Runs the real CLI in a fresh process with every Braket/S3 call answered by the fake service
in :mod:`tests.braket_service` (whose script may kill this process mid-study).
"""

import json
import sys

from qmu_hw.adapters import braket_aws
from qmu_hw.cli import main
from tests.braket_service import FakeBraketService

if __name__ == "__main__":
    state, script, sep, *cli = sys.argv[1:]
    assert sep == "--", "usage: STATE SCRIPT_JSON -- <qmu-hw args>"
    service = FakeBraketService(state, script=json.loads(script))
    braket_aws.set_client_factory(service.client)
    sys.exit(main(cli))
