"""The ``demmi`` command line (installed as the package ``demmi_cli``)."""
