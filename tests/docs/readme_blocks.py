"""The ```python blocks of README.md, with what each needs (shared by the README test and
benchmarks)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A block that runs a study or the protocol trains teachers and oracles (minutes); PennyLane +
# IBM Runtime imports and a 127-qubit fake device take ~30 s on 2 cores.
SLOW_CALLS = ("run_protocol(", "study.run(", "import pennylane", "FakeSherbrooke(")
SDKS = {"qiskit": "qiskit", "qiskit_ibm_runtime": "qiskit_ibm_runtime", "pennylane": "pennylane",
        "braket": "braket", "ray": "ray", "pandas": "pandas"}


@dataclass(frozen=True)
class Block:
    index: int
    line: int       # 1-based line of the opening fence
    heading: str    # the section it is in
    code: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{self.index}-{slug}"

    @property
    def slow(self) -> bool:
        return any(c in self.code for c in SLOW_CALLS)

    @property
    def needs(self) -> list[str]:
        mods = set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", self.code, flags=re.M))
        if ".dataframe()" in self.code or ".noise_effect()" in self.code:
            mods.add("pandas")
        return sorted(SDKS[m] for m in mods if m in SDKS)


def python_blocks(readme: Path = ROOT / "README.md") -> list[Block]:
    blocks, heading, code, start = [], "top", None, 0
    for n, line in enumerate(readme.read_text().splitlines(), 1):
        if code is None:
            if line.startswith("#") and not line.startswith("#!"):
                heading = line.lstrip("#").strip()
            elif line.strip() == "```python":
                code, start = [], n
        elif line.strip() == "```":
            blocks.append(Block(len(blocks), start, heading, "\n".join(code) + "\n"))
            code = None
        else:
            code.append(line)
    return blocks
