"""Model Access Gateway: identity, policy and audit in front of AI model endpoints."""

__version__ = "0.1.0"
