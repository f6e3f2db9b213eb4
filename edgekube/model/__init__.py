"""Pure data layer: manifests, labels, selectors, status and wire schemas; no I/O, imported by every layer."""
