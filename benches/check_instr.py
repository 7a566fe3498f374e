"""Compares instruction counts per operation with the committed budgets.

    .venv/bin/python benches/check_instr.py                       # benches/results/instr.json
    .venv/bin/python benches/check_instr.py path/to/instr.json

Exits 1 when a django_rustpg figure is more than 5% above its budget in
benches/instr_budgets.json (a commit that raises a budget says why). Figures below budget
by more than 5% are listed too, as a hint to lower the budget.
"""
import json
import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
BUDGETS = BENCHES / "instr_budgets.json"
TOLERANCE = 0.05


def compare(per_op, units, budgets):
    """(over, under): lines for figures outside budget ± TOLERANCE."""
    over, under = [], []
    for name, figure in sorted(per_op.items()):
        budget = budgets.get(name)
        if not budget:
            continue
        line = f"{name}: {figure:,.0f} instructions/{units.get(name, 'op')}, budget {budget:,.0f} ({figure / budget - 1:+.1%})"
        if figure > budget * (1 + TOLERANCE):
            over.append(line)
        elif figure < budget * (1 - TOLERANCE):
            under.append(line)
    return over, under


def check(results_path):
    results = json.loads(Path(results_path).read_text())
    budgets = json.loads(BUDGETS.read_text())["rustpg"]
    ours = results["per_operation"].get("rustpg", {})
    over, under = compare(ours, results.get("units", {}), budgets)
    for line in under:
        print(f"below budget (lower it?): {line}")
    for line in over:
        print(f"OVER BUDGET: {line}")
    checked = sum(1 for n in ours if n in budgets)
    if over:
        print(f"{len(over)} of {checked} figures more than {TOLERANCE:.0%} over budget")
        return 1
    print(f"instruction budgets: {checked} figures within {TOLERANCE:.0%} (or below)")
    return 0


if __name__ == "__main__":
    sys.exit(check(sys.argv[1] if len(sys.argv) > 1 else BENCHES / "results" / "instr.json"))
