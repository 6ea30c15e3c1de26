"""Reason codes, trading states and order statuses shared by the kernel.

The enums are declared once in ``_types.pxd``; Cython exposes them here as
Python ``IntEnum`` classes.
"""
