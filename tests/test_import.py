import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys, qmu_hw; "
        "bad = [m for m in ('qiskit', 'braket', 'pennylane', 'matplotlib') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
