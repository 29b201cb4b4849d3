"""Targets: the systems a drill runs against (the embedded lab, or AWS), behind one interface."""
