"""The EKS provider: a throw-away EKS cluster per run, built and removed with boto3 alone.

Modules are small and import boto3/botocore only inside functions, because the plugin's module
tree is imported by every pytest run, most of which never touch AWS.
"""
