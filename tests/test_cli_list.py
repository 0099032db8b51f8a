"""`turngym list` never cuts an env id: to a pipe the table takes the width it needs; in a narrow terminal the other
columns wrap and, if that is not enough, the terminal wraps the lines."""

from rich.console import Console

from turngym.cli import main, print_env_table
from turngym.registration import ENVS


def test_list_to_a_pipe_prints_every_id_whole(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1] for line in out.splitlines() if line.startswith("│") and line.split()[1] != "│"}
    assert {e.id for e in ENVS} <= rows
    assert "…" not in out
    assert "turngym[web]" in out and "turngym[alfworld]" in out  # extras are shown, not taken as markup


def test_list_in_a_narrow_terminal_keeps_ids_whole():
    longest = max(ENVS, key=lambda e: len(e.id)).id
    for width in (60, 100, 140):
        console = Console(width=width, force_terminal=True, color_system=None, record=True)
        print_env_table(console)
        text = console.export_text()
        lines = text.splitlines()
        assert "…" not in text
        for e in ENVS:
            assert any(f"│ {e.id} " in line for line in lines), (width, e.id)
        assert any(longest in line for line in lines)
