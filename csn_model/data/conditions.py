"""Which of the five conditions a stem belongs to, from its General MIDI program and drum flag.

The mapping is METHOD.md's rule, fixed in code (docs/model.md); the Slakh reader
(csn_model.data.slakh_folder) gives every stem it reads the condition this returns.
"""

from __future__ import annotations

__all__ = ["condition_of"]


def condition_of(program: int | dict, is_drum: bool = False) -> str:
    """Condition of a stem from its GM program and drum flag, or from a stem metadata dict.

    Programs 0-7 piano, 24-31 guitar, 32-39 bass, drum kits drums (program 0-127, or 128 as
    Slakh2100-redux numbers them), everything else others
    (METHOD.md, a project choice).
    """
    if isinstance(program, dict):
        is_drum = bool(program.get("is_drum", False))
        program = int(program.get("program_num", 0))
    if is_drum:
        return "drums"
    if 0 <= program <= 7:
        return "piano"
    if 24 <= program <= 31:
        return "guitar"
    if 32 <= program <= 39:
        return "bass"
    return "others"
