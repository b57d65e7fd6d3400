"""The Istio mesh inside the lab: istiod (CA, injection webhook, config distribution) and proxyv2.

See docs/architecture.md. ``register_mesh_workloads`` is the one entry point the lab's image registry
needs; everything else is internal to the mesh.
"""
