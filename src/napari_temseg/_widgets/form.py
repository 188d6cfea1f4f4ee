"""Dock widgets generated from the config options (``core/config/options.py``).

:class:`OptionForm` makes one magicgui widget per option (SpinBox, FloatSpinBox, CheckBox or
ComboBox, with the option's label, range, choices and help as tooltip), named like the
option, the common ones first and the *advanced* ones in a section behind an "Advanced
settings" switch. An option whose None means something ("auto", "no limit") shows that
word at the bottom of its range instead of a magic number. ``values()`` returns what is set,
which ``core.config.options`` turns into configs, exactly as for the CLI and the console.
"""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox

from ..core.config.options import Option, all_options


def _decimals(step: float | None) -> int:
    return 2 if not step else max(0, min(8, -math.floor(math.log10(step)) + 1))


def _number(o: Option) -> Any:
    """A spin box; for optional options its minimum shows the word for None."""
    lo = o.lo if o.lo is not None else 0
    hi = o.hi if o.hi is not None else 10**9
    step = o.step or 1
    bottom = lo
    if o.optional:  # one step below the range, or 0: the word for None is shown there
        bottom = max(0, lo - step) if lo > 0 else lo - step
    if o.kind is int and not o.optional:
        w = SpinBox(min=int(bottom), max=int(hi), step=int(step))
    else:  # QDoubleSpinBox shows the special text (magicgui's int spin box does not)
        w = FloatSpinBox(min=float(bottom), max=float(hi), step=float(step))
        w.native.setDecimals(0 if o.kind is int else _decimals(o.step))
    if o.optional:
        w.native.setSpecialValueText(o.none)
    w.value = bottom if o.default is None else o.default
    return w


def make_widget(o: Option) -> Any:
    """The widget for one option (not yet labelled)."""
    if o.kind is bool:
        w = CheckBox(text=o.label, value=o.default)
    elif o.choices:
        choices = ([o.none] if o.optional else []) + list(o.choices)
        value = o.none if o.default is None else o.default
        w = ComboBox(choices=choices, value=value)
    elif o.kind is str:  # free text (class names); empty = the word for None
        w = LineEdit(value=o.default or "")
        w.native.setPlaceholderText(o.none or "")
    else:
        w = _number(o)
    w.tooltip = f"{o.help} (default: {o.text(o.default)})"
    return w


class OptionForm:
    """The widgets of some config classes' options, and their values."""

    def __init__(self, classes: tuple, skip: tuple[str, ...] = ()):
        self.options = {o.name: o for o in all_options(*classes) if o.name not in skip}
        self.widgets = {name: make_widget(o) for name, o in self.options.items()}
        for name, w in self.widgets.items():
            w.name = name
            if not isinstance(w, CheckBox):
                w.label = self.options[name].label
        self.inapplicable: set[str] = set()
        self.toggle = CheckBox(text="Advanced settings", value=False)
        self.advanced = Container(
            labels=True, widgets=[w for n, w in self.widgets.items() if self.options[n].advanced]
        )
        self.advanced.label = ""
        self.advanced.visible = False
        self.toggle.changed.connect(lambda on: setattr(self.advanced, "visible", bool(on)))

    def basic(self) -> list:
        return [w for n, w in self.widgets.items() if not self.options[n].advanced]

    def attach(self, dock: Any) -> None:
        """Make every widget an attribute of ``dock`` (``dock.patch`` is the patch widget)."""
        for name, w in self.widgets.items():
            setattr(dock, name, w)

    def value(self, name: str) -> Any:
        o, w = self.options[name], self.widgets[name]
        v = w.value
        if isinstance(w, LineEdit):
            return v.strip() or None if o.optional else v
        if o.optional and (v == o.none or (o.kind is not str and v <= w.min)):
            return None
        return o.kind(v)

    def set_value(self, name: str, value: Any) -> None:
        o, w = self.options[name], self.widgets[name]
        if value is None:
            w.value = "" if isinstance(w, LineEdit) else (o.none if o.choices else w.min)
        else:
            w.value = value

    def set_applicable(self, name: str, applicable: bool) -> None:
        """Show or hide an option that means nothing in the current setting (it then keeps
        its default)."""
        self.widgets[name].visible = applicable
        (self.inapplicable.discard if applicable else self.inapplicable.add)(name)

    def follow(self, name: str, presets: dict[str, dict]) -> None:
        """When option ``name`` picks a key of ``presets`` (a recipe), show that preset's
        values in the widgets - the user then changes what they like; the values of the
        preset picked before go back to their defaults."""
        shown: list[str] = []

        def picked(*_: Any) -> None:
            for k in shown:
                self.set_value(k, self.options[k].default)
            preset = presets.get(self.value(name), {})
            values = {k: v for k, v in preset.items() if k in self.widgets}
            for k, v in values.items():
                self.set_value(k, v)
            shown[:] = list(values)

        self.widgets[name].changed.connect(picked)

    def values(self) -> dict:
        """{name: value} of every applicable option (None where the widget shows 'auto' etc.)."""
        return {n: self.value(n) for n in self.widgets if n not in self.inapplicable}


__all__ = ["OptionForm", "make_widget"]
