"""Cluster providers: where the mesh under test runs (lab, an existing kubeconfig, EKS)."""
