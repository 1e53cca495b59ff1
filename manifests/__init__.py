"""Versioned DeMMI-RF recipes and published baseline results (data only; installed as ``demmi_manifests``)."""
