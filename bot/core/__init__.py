"""The platform-neutral core: domain values, ports, manifests. Imports no adapter."""
