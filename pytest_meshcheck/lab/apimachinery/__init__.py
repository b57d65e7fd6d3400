"""Object mechanics the store applies and the API server relies on: selectors, names, patches,
server-side apply field ownership. Pure functions over JSON-able dicts, no I/O and no locks."""
