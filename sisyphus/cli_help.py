"""Help text that shows a value only for options that take one.

Typer releases from about 0.26 (the ones that carry their own copy of click) print the
type of every option in the rich help panel, flags included: `--text <bool>`,
`--help <bool>`. A flag takes no value, so its type column stays empty. Older releases
(with click 8.1 or 8.2) already skipped booleans in that column; on them this changes
nothing. The plain help (`TYPER_USE_RICH=0`) never showed a type for flags.
"""

from __future__ import annotations

from typing import Any


def hide_flag_types() -> None:
    """Make the help of every flag, `--help` too, show no `<bool>` (idempotent)."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - a typer without TyperOption has nothing to fix
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_sisyphus_flags_hidden", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and getattr(self, "metavar", None) is None:
            return None
        return shown(self, ctx)

    display_type_rich._sisyphus_flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
