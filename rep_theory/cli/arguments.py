"""``argparse`` types shared by the commands: each turns a bad value into a one-line usage error
that names the value and what was expected, before the command writes anything."""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["device", "device_name", "regex", "positive_int", "non_negative_int", "non_negative_float",
           "finite_float"]


def _device_checked(text: str, *, present: bool) -> str:
    from rep_theory.device import parse_device, resolve_device  # torch is imported only for real work
    try:
        (resolve_device if present else parse_device)(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def device(text: str) -> str:
    """A device that exists here: ``auto``, ``cpu``, ``cuda`` or ``cuda:K`` (CUDA only when present)."""
    return _device_checked(text, present=True)


def device_name(text: str) -> str:
    """A device's name, present here or not (jobs may run on other machines, e.g. a Ray cluster)."""
    return _device_checked(text, present=False)


def regex(text: str) -> str:
    """A Python regular expression (``re.search`` over run names)."""
    try:
        re.compile(text)
    except re.error as err:
        raise argparse.ArgumentTypeError(f"{text!r}: not a valid regular expression ({err})") from None
    return text


def _number(text: str, kind, name: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {name}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected an integer >= 1")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: expected an integer >= 0")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number >= 0")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text}: expected a finite number >= 0")
    return value


def finite_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text}: expected a finite number")
    return value
