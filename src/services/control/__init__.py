"""The control plane: supervised strategy processes, their lifecycle, and the kill switch (issue 15)."""
