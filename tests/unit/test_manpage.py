"""The manual page (scripts/manpage): roff that man renders without a warning, with
every section a manual page has and every flag of --help."""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import subprocess
from pathlib import Path

from chariotd.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "manpage"
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "SIGNALS",
            "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"]


def load_generator():
    loader = importlib.machinery.SourceFileLoader("manpage_generator", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name,
                                                                             loader))
    loader.exec_module(module)
    return module


manpage = load_generator()


def test_roff_escape_keeps_text_literal():
    assert manpage.roff_escape("--a-b") == "\\-\\-a\\-b"
    assert manpage.roff_escape("C:\\dir") == "C:\\edir"
    assert manpage.roff_escape(".SH x\n'tr y\nok") == "\\&.SH x\n\\&'tr y\nok"
    assert manpage.roff_inline("run `a-b` now") == "run \\fBa\\-b\\fR now"


def rendered(tmp_path: Path) -> str:
    page = tmp_path / "chariotd.8"
    page.write_text(manpage.render_roff())
    warnings = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                              capture_output=True, text=True, timeout=30)
    assert (warnings.returncode, warnings.stderr) == (0, "")
    result = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, MANWIDTH="200", MANPAGER="cat",
                                                 PAGER="cat", MAN_KEEP_FORMATTING=""))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_man_renders_every_section_in_order(tmp_path):
    lines = rendered(tmp_path).splitlines()
    headings = [line for line in lines if line in SECTIONS]
    assert headings == SECTIONS
    assert lines[0].split() == ["CHARIOTD(8)", "System", "Administration", "CHARIOTD(8)"]
    name = lines[lines.index("NAME") + 1].split()
    assert name[:2] == ["chariotd", "-"]  # what whatis/apropos read


def test_man_lists_every_flag_of_help(tmp_path):
    text = rendered(tmp_path)
    flags = [max(action.option_strings, key=len) for action in build_parser()._actions
             if action.option_strings and action.help != argparse.SUPPRESS]
    assert len(flags) > 20
    assert [flag for flag in flags if flag not in text] == []
    # Flags are printed with ASCII hyphens, so that they can be copied into a shell.
    assert "--certstore=DIR" in text and "\u2010" not in text
